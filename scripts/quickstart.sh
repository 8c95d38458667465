#!/usr/bin/env bash
# README command A: set up, train the bundled model with GRPO on a short Execution task (held-out eval before
# and after), then measure the trained model's horizon curve on the same task family.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
setup=$((SECONDS - start))
longhorizon train recipes/quickstart.yaml --out runs/quickstart "$@"
trained=$((SECONDS - start - setup))
longhorizon eval recipes/eval/quickstart.yaml --model runs/quickstart/model --out runs/quickstart/horizon
evaluated=$((SECONDS - start - setup - trained))
echo
echo "reproduce the horizon curve: longhorizon eval recipes/eval/quickstart.yaml --model runs/quickstart/model --out runs/quickstart/horizon"
echo "plots: runs/quickstart/curves.png (training), runs/quickstart/horizon/horizon.png (horizon curve)"
echo "times: set-up ${setup} s, training ${trained} s, horizon curve ${evaluated} s; in all $((SECONDS - start)) s"
