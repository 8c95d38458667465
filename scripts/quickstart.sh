#!/usr/bin/env bash
# README command A: set up, then measure how far the bundled model gets on the Execution task.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
longhorizon eval --model smollm2-135m --env longhorizon/Execution-v0 \
  --horizons 1,2,4,8,16 --episodes 8 --knob dict_size=10 --knob value_range=9 \
  --dtype bfloat16 --out runs/quickstart-eval "$@"
