"""Shared prompt compute: run a token prefix that several rows share once per forward pass.

The G rows of a GRPO group start with the same prompt (same task, same first
observation). `token_forward(..., share_prefix=True)` computes such a prefix
once and runs each row's remaining tokens on top of its keys and values:

1. `plan_prefixes` finds the shared prefixes from the token ids alone (group
   ids are not trusted): rows are sorted lexicographically by their prompt,
   the longest common prefix (LCP) of neighbours is taken, and the sorted
   rows are cut into runs that maximise the prefix tokens saved,
   sum over runs of (rows - 1) * LCP (`_runs`, a small dynamic programme;
   a run of two or more rows must share at least `min_prefix` tokens). A
   prefix ends before the first position that predicts a sampled token of
   any of its rows, so every logit, value and entropy the loss needs comes
   from the second pass. A row that shares with no other row is its own run
   (its prefix is its whole prompt, so the suffixes stay short). The plan is
   used only when it computes fewer token positions than the plain forward.
2. `SharedPrefixModel` runs the U distinct prefixes (U, P) with a cache,
   copies each prefix's keys/values to the rows that extend it with an index
   on the batch dimension (its backward sums the rows' gradients into the
   prefix), and runs the suffixes (B, S) on top with an explicit attention
   mask over [prefix | suffix] and position ids cumsum(mask) - 1.

Departure from the usual layout: prefixes are RIGHT-padded, so a row's cache
reads [prefix, masked gap, suffix] rather than [left pad, prefix, suffix].
Causality in transformers follows the cache index, and positions follow the
explicit position ids, so the gap changes nothing for the real tokens; but
every query, pad positions included, then sees at least one real key (no
fully masked softmax row), so the pad keys and values are always finite and
cannot turn a masked-out 0 * NaN into a NaN.

Results equal the plain forward up to float rounding (attention over a
different key layout); tests/test_shared_prefix.py checks log-probs,
entropies, values and gradients within 1e-5 in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from longhorizon.models.kv_cache import CACHE_KW

MIN_SHARED_PREFIX = 16  # tokens: shorter common prefixes are not worth a second pass


@dataclass
class PrefixPlan:
    """How a right-padded batch (B, T) splits into U shared prefixes and B suffixes."""

    prefix_ids: Tensor  # (U, P) right-padded prefixes (pad slots hold arbitrary real ids, masked)
    prefix_mask: Tensor  # (U, P) long
    source: Tensor  # (B,) the prefix each row extends
    start: Tensor  # (B,) the row's prefix length: where its suffix starts in the row
    suffix_ids: Tensor  # (B, S) right-padded
    suffix_mask: Tensor  # (B, S) long
    suffix_loss_mask: Tensor  # (B, S)
    width: int  # T

    def to(self, device: torch.device) -> "PrefixPlan":
        moved = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in vars(self).items()}
        return PrefixPlan(**moved)

    def to_rows(self, x: Tensor) -> Tensor:
        """(B, S) in suffix coordinates → (B, T) in row coordinates (0 on the prefix and padding)."""
        b, s = x.shape
        cols = self.start[:, None] + torch.arange(s, device=x.device)  # (B, S)
        full = x.new_zeros(b, self.width + s).scatter(1, cols, x)
        return full[:, : self.width]


def prompt_caps(attention_mask: Tensor, loss_mask: Tensor) -> Tensor:
    """(B,) the longest prefix each row may share: it ends before the position that predicts its first sampled token."""
    length = attention_mask.sum(1)
    first = torch.where(loss_mask.bool().any(1), loss_mask.bool().int().argmax(1), length)
    return (first - 1).clamp(min=0)


def prefix_order(input_ids: Tensor, attention_mask: Tensor, loss_mask: Tensor) -> Tensor:
    """(B,) a stable permutation sorting rows lexicographically by their prompt tokens (rows sharing one are adjacent)."""
    caps = prompt_caps(attention_mask.cpu(), loss_mask.cpu())
    keys = torch.where(torch.arange(input_ids.shape[1]) < caps[:, None], input_ids.cpu(), -1).numpy()  # -1: shorter first
    return torch.from_numpy(np.lexsort(keys.T[::-1]).copy())


def plan_prefixes(input_ids: Tensor, attention_mask: Tensor, loss_mask: Tensor,
                  min_prefix: int = MIN_SHARED_PREFIX) -> PrefixPlan | None:
    """The shared-prefix plan of a right-padded batch (B, T), or None when nothing worth sharing is found."""
    ids, mask, lmask = input_ids.cpu(), attention_mask.cpu(), loss_mask.cpu()
    caps = prompt_caps(mask, lmask)
    if not _right_padded(mask) or caps.min() < 1:
        return None
    order = prefix_order(ids, mask, lmask)
    runs = _runs(_neighbour_lcp(ids[order], caps[order]), min_prefix)
    if all(stop - begin == 1 for begin, stop, _ in runs):
        return None
    source, start = torch.empty_like(caps), torch.empty_like(caps)
    for u, (begin, stop, shared) in enumerate(runs):
        source[order[begin:stop]] = u
        start[order[begin:stop]] = shared if stop - begin > 1 else caps[order[begin]]
    plan = _build(ids, mask, lmask, order[[begin for begin, _, _ in runs]], source, start)
    return plan.to(input_ids.device) if _cost(plan) < ids.numel() else None


def _right_padded(mask: Tensor) -> bool:
    return bool((mask == (torch.arange(mask.shape[1]) < mask.sum(1, keepdim=True))).all())


def _neighbour_lcp(ids: Tensor, caps: Tensor) -> list[int]:
    """(B - 1,) common prefix length of sorted rows i and i + 1, at most either row's cap."""
    limit = torch.minimum(caps[1:], caps[:-1])  # (B - 1,)
    differs = (ids[1:] != ids[:-1]) | (torch.arange(ids.shape[1]) >= limit[:, None])  # (B - 1, T)
    return differs.int().argmax(1).tolist()  # first difference; caps < T so one always exists


def _runs(lcp: list[int], min_prefix: int) -> list[tuple[int, int, int]]:
    """Cut sorted rows into runs [begin, stop) with their shared length, maximising sum (rows - 1) * shared.

    `lcp[i]`: common prefix of sorted rows i and i + 1; a run of one row shares 0; O(B^2), B a micro-batch.
    """
    n = len(lcp) + 1
    best, cut = [0] * (n + 1), [(0, 0)] * (n + 1)  # best[i]: tokens saved on rows < i; cut[i]: its last run
    for stop in range(1, n + 1):
        best[stop], cut[stop] = best[stop - 1], (stop - 1, 0)  # the last row alone
        shared = None
        for begin in range(stop - 2, -1, -1):
            shared = lcp[begin] if shared is None else min(shared, lcp[begin])
            gain = best[begin] + (stop - begin - 1) * shared
            if shared >= min_prefix and gain > best[stop]:
                best[stop], cut[stop] = gain, (begin, shared)
    return _backtrack(cut)


def _backtrack(cut: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    runs, stop = [], len(cut) - 1
    while stop > 0:
        begin, shared = cut[stop]
        runs.append((begin, stop, shared))
        stop = begin
    return runs[::-1]


def _build(ids: Tensor, mask: Tensor, lmask: Tensor, heads: Tensor, source: Tensor, start: Tensor) -> PrefixPlan:
    """Cut each row at `start`: the prefixes of the `heads` rows (U, P), every row's suffix (B, S)."""
    lengths = start[heads]  # (U,) every row of a prefix starts its suffix at the prefix's length
    p = int(lengths.max())
    s = int((mask.sum(1) - start).max())
    cols = (start[:, None] + torch.arange(s)).clamp(max=ids.shape[1] - 1)  # (B, S)
    inside = torch.arange(s) < (mask.sum(1) - start)[:, None]
    return PrefixPlan(prefix_ids=ids[heads, :p], prefix_mask=(torch.arange(p) < lengths[:, None]).long(),
                      source=source, start=start, suffix_ids=ids.gather(1, cols) * inside,
                      suffix_mask=inside.long(), suffix_loss_mask=lmask.gather(1, cols) * inside,
                      width=ids.shape[1])


def _cost(plan: PrefixPlan) -> int:
    """Token positions the shared forward computes: U * P prefix positions plus B * S suffix positions."""
    return plan.prefix_ids.numel() + plan.suffix_ids.numel()


class SharedPrefixModel:
    """Called like the causal LM on the plan's suffixes; runs the plan's prefixes first and the suffixes on top."""

    def __init__(self, model: Any, plan: PrefixPlan):
        self.model, self.plan = model, plan

    def __call__(self, input_ids: Tensor, attention_mask: Tensor, logits_to_keep: Tensor,
                 output_hidden_states: bool = False, use_cache: bool = False) -> Any:
        """input_ids, attention_mask: the suffixes (B, S); returns .logits (B, K, V) and .hidden_states as the model does.

        `use_cache` is accepted for the caller's signature and ignored: the suffixes always run on the cache.
        """
        plan = self.plan
        cache = self._prefix_cache()
        mask = torch.cat([plan.prefix_mask[plan.source], attention_mask], dim=1)  # (B, P + S)
        positions = (mask.cumsum(1) - 1).clamp(min=0)[:, plan.prefix_ids.shape[1]:]  # (B, S)
        return self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                          logits_to_keep=logits_to_keep, output_hidden_states=output_hidden_states,
                          use_cache=True, **{CACHE_KW: cache})

    def _prefix_cache(self) -> Any:
        """The prefixes' keys/values (U, H, P, D) per layer, copied to the rows (B, H, P, D) that extend them."""
        plan = self.plan
        positions = (plan.prefix_mask.cumsum(1) - 1).clamp(min=0)  # (U, P); right padding repeats the last
        none = torch.zeros(0, dtype=torch.long, device=plan.prefix_ids.device)  # no logits needed
        out = self.model(input_ids=plan.prefix_ids, attention_mask=plan.prefix_mask, position_ids=positions,
                         logits_to_keep=none, use_cache=True)
        cache = getattr(out, CACHE_KW)
        cache.batch_select_indices(plan.source)  # autograd: index backward sums over the rows
        return cache
