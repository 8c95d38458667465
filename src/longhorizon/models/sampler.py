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
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch


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

    def __init__(self, model: Any, tokenizer: Any, params: SamplingParams | None = None, batch_size: int = 64):
        self.model, self.tokenizer = model, tokenizer
        self.params = params or SamplingParams()
        self.batch_size = batch_size
        self.calls = 0

    @property
    def max_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 1 << 30))

    def with_params(self, params: SamplingParams) -> "TransformersSampler":
        """A sampler on the same model with other settings and its own call counter (from 0)."""
        return TransformersSampler(self.model, self.tokenizer, params, self.batch_size)

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], params: SamplingParams | None = None) -> list[Generation]:
        """Sample one completion per prompt (prompts are lists of token ids)."""
        params = params or self.params
        seed = params.seed + self.calls
        self.calls += 1
        out: list[Generation] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            out += self._generate_batch(chunk, replace(params, seed=seed + start))
        return out

    def _generate_batch(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        input_ids, attention_mask = left_pad(prompts, self.tokenizer.pad_token_id)
        stopper = StopOnText(self.tokenizer, params.stop, input_ids.shape[1])
        recorder, device = SampledLogprobs(params), self.model.device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params.seed)
            sequences = self.model.generate(
                input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                generation_config=self._generation_config(params), stopping_criteria=[stopper],
                logits_processor=[recorder],
            )
        new_ids = sequences[:, input_ids.shape[1] :].cpu()
        logprobs = recorder.finish(sequences).cpu()  # (B, T_new)
        return [trim(self.tokenizer, p, new_ids[i].tolist(), logprobs[i].tolist(), stopper.ends.get(i))
                for i, p in enumerate(prompts)]

    def sync_weights(self, model: Any) -> None:
        """Nothing to do: this sampler generates with the live model object the trainer updates."""

    def _generation_config(self, params: SamplingParams) -> Any:
        """Plain sampling (or greedy); temperature and top-p are applied by `SampledLogprobs` itself."""
        from transformers import GenerationConfig

        return GenerationConfig(
            do_sample=params.temperature > 0, temperature=None, top_p=None, top_k=None if params.temperature == 0 else 0,
            max_new_tokens=params.max_new_tokens, output_scores=False, return_dict_in_generate=False,
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
