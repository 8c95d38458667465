"""Sampling from the geometric mixture of two models, pi^mu ∝ pi^(1-m) * pi_ref^m, token by token (Nash-MD).

Nash-MD (Munos et al. 2024, methods.md §9a) plays the policy against
opponents drawn from this mixture. As in TRL's `GeometricMixtureWrapper`
(trl/models/modeling_base.py), each next-token distribution is
log_softmax(m * logits_ref + (1 - m) * logits_policy). Here it is a
transformers logits processor on the policy's `generate`, so the sampler's
batching, stop strings, seeds and log-prob recording stay as they are: the
processor runs the reference on the same ids (its own KV cache across the
steps of one `generate` call, positions from the left-padded attention mask)
and returns the mixture's log-probs as the scores.

    sampler = TransformersSampler(model, tokenizer, params, kv_cache_bytes=0,
                                  processors=mixture_processors(lambda: reference(models), coef=0.5))

Choices:
1. Temperature and top-p apply to the mixture afterwards (the sampler's own
   warpers): at temperature 1 the draw is exactly from pi^mu; TRL's
   generation config does the same.
2. The mixture uses the raw logits of both models (temperature 1); the
   recorded log-probs are those of the tokens under the (tempered) mixture.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Callable

import torch

from longhorizon.models.kv_cache import CACHE_KW

RefModel = Callable[[], AbstractContextManager[Any]]  # enters to the reference model (a frozen copy, or adapters off)


class GeometricMixture:
    """Logits processor: scores → log_softmax(coef * ref + (1 - coef) * scores) at every generation step."""

    def __init__(self, ref_model: RefModel, attention_mask: torch.Tensor, coef: float):
        self.ref_model, self.mask, self.coef = ref_model, attention_mask, coef
        self.cache: Any = None
        self.seen = 0  # tokens of each row the reference has processed

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        ref = self._ref_logits(input_ids).to(scores.dtype)
        return torch.log_softmax(self.coef * ref + (1 - self.coef) * scores, dim=-1)  # Munos et al. 2024, Nash-MD

    @torch.no_grad()
    def _ref_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, V) the reference's next-token logits after `input_ids`, feeding it only the ids it has not seen."""
        width = input_ids.shape[1]
        mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], width - self.mask.shape[1])], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        new = slice(self.seen, width)
        with self.ref_model() as model:
            out = model(input_ids=input_ids[:, new], attention_mask=mask, position_ids=positions[:, new],
                        use_cache=True, **({CACHE_KW: self.cache} if self.cache is not None else {}))
        self.cache, self.seen = getattr(out, CACHE_KW), width
        return out.logits[:, -1].float()


def mixture_processors(ref_model: RefModel, coef: float) -> Callable[[torch.Tensor], list[GeometricMixture]]:
    """The sampler's `processors` factory: a fresh mixture processor (fresh reference cache) per batch."""
    if not 0.0 <= coef <= 1.0:
        raise ValueError(f"the mixture coefficient must be in [0, 1], got {coef}")
    return lambda attention_mask: [GeometricMixture(ref_model, attention_mask, coef)]
