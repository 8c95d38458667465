#!/usr/bin/env bash
# README command A: set up, then train the bundled model with GRPO on a short Execution task,
# evaluating it on held-out seeds before and after (both are printed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
longhorizon train recipes/quickstart.yaml --out runs/quickstart "$@"
