"""Policy, KL and value losses: pure functions of token tensors, picked by name.

Shapes: token tensors are `(B, T)`; `mask (B, T)` (bool or float) is 1 where
the token was sampled by the policy. Masked-out positions never reach the
maths: inputs there are replaced by 0 *before* any exp / product, so
arbitrary (even inf) values there change neither the loss nor the gradient.

Losses return `(loss, metrics)` with `loss` a scalar tensor and
`metrics: dict[str, float]`; token-level building blocks (`kl_penalty`,
`entropy_from_logits`, `aggregate`) return bare tensors.

All `POLICY_LOSSES` entries share one signature,
`fn(logprobs, old_logprobs, advantages, mask, *, agg=..., trace_ids=None, weights=None, **kw)`,
so the trainer can call any of them the same way.

Aggregation is a weighting: `token_weights(mask, trace_ids, agg)` gives each
token its weight `(B, T)` and every loss returns sum(weights * l_t). Given
`weights` (computed once over a whole minibatch and sliced per micro-batch),
a loss uses them as they are, so micro-batch losses add up exactly to the
minibatch loss for every aggregation; without, it weighs its own batch by `agg`.

Departures from papers / reference code:
1. `clip_frac` counts the tokens where the clipped PPO term is the one taken
   and differs from the unclipped one, i.e. the token gets no gradient
   (A > 0 and ratio > 1 + clip_high, or A < 0 and ratio < 1 - clip_low; the
   TRL / verl definition). `ratio_outside_band_frac` is the CleanRL-style
   |ratio - 1| outside the band, whatever the sign of A.
2. "seq-mean-token-mean" and "seq-mean-token-sum" average over the sequences
   that have at least one masked token (verl's seq-mean-token-sum divides by
   all rows); rows with no sampled token are ignored, not counted as 0.
3. "trace-length" is Delethink's "seq-mean-token-norm-trace-length"
   (Aghajohari et al. 2025, arXiv 2510.06557, methods.md §8), written
   directly as (1/B_traces) sum_traces (1/L_trace) sum_{chunks, tokens} l;
   Delethink computes the same number as a row mean with trace lengths
   rescaled by B_traces/B_rows. Traces with no sampled token are not counted.
4. `loop_loss` defaults to "seq-mean-token-mean": LOOP (Chen et al. 2025,
   arXiv 2502.01600) averages over a trajectory's output tokens, then over
   trajectories.
5. `reinforce_loss` ignores `old_logprobs` (on-policy REINFORCE / RLOO, no
   importance weight).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Metrics = dict[str, float]


def _zeros_where_masked(x: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask.bool(), x, torch.zeros_like(x))


@torch.no_grad()
def _masked_mean(x: Tensor, mask: Tensor) -> float:
    """Mean of `x (B, T)` over masked tokens as a python float (0.0 if none)."""
    valid = mask.bool()
    return (_zeros_where_masked(x.to(torch.float64), valid).sum() / valid.sum().clamp(min=1)).item()


# ---------------------------------------------------------------- aggregation


def _row_counts(mask: Tensor) -> Tensor:
    """Masked tokens of each row (B,), float64."""
    return mask.bool().sum(dim=1).to(torch.float64)


def _token_mean_weights(mask: Tensor, trace_ids: Tensor | None) -> Tensor:
    """1 / (number of masked tokens in the batch) on every masked token."""
    count = _row_counts(mask)
    return mask.bool().to(torch.float64) / count.sum().clamp(min=1)


def _seq_mean_token_mean_weights(mask: Tensor, trace_ids: Tensor | None) -> Tensor:
    """1 / (row's masked tokens * rows with >= 1 masked token)."""
    count = _row_counts(mask)
    n_rows = (count > 0).sum().clamp(min=1)
    return mask.bool().to(torch.float64) / (count.clamp(min=1)[:, None] * n_rows)


def _seq_mean_token_sum_weights(mask: Tensor, trace_ids: Tensor | None) -> Tensor:
    """1 / (rows with >= 1 masked token)."""
    count = _row_counts(mask)
    return mask.bool().to(torch.float64) / (count > 0).sum().clamp(min=1)


def _trace_length_weights(mask: Tensor, trace_ids: Tensor | None) -> Tensor:
    """Delethink: 1 / (L_trace * traces with >= 1 masked token); L_trace = masked tokens over the trace's rows."""
    if trace_ids is None:
        raise ValueError("aggregation 'trace-length' needs trace_ids (B,)")
    count = _row_counts(mask)
    index = torch.unique(trace_ids, return_inverse=True)[1]  # (B,) dense trace index < B
    trace_len = count.new_zeros(count.shape[0]).index_add(0, index, count)  # (B,) per trace
    n_traces = (trace_len > 0).sum().clamp(min=1)
    row_len = trace_len[index].clamp(min=1)  # (B,) L of the row's trace
    return mask.bool().to(torch.float64) / (row_len[:, None] * n_traces)  # Delethink §8


AGGREGATIONS: dict[str, Callable[[Tensor, Tensor | None], Tensor]] = {
    "token-mean": _token_mean_weights,
    "seq-mean-token-mean": _seq_mean_token_mean_weights,
    "seq-mean-token-sum": _seq_mean_token_sum_weights,
    "trace-length": _trace_length_weights,
}


def token_weights(mask: Tensor, trace_ids: Tensor | None = None, agg: str = "token-mean") -> Tensor:
    """Weights `(B, T)` of every token in the loss: loss = sum(weights * token_loss).

    Computed over the whole (mini)batch `mask (B, T)` so that any split of its
    rows into micro-batches, each summing its slice of the weights, adds up
    to the same loss and gradient. 0 off the mask; when some token is masked
    the weights sum to 1, except seq-mean-token-sum's (the mean row length). `trace_ids (B,)` is needed only by "trace-length".
    """
    return AGGREGATIONS[agg](mask, trace_ids).to(torch.float32)


def weighted_sum(loss_tok: Tensor, weights: Tensor) -> Tensor:
    """sum_t weights * loss_tok over `(B, T)`, with loss_tok taken as 0 where the weight is 0."""
    return torch.where(weights != 0, loss_tok * weights.to(loss_tok.dtype), torch.zeros_like(loss_tok)).sum()


def _weights(mask: Tensor, agg: str, trace_ids: Tensor | None, weights: Tensor | None) -> Tensor:
    """The given weights, or those of `agg` over this batch."""
    return weights if weights is not None else token_weights(mask, trace_ids, agg)


def aggregate(
    loss_tok: Tensor, mask: Tensor, mode: str = "token-mean", *, trace_ids: Tensor | None = None
) -> Tensor:
    """Reduce token losses `(B, T)` to a scalar: `weighted_sum` with `token_weights` of `mode`.

    `trace_ids (B,)` is needed only by "trace-length" (ignored by the others).
    """
    return weighted_sum(loss_tok, token_weights(mask, trace_ids, mode))


# ---------------------------------------------------------------- policy losses


@torch.no_grad()
def _ppo_metrics(
    ratio: Tensor, log_ratio: Tensor, adv: Tensor, mask: Tensor, low: float, high: float
) -> Metrics:
    clipped_high = (ratio > 1 + high) & (adv > 0)
    clipped_low = (ratio < 1 - low) & (adv < 0)
    outside = (ratio > 1 + high) | (ratio < 1 - low)
    return {
        "clip_frac": _masked_mean((clipped_high | clipped_low).float(), mask),
        "clip_frac_high": _masked_mean(clipped_high.float(), mask),
        "clip_frac_low": _masked_mean(clipped_low.float(), mask),
        "ratio_outside_band_frac": _masked_mean(outside.float(), mask),
        "approx_kl": _masked_mean(ratio - 1 - log_ratio, mask),  # k3 of KL(pi_old || pi_theta)
        "approx_kl_k1": _masked_mean(-log_ratio, mask),  # mean(old - new)
        "ratio_mean": _masked_mean(ratio, mask),
    }


def ppo_clip_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    agg: str = "token-mean",
    trace_ids: Tensor | None = None,
    weights: Tensor | None = None,
) -> tuple[Tensor, Metrics]:
    """PPO clipped surrogate. `logprobs`, `old_logprobs`, `advantages`, `mask`: (B, T).

    ratio = exp(logp - logp_old);
    l_t = -min(ratio A, clip(ratio, 1 - clip_low, 1 + clip_high) A), aggregated by `agg`.
    `clip_low != clip_high` is DAPO's clip-higher (Yu et al. 2025, arXiv 2503.14476).
    """
    log_ratio = _zeros_where_masked(logprobs - old_logprobs, mask)  # (B, T)
    adv = _zeros_where_masked(advantages, mask)
    ratio = torch.exp(log_ratio)
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high) * adv
    loss_tok = -torch.minimum(unclipped, clipped)  # PPO, Schulman et al. 2017 (arXiv 1707.06347) eq. (7)
    loss = weighted_sum(loss_tok, _weights(mask, agg, trace_ids, weights))
    return loss, _ppo_metrics(ratio.detach(), log_ratio.detach(), adv, mask, clip_low, clip_high)


def behaviour_weights(prox_logprobs: Tensor, behaviour_logprobs: Tensor, mask: Tensor, *, cap: float = 5.0) -> Tensor:
    """Decoupled PPO's behaviour importance weights (AReaL's `ppo_actor_loss_fn`, used by ASearcher). (B, T).

    w_t = exp(log pi_prox - log pi_behaviour) where w_t <= cap and the token is sampled, else 0. With these
    as token weights (times the aggregation's) and `old_logprobs` = the proximal log-probs,
    `ppo_clip_loss` is AReaL's decoupled loss: sum_t mask_t 1[w_t <= cap] w_t pg_t / sum_t mask_t, with
    pg_t the clipped surrogate of ratio_t = pi_theta / pi_prox. On fresh data pi_prox = pi_behaviour, w = 1.
    """
    w = torch.exp(_zeros_where_masked(prox_logprobs - behaviour_logprobs, mask))
    return torch.where(mask.bool() & (w <= cap), w, torch.zeros_like(w))


def loop_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps: float = 0.1,
    agg: str = "seq-mean-token-mean",
    trace_ids: Tensor | None = None,
    weights: Tensor | None = None,
) -> tuple[Tensor, Metrics]:
    """LOOP per-token PPO with ratio clipped to [1/(1+eps), 1+eps]; (B, T) inputs.

    LOOP, Chen et al. 2025 (arXiv 2502.01600), apple/ml-loop `_ppo_loss`
    (methods.md §1): the lower bound is 1/(1+eps), not 1-eps.
    """
    clip_low = 1.0 - 1.0 / (1.0 + eps)  # so that 1 - clip_low = 1/(1+eps)
    return ppo_clip_loss(
        logprobs, old_logprobs, advantages, mask,
        clip_low=clip_low, clip_high=eps, agg=agg, trace_ids=trace_ids, weights=weights,
    )


def reinforce_loss(
    logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    agg: str = "token-mean",
    trace_ids: Tensor | None = None,
    weights: Tensor | None = None,
) -> tuple[Tensor, Metrics]:
    """REINFORCE (Williams 1992) l_t = -A_t log pi(a_t); (B, T) inputs. Used with RLOO advantages."""
    logp = _zeros_where_masked(logprobs, mask)
    loss_tok = -_zeros_where_masked(advantages, mask) * logp
    loss = weighted_sum(loss_tok, _weights(mask, agg, trace_ids, weights))
    return loss, {"logprob_mean": _masked_mean(logp.detach(), mask)}


def _reinforce_policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, **kwargs
) -> tuple[Tensor, Metrics]:
    """`reinforce_loss` under the shared POLICY_LOSSES signature (`old_logprobs` unused)."""
    return reinforce_loss(logprobs, advantages, mask, **kwargs)


def policy_shaping_loss(
    logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    gamma: float = 0.1,
    agg: str = "token-mean",
    trace_ids: Tensor | None = None,
    weights: Tensor | None = None,
) -> tuple[Tensor, Metrics]:
    """Critique-GRPO's policy shaping on off-policy tokens: l_t = -A_t f(pi(a_t)), f(p) = p / (p + gamma).

    No ratio to the distribution that generated the tokens and no clipping (the official code's
    `off_policy_reshape="p_div_p_0.1"`, gamma = 0.1): d l_t / d log pi = -A_t gamma p / (p + gamma)^2, so
    tokens the policy already finds likely are pushed less than under log pi. (B, T) inputs.
    """
    if gamma <= 0:
        raise ValueError(f"policy shaping needs gamma > 0, got {gamma}")
    p = torch.exp(_zeros_where_masked(logprobs, mask))
    shaped = p / (p + gamma)
    loss_tok = -_zeros_where_masked(advantages, mask) * _zeros_where_masked(shaped, mask)
    loss = weighted_sum(loss_tok, _weights(mask, agg, trace_ids, weights))
    return loss, {"shaped_prob_mean": _masked_mean(p.detach(), mask)}


POLICY_LOSSES: dict[str, Callable[..., tuple[Tensor, Metrics]]] = {
    "ppo_clip": ppo_clip_loss,
    "loop": loop_loss,
    "reinforce": _reinforce_policy_loss,
}


# ---------------------------------------------------------------- KL to a reference


def _k1(log_ratio: Tensor) -> Tensor:
    return log_ratio  # log pi - log pi_ref


def _k2(log_ratio: Tensor) -> Tensor:
    return 0.5 * log_ratio**2


def _k3(log_ratio: Tensor) -> Tensor:
    return torch.exp(-log_ratio) + log_ratio - 1  # exp(ref - logp) - (ref - logp) - 1


# Estimators of KL(pi || pi_ref) from samples of pi, as functions of
# log_ratio = log pi - log pi_ref (Schulman, "Approximating KL Divergence", 2020).
KL_ESTIMATORS: dict[str, Callable[[Tensor], Tensor]] = {"k1": _k1, "k2": _k2, "k3": _k3}


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, *, estimator: str = "k3") -> Tensor:
    """Per-token KL estimate `(B, T)` of KL(pi || pi_ref), 0 where masked."""
    log_ratio = _zeros_where_masked(logprobs - ref_logprobs, mask)
    return _zeros_where_masked(KL_ESTIMATORS[estimator](log_ratio), mask)


def kl_loss(
    logprobs: Tensor,
    ref_logprobs: Tensor,
    mask: Tensor,
    *,
    estimator: str = "k3",
    agg: str = "token-mean",
    trace_ids: Tensor | None = None,
    weights: Tensor | None = None,
) -> tuple[Tensor, Metrics]:
    """KL(pi || pi_ref) penalty as a loss: `kl_penalty` aggregated by `agg`; (B, T) inputs."""
    kl_tok = kl_penalty(logprobs, ref_logprobs, mask, estimator=estimator)
    loss = weighted_sum(kl_tok, _weights(mask, agg, trace_ids, weights))
    return loss, {"kl": _masked_mean(kl_tok.detach(), mask)}


# ---------------------------------------------------------------- value and entropy


def value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    *,
    clip: float = 0.2,
    agg: str = "token-mean",
    trace_ids: Tensor | None = None,
    weights: Tensor | None = None,
) -> tuple[Tensor, Metrics]:
    """PPO clipped value loss, all inputs (B, T).

    l_t = 0.5 max((V - R)^2, (V_old + clip(V - V_old, -clip, clip) - R)^2)
    (PPO-max value clipping, Zheng et al. 2023, arXiv 2307.04964).
    """
    v, v_old, ret = (_zeros_where_masked(x, mask) for x in (values, old_values, returns))
    v_clipped = v_old + (v - v_old).clamp(-clip, clip)
    loss_unclipped, loss_clipped = (v - ret) ** 2, (v_clipped - ret) ** 2
    loss_tok = 0.5 * torch.maximum(loss_unclipped, loss_clipped)
    loss = weighted_sum(loss_tok, _weights(mask, agg, trace_ids, weights))
    return loss, {
        "vf_clip_frac": _masked_mean((loss_clipped > loss_unclipped).float(), mask),
        "value_mean": _masked_mean(v.detach(), mask),
    }


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Token entropy H = -sum_v p_v log p_v of `logits (B, T, V)` → (B, T).

    log p = logits - logsumexp(logits); -inf logits (banned tokens) count as p = 0.
    """
    logp = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    logp = logp.clamp(min=torch.finfo(logp.dtype).min)  # 0 * -inf would be NaN
    return -(logp.exp() * logp).sum(dim=-1)
