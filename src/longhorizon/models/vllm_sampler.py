"""Batched sampling with the vLLM engine, in-process: the interface and semantics of `TransformersSampler`.

`VLLMSampler.generate(prompts)` sends token-id prompts (`TokensPrompt`) to an
in-process `vllm.LLM` and returns, per prompt, the sampled ids, their
log-probs under the distribution they were drawn from, the decoded text, the
finish reason and the prompt ids: a `Generation`, as `TransformersSampler`
returns it. `sync_weights(model)` loads a trainer's weights into the running
engine after an update.

Choices, and where they come from (measured facts: shared/reference/vllm-cpu.md):
1. Log-probs: `logprobs_mode="processed_logprobs"` gives log-probs after
   temperature and top-p, the sampling distribution, which the trainer's
   ratio needs (the default, raw, is before them). With temperature 0 vLLM
   samples greedily and its processed log-probs are the log-softmax of the
   untempered logits (vllm/v1/sample/sampler.py, `Sampler.sample`, the
   all-greedy branch), i.e. the model's temperature-1 log-probs, as
   `TransformersSampler` gives them. fp32 matches a transformers
   teacher-forced pass to about 4e-5 (tests/test_vllm_sampler.py); bf16 to
   about 0.03 per token.
2. Ends of generations: vLLM stops at EOS, a stop string or the token cap,
   but its own finish reason does not tell EOS from a stop string and its
   text is cut inside the last token. So the ids are cut and labelled by
   `sampler.trim`, the transformers sampler's own function, with the stop
   position found by `StopOnText` on the generated ids only: the same
   `token_ids`, `text` and `finish_reason` by construction. The model's
   generation_config.json is ignored (`generation_config="vllm"`), so no
   default sampling settings or extra EOS ids creep in.
3. Seeds: per-request `SamplingParams(seed=...)` crashes the CPU engine once
   a seeded batch is split across steps, so none is passed. In-process, the
   CPU sampler draws its Gumbel-noise seeds from the global torch RNG
   (`TopKTopPSampler.forward_cpu`), so call k runs inside a forked RNG
   seeded with `params.seed + k`, like `TransformersSampler`: the same
   prompts in the same call give the same samples, resume is exact (the
   call counter is checkpointed), and the trainer's RNG is never touched.
   Samples differ from the transformers sampler's (another noise scheme),
   and may differ between batch compositions (the noise is per batch row).
   On GPU the noise comes from the CUDA RNG, which is forked as well; untested here.
4. In-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`): weights are synced
   without serialising them, and the start-up is 5-10 s (eager). The
   engine's start seeds the global RNGs of random, numpy and torch; their
   states are saved and restored around it. Its CPU worker also replaces
   `torch.set_num_threads` by a no-op (it binds OpenMP threads, which is
   meant for a worker process of its own) and vLLM drops torch to 1 thread:
   both are undone after the start, so the engine runs in the caller's
   thread with the caller's thread count (a trainer's `torch_threads`).
5. Weight sync: the CPU build pre-packs weights, so a plain
   `model.load_weights` is not enough; the worker's `reload_weights`
   (vLLM's in-place reload) repacks them. The reference saw a tied lm_head
   (SmolLM2) keep its old pre-packed copy after a reload from a directory
   (log-prob error 0.44); it is re-tied to the embedding and re-dispatched
   after every reload. With the in-memory reload used here the test passes
   without that step too (measured), so it is a guard, and the test that
   perturbs the tied embedding would catch a stale head either way. The prefix cache is reset after every
   sync, or cached KV of the old weights is reused (error 0.09). LoRA
   (peft) models push W + scale * B A, computed without merging in place.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import random
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from longhorizon.models.sampler import Generation, SamplingParams, StopOnText, trim
from longhorizon.models.settings import VLLMSettings, require_vllm


class VLLMSampler:
    """Samples completions for many prompts at once from an in-process vLLM engine."""

    def __init__(self, llm: Any, tokenizer: Any, params: SamplingParams | None = None):
        self.llm, self.tokenizer = llm, tokenizer
        self.params = params or SamplingParams()
        self.calls = 0
        self.last_sync_seconds: float | None = None

    @classmethod
    def from_spec(cls, spec: str, params: SamplingParams | None = None, dtype: str = "float32",
                  settings: VLLMSettings | None = None, seed: int = 0, tokenizer: Any = None) -> "VLLMSampler":
        """An engine on a registered model name or a local HF directory (`engine_dir`)."""
        require_vllm("vllm")
        path = engine_dir(spec)
        llm = start_engine(path, dtype, settings or VLLMSettings(), seed)
        return cls(llm, tokenizer if tokenizer is not None else load_tokenizer(path), params)

    @property
    def max_length(self) -> int:
        return int(self.llm.llm_engine.model_config.max_model_len)

    def with_params(self, params: SamplingParams) -> "VLLMSampler":
        """A sampler on the same engine with other settings and its own call counter (from 0)."""
        fresh = copy.copy(self)
        fresh.params, fresh.calls = params, 0
        return fresh

    def generate(self, prompts: list[list[int]], params: SamplingParams | None = None) -> list[Generation]:
        """Sample one completion per prompt (prompts are lists of token ids)."""
        from vllm.inputs import TokensPrompt

        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        if not prompts:
            return []
        params = params or self.params
        seed = params.seed + self.calls
        self.calls += 1
        with torch.random.fork_rng(devices=_cuda_devices()):
            torch.manual_seed(seed)
            outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts],
                                        vllm_params(params), use_tqdm=False)
        return [self._generation(p, o.outputs[0], params) for p, o in zip(prompts, outputs)]

    def _generation(self, prompt: list[int], out: Any, params: SamplingParams) -> Generation:
        ids = list(out.token_ids)
        logprobs = [step[token].logprob for step, token in zip(out.logprobs, ids)]
        stop_end = StopOnText(self.tokenizer, params.stop, 0).first_end(ids)
        return trim(self.tokenizer, prompt, ids, logprobs, stop_end)

    def sync_weights(self, model: Any) -> float:
        """Load `model`'s weights (LoRA merged) into the engine and drop its prefix cache; returns seconds."""
        start = time.perf_counter()
        weights = dict(export_weights(model))
        self.llm.collective_rpc(_reload_worker_weights, args=(weights,))
        self.llm.reset_prefix_cache()
        self.last_sync_seconds = time.perf_counter() - start
        return self.last_sync_seconds


def vllm_params(params: SamplingParams) -> Any:
    """vLLM's SamplingParams for ours: the sampled token's log-prob only, stop strings kept in the text."""
    from vllm import SamplingParams as VParams

    return VParams(temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_new_tokens,
                   stop=list(params.stop), include_stop_str_in_output=True, logprobs=0)


def start_engine(path: Path, dtype: str, settings: VLLMSettings, seed: int) -> Any:
    """An in-process `vllm.LLM`; the global RNG states are left as they were."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # its INFO lines would bury the CLI's progress
    from vllm import LLM

    # Each reload warns "RotaryEmbedding: Failed to load weights": a checkpoint has no rotary weights, and
    # vLLM puts its own cos/sin cache back (vllm/model_executor/model_loader/reload/layerwise.py).
    logging.getLogger("vllm.model_executor.model_loader.reload.layerwise").setLevel(logging.ERROR)

    check_head_dim(path)
    threads, set_num_threads = torch.get_num_threads(), torch.set_num_threads
    with preserved_rng(), quiet("vllm.model_executor.models.utils"):  # a warning per weight cast (fp32 -> bf16)
        llm = LLM(model=str(path), dtype=dtype, seed=seed, enforce_eager=settings.enforce_eager,
                   block_size=settings.block_size, enable_prefix_caching=settings.enable_prefix_caching,
                   kv_cache_memory_bytes=settings.kv_cache_memory_bytes, logprobs_mode="processed_logprobs",
                   generation_config="vllm", disable_log_stats=True)
    torch.set_num_threads = set_num_threads  # the CPU worker made it a no-op; in-process, the caller's count rules
    torch.set_num_threads(threads)
    return llm


def check_head_dim(path: Path) -> None:
    """vLLM's CPU attention takes a few head sizes only; others crash at the first generate (e.g. tiny-random's 16)."""
    from transformers import AutoConfig

    from longhorizon.errors import UserError

    if torch.cuda.is_available():
        return
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    config = AutoConfig.from_pretrained(path)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head_dim not in supported:
        raise UserError(f"sampler: vllm: {path} has head_dim {head_dim}, which vLLM's CPU attention does not "
                        f"support ({', '.join(map(str, supported))}); use sampler: transformers")


@contextlib.contextmanager
def quiet(logger: str) -> Iterator[None]:
    """Only errors from this logger inside the block."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore the random, numpy and torch (CPU and CUDA) RNG states on exit."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=_cuda_devices()):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


# ------------------------------------------------------------------ weights


def export_weights(model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """(HF name, tensor) of every weight; for a peft model the base weights with the LoRA delta added."""
    if not hasattr(model, "get_base_model"):
        yield from ((name, t.detach()) for name, t in model.state_dict().items())
        return
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    lora = {name: m for name, m in base.named_modules() if isinstance(m, LoraLayer)}
    for name, tensor in base.state_dict().items():
        if ".lora_" in name:
            continue
        module, _, leaf = name.replace(".base_layer.", ".").rpartition(".")
        if module in lora and leaf == "weight":
            layer = lora[module]
            tensor = tensor + sum(layer.get_delta_weight(a) for a in layer.active_adapters if a in layer.lora_A)
        yield f"{module}.{leaf}", tensor.detach()


def _reload_worker_weights(worker: Any, weights: dict[str, torch.Tensor]) -> None:
    """Runs on the engine's worker: vLLM's in-place reload (it re-packs weights), then re-tie the lm_head."""
    worker.reload_weights(weights_iterator=iter(weights.items()))
    _retie_lm_head(worker.model_runner.get_model())


def _retie_lm_head(model: Any) -> None:
    """After a reload a tied lm_head still holds the old (pre-packed) embedding: point it at the new one."""
    config = getattr(model, "config", None)
    head, embed = getattr(model, "lm_head", None), getattr(getattr(model, "model", None), "embed_tokens", None)
    if head is None or embed is None or not getattr(config, "tie_word_embeddings", False):
        return
    head.weight = embed.weight
    head.quant_method.process_weights_after_loading(head)


# ------------------------------------------------------------------ the engine's model directory


def engine_dir(spec: str) -> Path:
    """A directory vLLM can load: the bundled model's converted copy, another registered model saved once
    to the cache, or a local HF directory as is."""
    from longhorizon.errors import UserError
    from longhorizon.models import MODEL_LOADERS, bundled

    if spec == "smollm2-135m":
        return bundled.model_dir()
    if spec in MODEL_LOADERS:
        return _saved_registered(spec)
    if (Path(spec) / "config.json").exists():
        return Path(spec)
    raise UserError(f"unknown model {spec!r}: use {', '.join(MODEL_LOADERS)}, or a local Hugging Face model directory")


def _saved_registered(spec: str) -> Path:
    """A registered model (e.g. tiny-random) saved with its tokenizer, under a name keyed by its config."""
    import hashlib

    from longhorizon.models import bundled, load_model

    loaded = load_model(spec)
    digest = hashlib.sha256(loaded.model.config.to_json_string().encode()).hexdigest()[:10]

    def save(tmp: Path) -> None:
        loaded.model.save_pretrained(tmp)
        loaded.tokenizer.save_pretrained(tmp)

    return bundled._atomic_save(bundled.cache_dir() / f"{spec}-{digest}", save)


def load_tokenizer(path: Path) -> Any:
    """The HF tokenizer of an engine directory (it carries the chat template), with a pad token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
