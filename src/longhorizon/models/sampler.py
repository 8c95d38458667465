"""Batched sampling with transformers: token ids in, token ids and behaviour log-probs out.

`TransformersSampler.generate(prompts)` left-pads a batch of prompt token ids,
runs `model.generate` (KV cache on), and returns for every prompt the sampled
ids, the log-prob of each sampled id under the distribution it was drawn from
(temperature and top-p applied, renormalised), and the decoded text.

With `temperature == 0` decoding is greedy and the log-probs are those of the
model's own distribution (temperature 1), since the point mass is uninformative.

The log-probs are gathered step by step (`SampledLogprobs`, the last logits
processor): only the current step's (B, V) log-softmax is held, never the
(B, T, V) stack of every step's scores.

Each call draws from its own seed, `params.seed + call_index`, inside a forked
RNG, so runs repeat exactly and the global torch RNG is left alone.

KV reuse (`kv_cache_bytes > 0`, the default): the keys and values of every
sequence a call produced are kept (`models/kv_cache.py`), and the next call
computes only what a prompt adds to the longest cached prefix; identical
prompts in one call (a GRPO group's first turn) are prefilled once. Each row's
`prompt[:-1]` is prefilled first (`_prefill`), then `generate` runs from the
cache and the last prompt token, so it sees exactly the same left-padded
ids, attention mask and positions as without reuse: greedy outputs and
log-probs equal the unshared computation up to float rounding, and sampling
draws the same random numbers for the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch

from longhorizon.models.kv_cache import (CACHE_KW, KV, Entry, PrefixCache, head, new_cache, supports_kv_reuse, to_cache,
                                         weights_version)


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one completion."""

    temperature: float = 1.0
    """Softmax temperature; 0 means greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""
    max_new_tokens: int = 64
    """Hard cap on generated tokens per call."""
    stop: tuple[str, ...] = ()
    """Stop once the generated text contains any of these strings (kept in the output)."""
    seed: int = 0
    """Base seed; call k of a sampler uses seed + k."""

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


ProcessorFactory = Callable[[torch.Tensor], list[Any]]  # a batch's (B, L) prompt attention mask -> logits processors


@dataclass
class Generation:
    """One sampled completion."""

    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str  # "eos", "stop" (a stop string) or "length"
    prompt_ids: list[int] = field(default_factory=list)


class TransformersSampler:
    """Samples completions for many prompts at once from a transformers causal LM."""

    def __init__(self, model: Any, tokenizer: Any, params: SamplingParams | None = None, batch_size: int = 64,
                 kv_cache_bytes: int = 1 << 30, processors: ProcessorFactory | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.params = params or SamplingParams()
        self.batch_size = batch_size
        self.calls = 0
        self.kv_cache = PrefixCache(kv_cache_bytes) if kv_cache_bytes > 0 and supports_kv_reuse(model) else None
        self.processors = processors  # logits processors run before temperature / top-p (e.g. a geometric mixture)

    @property
    def max_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 1 << 30))

    def with_params(self, params: SamplingParams) -> "TransformersSampler":
        """A sampler on the same model with other settings and its own call counter (from 0)."""
        return TransformersSampler(self.model, self.tokenizer, params, self.batch_size,
                                   self.kv_cache.max_bytes if self.kv_cache is not None else 0, self.processors)

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], params: SamplingParams | None = None) -> list[Generation]:
        """Sample one completion per prompt (prompts are lists of token ids)."""
        params = params or self.params
        seed = params.seed + self.calls
        self.calls += 1
        if self.kv_cache is not None:
            self.kv_cache.check_version(weights_version(self.model))
        out: list[Generation] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            out += self._generate_batch(chunk, replace(params, seed=seed + start))
        if self.kv_cache is not None:
            self.kv_cache.evict()
        return out

    def release(self, ids: list[int]) -> None:
        """Free the cached keys and values of this finished sequence (prompt + sampled ids)."""
        if self.kv_cache is not None:
            self.kv_cache.release(ids)

    def clear_cache(self) -> None:
        if self.kv_cache is not None:
            self.kv_cache.clear()

    def _generate_batch(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        input_ids, attention_mask = left_pad(prompts, self.tokenizer.pad_token_id)
        stopper = StopOnText(self.tokenizer, params.stop, input_ids.shape[1])
        recorder, device = SampledLogprobs(params), self.model.device
        reuse = self.kv_cache is not None
        cache = {CACHE_KW: self._prompt_cache(prompts, input_ids.shape[1])} if reuse else {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params.seed)
            out = self.model.generate(
                input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                generation_config=self._generation_config(params, reuse), stopping_criteria=[stopper],
                logits_processor=[*(self.processors(attention_mask.to(device)) if self.processors else []), recorder],
                **cache,
            )
        sequences = out.sequences if reuse else out
        new_ids = sequences[:, input_ids.shape[1] :].cpu()
        logprobs = recorder.finish(sequences).cpu()  # (B, T_new)
        gens = [trim(self.tokenizer, p, new_ids[i].tolist(), logprobs[i].tolist(), stopper.ends.get(i))
                for i, p in enumerate(prompts)]
        if reuse:
            self._keep(gens, getattr(out, CACHE_KW), input_ids.shape[1], new_ids.shape[1])
        return gens

    def sync_weights(self, model: Any) -> None:
        """Nothing to do: this sampler generates with the live model object the trainer updates (new weights
        clear the KV cache through its version check)."""

    def _prompt_cache(self, prompts: list[list[int]], width: int) -> Any:
        """A cache holding every row's `prompt[:-1]`, left-padded to `width - 1`: reused, or prefilled once per distinct
        prompt. The entries it reused are dropped once it is built (the rows' new entries supersede them)."""
        items: dict[tuple[int, ...], tuple[Entry | None, int]] = {}
        matched: list[Entry] = []
        for p in prompts:
            entry, k = self.kv_cache.match(p)
            matched += [entry] if entry is not None else []
            key = tuple(p[:-1])
            if key not in items or k > items[key][1]:
                items[key] = (entry, k)
        stats = self.kv_cache.stats
        stats["prompt_tokens"] += sum(len(p) for p in prompts)
        stats["computed_tokens"] += len(prompts) + sum(
            len(key) - k for key, (_, k) in items.items())
        kv = self._prefill(items)
        self.kv_cache.drop(matched)  # now, before generate's peak
        return to_cache([kv[tuple(p[:-1])] for p in prompts], width - 1)

    def _prefill(self, items: dict[tuple[int, ...], tuple[Entry | None, int]]) -> dict[tuple[int, ...], KV]:
        """Keys and values of each distinct target (prompt[:-1]): the cached part as is, the rest computed."""
        done = {key: head(entry, k) for key, (entry, k) in items.items() if k == len(key)}
        todo = [(key, entry, k) for key, (entry, k) in items.items() if k < len(key)]
        for start in range(0, len(todo), self.batch_size):
            done.update(self._extend(todo[start : start + self.batch_size]))
        return done

    def _extend(self, todo: list[tuple[tuple[int, ...], Entry | None, int]]) -> dict[tuple[int, ...], KV]:
        """One forward pass: each target's uncached ids (right-padded) on top of its cached prefix (left-padded)."""
        bases = [head(entry, k) for _, entry, k in todo]
        width = max(k for *_, k in todo)
        new = [list(key[k:]) for key, _, k in todo]
        n = max(len(x) for x in new)
        ids = torch.full((len(todo), n), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(todo), width + n, dtype=torch.long)
        for i, (x, (*_, k)) in enumerate(zip(new, todo)):
            ids[i, : len(x)] = torch.tensor(x)
            mask[i, width - k : width + len(x)] = 1
        positions = torch.tensor([k for *_, k in todo])[:, None] + torch.arange(n)  # (B, n)
        device = self.model.device
        cache = to_cache(bases, width) if width else new_cache()
        out = self.model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                         use_cache=True, logits_to_keep=1, **{CACHE_KW: cache})
        layers = getattr(out, CACHE_KW).layers
        return {key: ([layer.keys[i, :, width - k : width + len(x)].clone() for layer in layers],
                      [layer.values[i, :, width - k : width + len(x)].clone() for layer in layers])
                for i, ((key, _, k), x) in enumerate(zip(todo, new))}

    def _keep(self, gens: list[Generation], cache: Any, width: int, steps: int) -> None:
        """Store each row's prompt + sampled ids with the keys and values generate computed for them."""
        for i, gen in enumerate(gens):
            start = width - len(gen.prompt_ids)
            length = len(gen.prompt_ids) + min(len(gen.token_ids), steps - 1)  # the last sampled id was never fed
            self.kv_cache.add(Entry(ids=gen.prompt_ids + gen.token_ids,
                                    keys=[layer.keys[i, :, start : start + length].clone() for layer in cache.layers],
                                    values=[layer.values[i, :, start : start + length].clone() for layer in cache.layers]))

    def _generation_config(self, params: SamplingParams, return_cache: bool = False) -> Any:
        """Plain sampling (or greedy); temperature and top-p are applied by `SampledLogprobs` itself."""
        from transformers import GenerationConfig

        return GenerationConfig(
            do_sample=params.temperature > 0, temperature=None, top_p=None, top_k=None if params.temperature == 0 else 0,
            max_new_tokens=params.max_new_tokens, output_scores=False, return_dict_in_generate=return_cache,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id,
        )

def trim(tokenizer: Any, prompt: list[int], ids: list[int], logprobs: list[float], stop_end: int | None) -> Generation:
    """Cut a row after its first EOS or stop string: what follows is padding, not samples.

    `stop_end` is the number of generated tokens when a stop string was first complete (None: never).
    The EOS (and the token that completed a stop string) is kept, with its log-prob.
    """
    eos = tokenizer.eos_token_id
    end, reason = (ids.index(eos) + 1, "eos") if eos in ids else (len(ids), "length")
    if stop_end is not None and eos not in ids[:stop_end]:
        end, reason = stop_end, "stop"
    kept = ids[:end]
    text = tokenizer.decode(kept, skip_special_tokens=True)
    return Generation(token_ids=kept, logprobs=list(logprobs[:end]), text=text, finish_reason=reason,
                      prompt_ids=list(prompt))


class SampledLogprobs:
    """The last logits processor: applies temperature and top-p, keeps log p(sampled token), nothing of size T x V.

    transformers appends its own temperature and top-p warpers *after* custom
    processors, so this one applies them (transformers' own classes, in the same
    order), and generate samples from exactly the scores it returns. At step t it
    keeps their (B, V) log-softmax; the token drawn from them is only known at step
    t+1, as input_ids[:, -1], where it is gathered and the (B, V) tensor dropped.
    `finish` gathers the last step's token from the finished sequences.
    """

    def __init__(self, params: SamplingParams) -> None:
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        sampled = params.temperature > 0
        self.warpers = ([TemperatureLogitsWarper(params.temperature)] if sampled and params.temperature != 1 else []) + (
            [TopPLogitsWarper(params.top_p)] if sampled and params.top_p < 1 else [])
        self.current: torch.Tensor | None = None  # (B, V) log-probs of the step being sampled
        self.picked: list[torch.Tensor] = []  # one (B,) per finished step

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self._gather(input_ids[:, -1])
        for warp in self.warpers:
            scores = warp(input_ids, scores)
        self.current = torch.log_softmax(scores.float(), dim=-1)  # (B, V)
        return scores

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, T_new): the log-prob of every generated token."""
        self._gather(sequences[:, -1])
        return torch.stack(self.picked, dim=1)

    def _gather(self, sampled: torch.Tensor) -> None:
        if self.current is not None:
            self.picked.append(self.current.gather(1, sampled[:, None])[:, 0])  # (B,)
            self.current = None


class StopOnText:
    """A transformers stopping criterion: a row stops once its *generated* text contains a stop string.

    (transformers' own `stop_strings` also match text that spans the prompt.)
    `ends[row]` records how many tokens the row had generated when it stopped.
    """

    def __init__(self, tokenizer: Any, stops: tuple[str, ...], prompt_width: int):
        self.tokenizer, self.stops, self.prompt_width = tokenizer, stops, prompt_width
        self.window = max((len(s) for s in stops), default=0) + 4  # tokens: each holds >= 1 char of a stop
        self.ends: dict[int, int] = {}

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        n_new = input_ids.shape[1] - self.prompt_width
        for row in range(input_ids.shape[0]) if self.stops else ():
            if row not in self.ends and self.hit(input_ids[row, input_ids.shape[1] - min(n_new, self.window) :].tolist()):
                self.ends[row] = n_new
        done = [row in self.ends for row in range(input_ids.shape[0])]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def hit(self, tail: list[int]) -> bool:
        """Whether the decoded tokens (the last `window` generated ones) contain a stop string."""
        text = self.tokenizer.decode(tail)
        return any(s in text for s in self.stops)

    def first_end(self, ids: list[int]) -> int | None:
        """The number of generated tokens when a stop string was first complete in `ids` (None: never)."""
        for n in range(1, len(ids) + 1) if self.stops else ():
            if self.hit(ids[max(0, n - self.window) : n]):
                return n
        return None


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids and attention mask, padded on the left so generation continues every row."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p) :] = 1
    return ids, mask

