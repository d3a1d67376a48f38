#!/usr/bin/env bash
# The main job (README's first command). On a fresh Linux machine with Python 3.11: creates .venv
# and installs the pinned requirements and dmlax (experiments/setup_env.sh), generates the embedded
# `glyphs` dataset, trains a paper's loss (MPA, default) and the softmax baseline on glyphs classes
# 0-63, evaluates both on the 36 held-out classes and prints Recall@1, MAP@R and nDCG@4 beside
# raw pixels and the untrained network on the same test split, and where the results and
# checkpoints are. Extra arguments go to experiments/quickstart.py, e.g.
#   bash experiments/quickstart.sh --loss softmax_sgsl --workdir /tmp/quickstart
#   bash experiments/quickstart.sh --seeds 5     # paired statistics over seeds 0-4
set -euo pipefail
start=$SECONDS
echo "[setup] .venv with the pinned requirements (installed on the first run only)"
source "$(dirname "$0")/setup_env.sh"
echo "[setup] done in $((SECONDS - start)) s"
exec "$VENV_PY" -m experiments.quickstart "$@"
