#!/usr/bin/env bash
# The one test command (README, .ci/run): make .venv if needed, install the pinned requirements
# and dmlax itself, then run the whole suite. Extra arguments go to pytest.
#   DMLAX_PARITY=1 bash tests/run.sh   also installs PyTorch (CPU) and pytorch-metric-learning,
#                                       so the parity tests run instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# A stamp keyed on the requirements avoids a minute of pip on every run once installed.
stamp=.venv/.dmlax-requirements-$(cat requirements.txt pyproject.toml | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  rm -f .venv/.dmlax-requirements-*
  touch "$stamp"
fi
if [ "${DMLAX_PARITY:-0}" = "1" ]; then
  .venv/bin/python -m pip install -q torch==2.13.0 pytorch-metric-learning==2.9.0
fi
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec .venv/bin/python -m pytest -n "${DMLAX_TEST_WORKERS:-2}" "$@"
