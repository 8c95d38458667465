"""Advantage estimators: pure functions of tensors, picked by name.

Shapes: sequence-level scores are `(N,)` with `group_ids: (N,) long` (samples
of the same task share an id; ids need not be contiguous or sorted).
Token-level tensors are `(B, T)` with `mask: (B, T)`, 1/True where the token
was sampled by the policy.

Every estimator in `ADVANTAGE_ESTIMATORS` returns `(result, metrics)`, with
`metrics: dict[str, float]`. The inputs differ per estimator (group scores for
"grpo"/"dr_grpo"/"rloo"/"loop", token rewards for "reinforce++", rewards and
values for "gae"), so the caller knows which one it picked. Small building
blocks (`whiten`, `kl_penalized_rewards`, `discounted_turn_returns`,
`broadcast_outcome`) return a bare tensor.

Masked ("skipped") positions: in every scan over time the positions with
mask 0 (environment / tool / template tokens, padding, missing turns) are
skipped: the next *valid* position is the next step, rewards or values
placed on a masked position are ignored, and outputs there are 0.

Departures from the papers / reference code:
1. GRPO (Shao et al. 2024, arXiv 2402.03300) uses the unbiased group std
   (`torch.std` default), as verl and TRL do. A group of size 1 gets
   advantage 0 (its std is taken as 0 instead of NaN; verl uses std 1, which
   gives the same 0 advantage).
2. LOOP's optional std normalisation uses the biased per-group std clipped at
   1e-7 (`np.std` in apple/ml-loop); the keep threshold is applied after it.
3. `whiten` uses the biased (population) variance over masked tokens, like
   OpenRLHF's REINFORCE++; verl's `masked_whiten` uses the unbiased one.
4. `kl_penalized_rewards` folds the KL in with estimator k1 by default
   (log pi - log pi_ref), as PPO-max (Zheng et al. 2023, arXiv 2307.04964) and
   OpenRLHF do; any key of `KL_ESTIMATORS` may be passed.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import Tensor

from longhorizon.algorithms.losses import KL_ESTIMATORS

Metrics = dict[str, float]


# ---------------------------------------------------------------- group helpers


def _group_index(group_ids: Tensor) -> Tensor:
    """Dense group index (N,) in [0, N) from arbitrary `group_ids (N,)`."""
    return torch.unique(group_ids, return_inverse=True)[1]


def _group_sum(x: Tensor, index: Tensor) -> Tensor:
    """Per-sample sum of `x (N,)` over the sample's group (`index` from `_group_index`) → (N,)."""
    return x.new_zeros(x.shape[0]).index_add(0, index, x)[index]


def _group_mean_std(x: Tensor, index: Tensor, *, unbiased: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample (group mean, group std, group size), each (N,). Size-1 groups get std 0."""
    count = _group_sum(torch.ones_like(x), index)
    mean = _group_sum(x, index) / count
    sq = _group_sum((x - mean) ** 2, index)
    dof = (count - 1).clamp(min=1) if unbiased else count
    std = torch.where(count > 1, (sq / dof).sqrt(), torch.zeros_like(x))
    return mean, std, count


def _loo_advantages(rewards: Tensor, index: Tensor) -> Tensor:
    """A_i = R_i - mean_{j != i} R_j, 0 for groups of size 1; (N,)."""
    count = _group_sum(torch.ones_like(rewards), index)
    others = (_group_sum(rewards, index) - rewards) / (count - 1).clamp(min=1)
    return torch.where(count > 1, rewards - others, torch.zeros_like(rewards))


def _score_metrics(adv: Tensor) -> Metrics:
    if adv.numel() == 0:
        return {"adv_mean": 0.0, "adv_std": 0.0, "adv_abs_max": 0.0}
    return {
        "adv_mean": adv.mean().item(),
        "adv_std": adv.std(unbiased=False).item(),
        "adv_abs_max": adv.abs().max().item(),
    }


# ---------------------------------------------------------- sequence-level


def grpo_advantages(
    rewards: Tensor, group_ids: Tensor, *, scale_by_std: bool = True, eps: float = 1e-6
) -> tuple[Tensor, Metrics]:
    """GRPO group-relative advantage, `rewards (N,)`, `group_ids (N,)` → `(N,)`.

    A_i = (R_i - mean_g R) / (std_g R + eps), std unbiased (torch.std default,
    same as verl and TRL). `scale_by_std=False` gives Dr.GRPO's A_i = R_i - mean_g R.
    """
    mean, std, count = _group_mean_std(rewards, _group_index(group_ids), unbiased=True)
    adv = rewards - mean  # GRPO, Shao et al. 2024 (arXiv 2402.03300) §4.1.2
    if scale_by_std:
        adv = adv / (std + eps)  # Dr.GRPO (Liu et al. 2025, arXiv 2503.20783) drops this division
    n_groups = (1.0 / count).sum().clamp(min=1)  # each group adds count * (1/count) = 1
    frac_flat = (((std < eps).to(adv.dtype) / count).sum() / n_groups).item()
    return adv, {**_score_metrics(adv), "frac_zero_std_groups": frac_flat}


def rloo_advantages(rewards: Tensor, group_ids: Tensor) -> tuple[Tensor, Metrics]:
    """REINFORCE leave-one-out, `rewards (N,)`, `group_ids (N,)` → `(N,)`.

    A_i = R_i - (1/(n-1)) sum_{j != i} R_j (Kool et al. 2019, "Buy 4 REINFORCE
    samples, get a baseline for free!"; Ahmadian et al. 2024, arXiv 2402.14740).
    Groups of size 1 get 0.
    """
    adv = _loo_advantages(rewards, _group_index(group_ids))
    return adv, _score_metrics(adv)


def loop_advantages(
    rewards: Tensor, group_ids: Tensor, *, abs_threshold: float = 0.01, normalize_std: bool = False
) -> tuple[tuple[Tensor, Tensor], Metrics]:
    """LOOP advantage and rollout filter → `((adv (N,), keep (N,) bool), metrics)`.

    adv is the leave-one-out advantage (LOOP, Chen et al. 2025, arXiv 2502.01600,
    methods.md §1); with `normalize_std` it is divided by max(std_g R, 1e-7)
    (biased std). keep = |adv| >= abs_threshold: rollouts with keep False are
    dropped from the update. Metric `frac_dropped` = 1 - mean(keep).
    """
    index = _group_index(group_ids)
    adv = _loo_advantages(rewards, index)
    if normalize_std:
        _, std, _ = _group_mean_std(rewards, index, unbiased=False)
        adv = adv / std.clamp(min=1e-7)  # apple/ml-loop `adv_normalization` (default off)
    keep = adv.abs() >= abs_threshold  # apple/ml-loop `_filter_rollouts`
    frac_dropped = 1.0 - keep.float().mean().item() if keep.numel() else 0.0
    return (adv, keep), {**_score_metrics(adv), "frac_dropped": frac_dropped}


# ------------------------------------------------------------- token-level


def _reverse_scan(x: Tensor, mask: Tensor, discount: float) -> Tensor:
    """y_t = x_t + discount * y_{next valid t'} over valid positions; 0 where masked. (B, T)."""
    valid = mask.bool()
    carry = x.new_zeros(x.shape[0])
    out = []
    for t in reversed(range(x.shape[1])):
        carry = torch.where(valid[:, t], x[:, t] + discount * carry, carry)
        out.append(carry)
    return torch.where(valid, torch.stack(out[::-1], dim=1), torch.zeros_like(x))


def _next_valid(x: Tensor, mask: Tensor) -> Tensor:
    """x at the next valid position after t (0 after the last valid one). (B, T)."""
    valid = mask.bool()
    carry = x.new_zeros(x.shape[0])
    out = []
    for t in reversed(range(x.shape[1])):
        out.append(carry)
        carry = torch.where(valid[:, t], x[:, t], carry)
    return torch.stack(out[::-1], dim=1)


def whiten(x: Tensor, mask: Tensor, *, eps: float = 1e-8, shift_mean: bool = True) -> Tensor:
    """(x - mean) / sqrt(var + eps) over masked entries of `x (B, T)`; 0 where masked.

    Mean and (biased) variance are over all masked tokens of the batch.
    `shift_mean=False` rescales without centring.
    """
    valid = mask.bool()
    n = valid.sum().clamp(min=1)
    x_valid = torch.where(valid, x, torch.zeros_like(x))
    mean = x_valid.sum() / n
    var = torch.where(valid, (x - mean) ** 2, torch.zeros_like(x)).sum() / n
    out = ((x - mean) if shift_mean else x) * torch.rsqrt(var + eps)
    return torch.where(valid, out, torch.zeros_like(x))


def kl_penalized_rewards(
    outcome: Tensor,
    logprobs: Tensor,
    ref_logprobs: Tensor,
    mask: Tensor,
    kl_coef: float,
    *,
    kl_estimator: str = "k1",
) -> Tensor:
    """Token rewards `(B, T)`: r_t = R·1[t = last valid] - kl_coef·KL_t on valid tokens.

    `outcome (B,)`, the rest `(B, T)`. PPO-max (Zheng et al. 2023, arXiv
    2307.04964) / REINFORCE++ (Hu 2025, arXiv 2501.03262) reward shaping.
    Rows with no valid token get all zeros.
    """
    valid = mask.bool()
    log_ratio = torch.where(valid, logprobs - ref_logprobs, torch.zeros_like(logprobs))
    rewards = -kl_coef * KL_ESTIMATORS[kl_estimator](log_ratio)
    positions = torch.arange(valid.shape[1], device=valid.device)
    last = torch.where(valid, positions, -1).max(dim=1).values  # (B,)
    rewards = rewards + (positions == last[:, None]) * outcome[:, None]
    return torch.where(valid, rewards, torch.zeros_like(rewards))


def reinforce_pp_advantages(
    token_rewards: Tensor, mask: Tensor, *, gamma: float = 1.0, eps: float = 1e-8
) -> tuple[Tensor, Metrics]:
    """REINFORCE++ (Hu 2025, arXiv 2501.03262): `token_rewards (B, T)` → advantages `(B, T)`.

    G_t = sum_{s >= t, valid} gamma^{k(s)} r_s (return-to-go over valid tokens),
    then whitened over all valid tokens of the batch. Build `token_rewards`
    with `kl_penalized_rewards`.
    """
    returns = _reverse_scan(token_rewards, mask, gamma)
    adv = whiten(returns, mask, eps=eps)
    valid = mask.bool()
    return adv, {"return_mean": returns[valid].mean().item() if valid.any() else 0.0}


def gae_advantages(
    rewards: Tensor,
    values: Tensor,
    mask: Tensor,
    *,
    gamma: float = 1.0,
    lam: float = 0.95,
    whiten_advantages: bool = False,
) -> tuple[tuple[Tensor, Tensor], Metrics]:
    """GAE (Schulman et al. 2016, arXiv 1506.02438) → `((advantages (B, T), returns (B, T)), metrics)`.

    All `(B, T)`. delta_t = r_t + gamma V_{t'} - V_t with t' the next valid
    position (V = 0 after the last one); A_t = delta_t + gamma lam A_{t'}.
    returns = A + V (before any whitening); both are 0 where masked.
    PPO-max whitens advantages (`whiten_advantages=True`).
    """
    valid = mask.bool()
    delta = rewards + gamma * _next_valid(values, mask) - values  # GAE eq. (11)
    adv = _reverse_scan(delta, mask, gamma * lam)  # GAE eq. (16)
    returns = torch.where(valid, adv + values, torch.zeros_like(adv))
    if whiten_advantages:
        adv = whiten(adv, mask)
    return (adv, returns), {"return_mean": returns[valid].mean().item() if valid.any() else 0.0}


# ------------------------------------------------------------- turn-level


def discounted_turn_returns(turn_rewards: Tensor, turn_mask: Tensor, gamma: float) -> Tensor:
    """Per-turn return-to-go `(N, K)`: G_k = r_k + gamma G_{next valid k}; 0 on missing turns."""
    return _reverse_scan(turn_rewards, turn_mask, gamma)


def broadcast_outcome(outcome: Tensor, turn_mask: Tensor) -> Tensor:
    """Give the episode outcome `(N,)` to every valid turn → `(N, K)` (0 on missing turns)."""
    return torch.where(turn_mask.bool(), outcome[:, None], outcome.new_zeros(()))


def component_advantages(components: Tensor, turn_mask: Tensor, group_ids: Tensor) -> tuple[Tensor, Metrics]:
    """Each reward component's own GRPO advantage, for LongWriter-Zero's advantage averaging.

    `components (C, N, K)`, `turn_mask (N, K)`, `group_ids (N,)` → `(C, N, K)`: component c's episode total
    R^c_i standardised in its group, (R^c_i - mean_g R^c) / (std_g R^c + eps) (`grpo_advantages`), on episode
    i's last valid turn, 0 elsewhere. Mixed with weights 1/C and not standardised again (Dr.GRPO's form) it is
    A_i = (1/C) sum_c (R^c_i - mean_g R^c) / std_g R^c (Wu, Bai et al. 2025, LongWriter-Zero; methods-2.md §4c).
    """
    valid = turn_mask.bool()
    totals = torch.where(valid, components, torch.zeros_like(components)).sum(-1)  # (C, N)
    per = [grpo_advantages(r, group_ids) for r in totals]
    z = torch.stack([adv for adv, _ in per]) if per else totals  # (C, N)
    last = valid & (valid.cumsum(1) == valid.sum(1, keepdim=True))  # (N, K) each episode's last valid turn
    flat = sum(m["frac_zero_std_groups"] for _, m in per) / max(len(per), 1)
    return torch.where(last, z[..., None], torch.zeros_like(components)), {"component_frac_zero_std": flat}


ADVANTAGE_ESTIMATORS: dict[str, Callable[..., tuple]] = {
    "grpo": grpo_advantages,
    "dr_grpo": functools.partial(grpo_advantages, scale_by_std=False),
    "rloo": rloo_advantages,
    "loop": loop_advantages,
    "reinforce++": reinforce_pp_advantages,
    "gae": gae_advantages,
}
