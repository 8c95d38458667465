"""Model loading: the bundled default, a tiny random model for tests, or any local HF directory.

`load_model("smollm2-135m")`, `load_model("tiny-random")`, `load_model("/path/to/hf_dir")`.
Nothing is downloaded: a name that is neither registered nor a local directory is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from longhorizon.errors import UserError
from longhorizon.models import bundled
from longhorizon.models.sampler import Generation, SamplingParams, TransformersSampler

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """A causal LM with its tokenizer (the tokenizer carries the chat template)."""

    name: str
    model: Any
    tokenizer: Any


def _load_dir(path: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return model, tokenizer


def load_bundled(dtype: torch.dtype) -> tuple[Any, Any]:
    return _load_dir(bundled.model_dir(), dtype)


def tiny_config(tokenizer: Any) -> Any:
    """A 2-layer llama config over the bundled tokenizer's vocabulary."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )


def load_tiny(dtype: torch.dtype, seed: int = 0) -> tuple[Any, Any]:
    """A tiny randomly initialised llama with the bundled tokenizer and chat template (same seed, same weights)."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(bundled.tokenizer_dir())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(tiny_config(tokenizer))
    return model.to(dtype), tokenizer


MODEL_LOADERS: dict[str, Callable[[torch.dtype], tuple[Any, Any]]] = {
    "smollm2-135m": load_bundled,
    "tiny-random": load_tiny,
}


def load_model(spec: str, dtype: str = "float32", device: str = "cpu") -> LoadedModel:
    """Load a registered model by name, or a local Hugging Face model directory by path."""
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
    if spec in MODEL_LOADERS:
        model, tokenizer = MODEL_LOADERS[spec](DTYPES[dtype])
    elif Path(spec).is_dir() and (Path(spec) / "config.json").exists():
        model, tokenizer = _load_dir(Path(spec), DTYPES[dtype])
    else:
        raise UserError(f"unknown model {spec!r}: use {', '.join(MODEL_LOADERS)}, or a local Hugging Face model directory")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(name=spec, model=model.to(device).eval(), tokenizer=tokenizer)


def make_sampler(name: str, spec: str, params: SamplingParams, dtype: str = "float32", vllm: Any = None,
                 batch_size: int = 64, kv_cache_mb: int = 1024, loaded: LoadedModel | None = None) -> Any:
    """The sampler a config names: `transformers` on the model (`loaded`, e.g. the one being trained, else loaded
    here), `vllm` an in-process engine started on `spec`."""
    if name == "vllm":
        from longhorizon.models.vllm_sampler import VLLMSampler

        return VLLMSampler.from_spec(spec, params, dtype=dtype, settings=vllm, seed=params.seed,
                                     tokenizer=loaded.tokenizer if loaded else None)
    loaded = loaded or load_model(spec, dtype=dtype)
    return TransformersSampler(loaded.model, loaded.tokenizer, params, batch_size, kv_cache_bytes=kv_cache_mb << 20)


__all__ = ["Generation", "LoadedModel", "MODEL_LOADERS", "SamplingParams", "TransformersSampler", "load_model",
           "make_sampler"]
