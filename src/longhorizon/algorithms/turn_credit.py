"""Credit across turns: gated reward accumulation (G-RA), EAPO discounting, fine-grained reward mixes.

Shapes: per-turn tensors are `(N, K)` (N episodes, K turns) with
`turn_mask (N, K)` (1 where the turn exists); reward components are stacked
as `(C, N, K)`, the highest priority first. Every function returns
`(value, metrics)`; `TURN_CREDIT_FUNCTIONS` names them.

- G-RA (Sun et al., arXiv 2508.10548, methods.md §6): component c counts
  only if every higher-priority component j < c has an episode total
  >= gates[j]: R = r_high + 1[r_high >= delta] sum r_low, generalised to K levels.
- EAPO (IterResearch, Chen et al., arXiv 2511.07327, methods.md §7): every
  round t of a T-round episode becomes a sample with reward
  gamma^(T - t) R_T (1-based t; gamma^(T - 1 - t) with 0-based turns).
- Fine-grained rewards (Wu et al., NeurIPS 2023, methods.md §15): several
  segment scores, each from a small named function, mixed with weights into
  dense per-segment rewards r_t = sum_k w_k R_k(segment t).

Choices:
1. G-RA gates compare each component's raw (unweighted) episode total; the
   paper's exact levels and delta are [NOT FOUND]. A gate of -inf is always
   open (the identity).
2. EAPO's R_T is the episode outcome the caller gives (e.g. the return or
   success); gamma is [NOT FOUND] in the paper (0.995 recalled).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

Metrics = dict[str, float]


def gated_reward_accumulation(
    components: Tensor, turn_mask: Tensor, gates: Sequence[float]
) -> tuple[Tensor, Metrics]:
    """G-RA: zero component c of an episode unless every j < c has episode total >= gates[j].

    `components (C, N, K)`, `turn_mask (N, K)`, `len(gates) == C - 1` →
    gated `(C, N, K)` (0 on missing turns). Metrics: `gated_frac`, the
    fraction of nonzero lower-priority turn rewards that a closed gate
    dropped; `gate_open_frac`, the fraction of (episode, level) gates open.
    """
    valid = turn_mask.bool()
    comps = torch.where(valid, components, torch.zeros_like(components))
    open_ = gate_open(components, turn_mask, gates)  # (C, N)
    gated = torch.where(open_[..., None], comps, torch.zeros_like(comps))
    lower = (comps[1:] != 0) & valid
    dropped = lower & ~open_[1:, :, None]
    n_lower = lower.sum().item()
    return gated, {"gated_frac": dropped.sum().item() / n_lower if n_lower else 0.0,
                   "gate_open_frac": open_[1:].float().mean().item() if len(gates) else 1.0}


def gate_open(components: Tensor, turn_mask: Tensor, gates: Sequence[float]) -> Tensor:
    """(C, N) bool: component c of episode n counts (G-RA): every j < c has episode total >= gates[j]."""
    if len(gates) != components.shape[0] - 1:
        raise ValueError(f"G-RA needs one gate per component but the last: {components.shape[0]} components, {len(gates)} gates")
    totals = torch.where(turn_mask.bool(), components, torch.zeros_like(components)).sum(-1)  # (C, N)
    passed = totals[:-1] >= torch.tensor(list(gates), dtype=totals.dtype)[:, None]  # (C-1, N)
    return torch.cat([torch.ones_like(passed[:1]), passed.long().cumprod(0).bool()], dim=0)  # G-RA gate


def mix_segment_rewards(
    components: Tensor, weights: Sequence[float], turn_mask: Tensor, names: Sequence[str] | None = None
) -> tuple[Tensor, Metrics]:
    """Dense per-turn rewards `(N, K)` = sum_c weights[c] components[c]; `components (C, N, K)`.

    Fine-grained RLHF (Wu et al. 2023) eq. (1) without its KL term. Metrics:
    `return_<name>`, the mean over episodes of each weighted component's episode return.
    """
    valid = turn_mask.bool()
    w = torch.tensor(list(weights), dtype=components.dtype)[:, None, None]
    weighted = torch.where(valid, w * components, torch.zeros_like(components))  # (C, N, K)
    names = names or [str(c) for c in range(components.shape[0])]
    metrics = {f"return_{n}": (weighted[c].sum(-1).mean().item() if weighted.shape[1] else 0.0)
               for c, n in enumerate(names)}
    return weighted.sum(0), metrics


def eapo_round_rewards(outcome: Tensor, turn_mask: Tensor, gamma: float) -> tuple[Tensor, Metrics]:
    """EAPO: round t (0-based) of an episode with T rounds gets gamma^(T - 1 - t) * R; `outcome (N,)` → `(N, K)`.

    IterResearch / EAPO (arXiv 2511.07327): shorter successful trajectories
    give larger rewards to their early rounds. 0 on missing turns.
    """
    valid = turn_mask.bool()
    rounds = valid.sum(1, keepdim=True)  # (N, 1) T
    t = torch.arange(turn_mask.shape[1], dtype=outcome.dtype)[None, :]
    power = (rounds - 1 - t).clamp(min=0).to(outcome.dtype)
    rewards = torch.where(valid, gamma**power * outcome[:, None], torch.zeros_like(power))  # EAPO discounting
    return rewards, {"round_reward_mean": rewards[valid].mean().item() if valid.any() else 0.0}


TURN_CREDIT_FUNCTIONS: dict[str, Callable[..., tuple[Tensor, Metrics]]] = {
    "gated_reward_accumulation": gated_reward_accumulation,
    "mix_segment_rewards": mix_segment_rewards,
    "eapo_round_rewards": eapo_round_rewards,
}
