# Sourced by tests/run.sh and experiments/quickstart.sh: make .venv if needed and install the
# pinned requirements and dmlax (editable) into it, once per version of those files.
# Leaves $VENV_PY pointing at the environment's python.
set -euo pipefail
# Relative paths given to the entry points (--workdir, data_dir) mean the caller's directory.
export DMLAX_CALLER_DIR="${DMLAX_CALLER_DIR:-$PWD}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# A stamp keyed on the requirements skips a minute of pip on every later run.
stamp=.venv/.dmlax-requirements-$(cat requirements.txt pyproject.toml | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # uv (from PyPI) fetches and unpacks the pinned wheels in parallel: the whole file in about
  # 10 s on a 2-core machine, where pip takes 60-80 s (both with empty caches). pip installs
  # the same file where uv cannot be installed or fails.
  if ! { .venv/bin/python -m pip install -q uv==0.13.9 &&
         .venv/bin/uv pip install -q --python .venv/bin/python -r requirements.txt; }; then
    echo "[setup] uv unavailable or failed; installing with pip" >&2
    .venv/bin/python -m pip install -q -r requirements.txt
  fi
  .venv/bin/python -m pip install -q --no-deps -e .
  rm -f .venv/.dmlax-requirements-*
  touch "$stamp"
fi
if [ "${DMLAX_PARITY:-0}" = "1" ]; then
  .venv/bin/python -m pip install -q torch==2.13.0 pytorch-metric-learning==2.9.0
fi
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
VENV_PY=$PWD/.venv/bin/python
