"""Entropy-aware credit and regularisers: EMPG, EPO, SIREN, STEER. Pure functions of tensors.

Shapes: token tensors are `(B, T)` with `mask (B, T)` (1 where the policy
sampled the token); per-step (turn) tensors are `(N, K)` with
`step_mask (N, K)`. Every function returns `(value, metrics)` with
`metrics: dict[str, float]`; `ENTROPY_FUNCTIONS` names them.

- EMPG (Entropy-Modulated Policy Gradients, arXiv 2509.09265, methods.md §2):
  `empg_step_weights` (self-calibrated g(H) and the future-clarity bonus
  f(H_{t+1}) per step) and `empg_advantages` (A' = g A + zeta f).
- EPO (Entropy-regularized Policy Optimization, arXiv 2509.22576, methods.md §3,
  methods-2.md §0): `epo_band_penalty`, `epo_phase_weight`, `epo_loss`.
- SIREN (Selective entropy regularisation, arXiv 2509.25133, methods.md §4,
  methods-2.md §0): `topp_entropy`, `peak_entropy_mask`, `selected_entropy`,
  `siren_loss`.
- STEER (arXiv 2510.10150, methods.md §5): `steer_weights`.

Choices and departures (where the sources are silent or the code differs from
the papers):
1. EMPG: no official code; the project-page pseudocode stops after f(H). The
   application step A' = g(H_t) A + zeta f(H_{t+1}) is [UNVERIFIED] (methods.md
   §2). The final batch normalisation of A' is optional (`normalize`, off by
   default), so that with a constant entropy (g = 1) and zeta = 0 EMPG is
   exactly the base estimator. The last step of an episode gets no bonus
   (it has no next step). Steps are turns; H_t is the mean token entropy of
   the turn under the rollout policy.
2. EPO: as in the official code (WujiangXu/EPO @ 5b6fa98), the band penalty
   m_t is a constant (0 inside the band, beta_out outside): P_smooth carries
   no gradient, so the smoothing changes the reported loss, not the update;
   only the entropy bonus -c_H * Hbar moves the weights. Tokens of a turn
   with no history yet get m_t = 0 (the code's no-history branch returns a
   mask of ones, an unpacking bug). The smoothing switch is a bool given by
   the caller (the code: any row of the micro-batch at rollout step >=
   max_step // 2).
3. SIREN: as in the official code (Linn3a/siren), the nucleus keeps the
   ranked tokens whose inclusive cumulative probability is < p
   (`searchsorted` left): the token that crosses p is left out, and when the
   top token alone has probability >= p the nucleus is empty and H^topp = 0.
   The quantile is `torch.nanquantile` (linear interpolation) per row over
   its sampled tokens and the mask keeps H > q strictly, so a row with one
   sampled token selects nothing. With no token selected in the batch the
   penalty is 0 (the code would give NaN).
4. STEER: log p_t uses the clamped p_t; rows with no sampled token get
   weight 1; the max |Omega| is over the sampled tokens given (the code's
   micro-batch).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from longhorizon.algorithms.advantages import _next_valid, whiten
from longhorizon.algorithms.losses import entropy_from_logits, token_weights, weighted_sum

Metrics = dict[str, float]


@torch.no_grad()
def _stats(x: Tensor, valid: Tensor, name: str) -> Metrics:
    """Mean and (population) std of `x` over `valid` entries, as `{name}_mean`, `{name}_std`."""
    v = x[valid.bool()].double()
    if v.numel() == 0:
        return {f"{name}_mean": 0.0, f"{name}_std": 0.0}
    return {f"{name}_mean": v.mean().item(), f"{name}_std": v.std(unbiased=False).item()}


# ------------------------------------------------------------------ EMPG


def empg_step_weights(
    step_entropy: Tensor, step_mask: Tensor, *, k: float = 1.0, k_f: float = 1.0, eps: float = 1e-8
) -> tuple[tuple[Tensor, Tensor], Metrics]:
    """EMPG scaling g(H_t) and bonus f(H_{t+1}) per step: `(N, K)` in → `((g, f_next), metrics)`, each `(N, K)`.

    H_norm = (H - min H) / (max H - min H + eps) over the batch's valid steps;
    g = exp(-k H_norm) / mean exp(-k H_norm); f_next = exp(-k_f H_norm) of the
    next valid step (0 on the last step and on missing steps).
    """
    valid = step_mask.bool()
    if not valid.any():
        zeros = torch.zeros_like(step_entropy)
        return (zeros, zeros), {"modulation_mean": 0.0, "modulation_std": 0.0, "bonus_mean": 0.0}
    h = step_entropy[valid]
    h_norm = (step_entropy - h.min()) / (h.max() - h.min() + eps)  # EMPG Eq. 12 (batch min-max)
    scale = torch.exp(-k * h_norm)
    g = scale / scale[valid].mean()  # EMPG Eq. 10: self-calibrated, mean g = 1 over steps
    f = torch.exp(-k_f * h_norm)  # EMPG Eq. 11: future clarity
    g = torch.where(valid, g, torch.zeros_like(g))
    f_next = _next_valid(torch.where(valid, f, torch.zeros_like(f)), step_mask)
    has_next = _next_valid(valid.to(f.dtype), step_mask) > 0
    metrics = {**_stats(g, valid, "modulation"), "bonus_mean": _stats(f_next, valid & has_next, "b")["b_mean"]}
    return (g, f_next), metrics


def empg_advantages(
    advantages: Tensor, g: Tensor, f_next: Tensor, mask: Tensor, *, zeta: float = 0.1, normalize: bool = False
) -> tuple[Tensor, Metrics]:
    """A' = g A + zeta f_next on sampled tokens; all `(B, T)` (g, f_next already on tokens) → `(B, T)`.

    EMPG (arXiv 2509.09265, [UNVERIFIED] application step, methods.md §2);
    `normalize` whitens A' over the sampled tokens (zero mean, unit std).
    """
    valid = mask.bool()
    modulated = g * advantages + zeta * f_next
    if normalize:
        modulated = whiten(modulated, mask)
    modulated = torch.where(valid, modulated, torch.zeros_like(modulated))
    return modulated, {**_stats(advantages, valid, "adv_before"), **_stats(modulated, valid, "adv_after")}


# ------------------------------------------------------------------ EPO


def epo_phase_weight(epoch: int, max_epochs: int = 150) -> float:
    """EPO's adaptive phase weight w(epoch) (official code `_calculate_epoch_based_entropy_weight`).

    First half: 1 - 0.2 (1 - exp(-2p)), p = epoch / (E/2); second half: 0.8 exp(-3p), p = (epoch - E/2) / (E/2).
    """
    half = max_epochs / 2
    if epoch <= half:
        return 1.0 - 0.2 * (1.0 - math.exp(-2.0 * epoch / half))
    return 0.8 * math.exp(-3.0 * (epoch - half) / half)


@torch.no_grad()
def epo_band_penalty(
    entropy: Tensor, history: Tensor, has_history: Tensor, mask: Tensor, *,
    r_min: float = 0.0, r_max: float = 2.0, beta_out: float = 0.1,
) -> tuple[Tensor, Metrics]:
    """EPO's out-of-band mask m_t `(B, T)`: 0 if r_min Hhist < H_t < r_max Hhist, else beta_out.

    `entropy`, `history` (the historical mean entropy of each token's turn),
    `has_history` (bool) and `mask`: `(B, T)`. 0 off the mask and where the
    turn has no history. Metric `in_band_frac` over tokens with history.
    """
    counted = mask.bool() & has_history.bool()
    inside = (entropy > r_min * history) & (entropy < r_max * history)  # EPO code `generate_entropy_penalty`
    penalty = torch.where(counted & ~inside, torch.full_like(entropy, beta_out), torch.zeros_like(entropy))
    n = counted.sum().item()
    return penalty, {"in_band_frac": (inside & counted).sum().item() / n if n else 0.0}


def epo_loss(
    entropy: Tensor, penalty: Tensor, weights: Tensor, *,
    coef: float = 0.001, smooth_coef: float = 1.0, phase_weight: float = 1.0, smooth_on: bool = True,
) -> tuple[Tensor, Metrics]:
    """EPO regulariser -c_H [Hbar - c_s w P_smooth]; `entropy` (with grad), `penalty`, `weights`: `(B, T)`.

    Hbar = sum(weights * H) and P_smooth = sum(weights * m) with the loss's
    token weights (`token_weights`), as the code aggregates both with
    `loss_agg_mode`. `smooth_on` False drops the penalty (the code's switch).
    """
    h_bar = weighted_sum(entropy, weights)
    p_smooth = weighted_sum(penalty, weights) * (phase_weight if smooth_on else 0.0)
    loss = -coef * (h_bar - smooth_coef * p_smooth)  # EPO dp_actor.py: pg_loss - entropy_coeff * entropy_loss
    return loss, {"entropy_bonus": h_bar.item(), "smooth_penalty": float(p_smooth), "phase_weight": phase_weight}


# ------------------------------------------------------------------ SIREN


def topp_entropy(logits: Tensor, p: float = 0.8, top_k: int = 10000) -> Tensor:
    """Entropy inside the nucleus, renormalised: `logits (..., V)` → `(...)`, differentiable.

    SIREN `efficient_top_p_sampling`: rank the top_k tokens, keep those whose
    inclusive cumulative probability is < p, renormalise, take the entropy.
    An empty nucleus (top token's probability >= p) gives 0.
    """
    probs = torch.softmax(logits, dim=-1)
    top_probs, top_idx = torch.topk(probs, k=min(top_k, logits.shape[-1]), dim=-1)
    keep_ranked = torch.cumsum(top_probs, dim=-1) < p  # == arange < searchsorted(cum, p), SIREN code
    keep = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, top_idx, keep_ranked)
    empty = ~keep.any(-1, keepdim=True)
    nucleus = logits.masked_fill(~(keep | empty), float("-inf"))  # empty rows: any finite value, zeroed below
    return torch.where(empty[..., 0], torch.zeros_like(probs[..., 0]), entropy_from_logits(nucleus))


@torch.no_grad()
def peak_entropy_mask(entropy: Tensor, mask: Tensor, quantile: float = 0.8) -> tuple[Tensor, Metrics]:
    """SIREN's position mask `(B, T)` bool: H_t > the row's `quantile` of H over its sampled tokens.

    `torch.nanquantile` per row (SIREN `mask_by_quantile`); rows with no sampled token select nothing.
    """
    valid = mask.bool()
    if entropy.shape[1] == 0:
        return valid, {"selected_frac": 0.0}
    filled = entropy.float().masked_fill(~valid, float("nan"))
    bound = torch.nanquantile(filled, quantile, dim=-1, keepdim=True)  # NaN for empty rows: compares False
    selected = valid & (entropy > bound)
    n = valid.sum().item()
    return selected, {"selected_frac": selected.sum().item() / n if n else 0.0}


def selected_entropy(entropy: Tensor, selected: Tensor) -> Tensor:
    """Hsel: seq-mean-token-mean of `entropy (B, T)` over `selected (B, T)`; 0 when nothing is selected."""
    return weighted_sum(entropy, token_weights(selected, None, "seq-mean-token-mean"))


def siren_loss(entropy: Tensor, selected: Tensor, anchor: float, *, coef: float = 0.005) -> tuple[Tensor, Metrics]:
    """SIREN's self-anchored penalty alpha (Hsel - H_anchor)^2; `entropy` (with grad), `selected`: `(B, T)`.

    SIREN dp_actor.py: `entropy_change.pow(2).mean()` added with entropy_coeff.
    No selected token: 0 (no gradient).
    """
    if not selected.any():
        return entropy.new_zeros(()) * entropy.sum(), {"selected_entropy": 0.0, "anchor": anchor}
    h_sel = selected_entropy(entropy, selected)
    loss = coef * (h_sel - anchor) ** 2
    return loss, {"selected_entropy": h_sel.item(), "anchor": anchor}


# ------------------------------------------------------------------ STEER


@torch.no_grad()
def steer_weights(
    logprobs: Tensor, old_logprobs: Tensor, entropy: Tensor, advantages: Tensor, mask: Tensor, *,
    lambda_min: float = 0.8, omega_floor: float = 0.02,
) -> tuple[Tensor, Metrics]:
    """STEER per-token weights lambda_t `(B, T)` in [lambda_min, 1] (1 off the mask); all inputs `(B, T)`.

    Omega_t = (A_t / p_old) p_t (1 - p_t) (log p_t + H_t) (first-order entropy
    change); k = -ln(lambda_min) / max(max |Omega|, omega_floor);
    lambda = clamp(exp(-k |Omega|), lambda_min, 1). STEER `compute_token_weights`.
    """
    valid = mask.bool()
    p = torch.where(valid, logprobs, torch.zeros_like(logprobs)).exp().clamp(1e-8, 1 - 1e-8)
    p_old = torch.where(valid, old_logprobs, torch.zeros_like(old_logprobs)).exp()
    omega = (advantages / p_old) * p * (1 - p) * (torch.log(p) + entropy)  # STEER first-order dH estimate
    omega = torch.where(valid, omega, torch.zeros_like(omega)).abs()
    k = -math.log(lambda_min) / max(omega.max().item() if omega.numel() else 0.0, omega_floor)
    lam = torch.exp(-k * omega).clamp(lambda_min, 1.0)  # STEER exponential mode
    lam = torch.where(valid, lam, torch.ones_like(lam))
    return lam, {**_stats(lam, valid, "weight"), "omega_abs_max": omega.max().item() if omega.numel() else 0.0}


ENTROPY_FUNCTIONS: dict[str, Callable] = {
    "empg_step_weights": empg_step_weights,
    "empg_advantages": empg_advantages,
    "epo_band_penalty": epo_band_penalty,
    "epo_loss": epo_loss,
    "epo_phase_weight": epo_phase_weight,
    "topp_entropy": topp_entropy,
    "peak_entropy_mask": peak_entropy_mask,
    "siren_loss": siren_loss,
    "steer_weights": steer_weights,
}
