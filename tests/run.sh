#!/usr/bin/env bash
# The one test command (README, .ci/run): set up .venv (experiments/setup_env.sh), lint with ruff
# (pyproject.toml [tool.ruff]), then run the whole suite: tests/ and the doctests of dmlax/
# and configs/ (pyproject.toml testpaths). Extra arguments go to pytest.
#   DMLAX_PARITY=1 bash tests/run.sh   also installs PyTorch (CPU) and pytorch-metric-learning,
#                                       so the parity tests run instead of being skipped.
set -euo pipefail
source "$(dirname "$0")/../experiments/setup_env.sh"
"$VENV_PY" -m ruff check .
exec "$VENV_PY" -m pytest -n "${DMLAX_TEST_WORKERS:-2}" --doctest-modules "$@"
