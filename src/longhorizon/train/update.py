"""One optimizer update: the minibatch loss, accumulated over micro-batches.

The loss of a minibatch is sum(w * l_t) over ALL its rows, with the token
weights w = `token_weights(mask, trace_ids, agg)` computed once over the
whole minibatch (every aggregation, trace-length included, is a weighting).
Each micro-batch sums its slice of those weights, so the accumulated
gradient equals the gradient of the whole minibatch at once, whatever rows
(or pieces of an episode) land in which micro-batch: 1 x 8 equals 8 x 1.

Rows whose loss has no gradient (all advantages 0 and no KL or value term)
are not run at all (`has_gradient`); their weights still count in the
normalisation. Metrics are means over the micro-batches that were run,
each weighted by its share of the minibatch's weight (sum of its w over
the sum of all w); the loss metrics are each micro-batch's weighted sum
divided by its share, so with one micro-batch they are the loss itself and
with several their weighted mean is the minibatch loss again.

An entropy method (`algorithm.entropy`, `train/exploration.py`) reweights
the policy loss's tokens (STEER) or adds a term (EPO's entropy regulariser,
SIREN's anchored penalty; SIREN's is per micro-batch, as in its code).

Critique-GRPO's refinement rows (`Batch.shaped`) take the policy-shaping
loss -A f(pi), f(p) = p / (p + gamma), with the same token weights, and the
other rows the algorithm's loss: one token-weighted sum over both, as the
official code's masked mean over the union of on- and off-policy tokens.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from longhorizon.algorithms import (POLICY_LOSSES, behaviour_weights, kl_loss, policy_shaping_loss, token_weights,
                                    value_loss)
from longhorizon.train.batch import Batch, by_prompt, microbatches
from longhorizon.train.config import AlgorithmConfig, TrainConfig
from longhorizon.train.credit import Algorithm
from longhorizon.train.distributed import DataParallel
from longhorizon.train.exploration import ENTROPY_METHODS, CreditState, entropy_fn, loss_terms
from longhorizon.train.model import Models, autocast, token_forward

Metrics = dict[str, float]


def policy_loss_kwargs(name: str, cfg: AlgorithmConfig) -> dict[str, float]:
    low, high = cfg.clip_eps, cfg.clip_eps_high
    return {"ppo_clip": {"clip_low": low, "clip_high": high}, "loop": {"eps": low}, "reinforce": {}}[name]


def minibatch_backward(models: Models, batch: Batch, rows: Tensor, cfg: TrainConfig, algo: Algorithm,
                       credit_state: CreditState | None = None, dp: DataParallel | None = None) -> Metrics:
    """Accumulate d(minibatch loss)/d(params) into `.grad` over micro-batches; return weighted-mean metrics.

    `credit_state` holds the entropy methods' running state (EPO's history, SIREN's anchor). With `dp`
    (several training processes) this rank runs its share of the rows, with the whole minibatch's token
    weights; the caller sums the gradients over the ranks.
    """
    weights = token_weights(batch.loss_mask[rows], batch.row_episode[rows], cfg.algorithm.aggregation)  # (b, T)
    live = has_gradient(batch, rows, cfg, algo).nonzero().squeeze(1)  # positions in `rows`
    if cfg.share_prefix:
        live = live[by_prompt(batch, rows[live])]  # rows sharing a prompt in the same micro-batches
    if dp is not None:
        live = dp.shard(live)
    total = weights.sum().item()
    metrics: Metrics = {}
    shares = 0.0
    for micro in microbatches(live, cfg.micro_batch_size):
        mb = batch.select(rows[micro])
        mb_weights = weights[micro, : mb.input_ids.shape[1]]  # (m, t): select trims only padding
        share = mb_weights.sum().item() / total if total else 0.0  # its fraction of the minibatch's weight
        if share == 0:
            continue
        with autocast(cfg):
            loss, micro_metrics = microbatch_loss(models, mb, mb_weights, share, cfg, algo, credit_state)
        loss.backward()
        shares += share
        for key, value in micro_metrics.items():
            metrics[key] = metrics.get(key, 0.0) + share * value
    return {"charts/rows_with_gradient": float(len(live)), **{k: v / shares for k, v in metrics.items() if shares}}


def has_gradient(batch: Batch, rows: Tensor, cfg: TrainConfig, algo: Algorithm) -> Tensor:
    """(len(rows),) bool: rows whose loss can have a gradient.

    With no KL or value term in the loss, a row whose advantages are all 0
    adds exactly 0 to the loss and its gradient (GRPO groups with equal
    rewards), so its forward and backward passes are skipped; it still
    counts in the aggregation's denominator.
    """
    adds_loss = ENTROPY_METHODS[cfg.algorithm.entropy.method].loss is not None  # EPO, SIREN: entropy terms
    if algo.value_head or (algo.kl_in == "loss" and cfg.algorithm.kl_coef > 0) or adds_loss:
        return torch.ones(len(rows), dtype=torch.bool)
    return ((batch.advantages[rows] != 0) & batch.loss_mask[rows].bool()).any(1)


def microbatch_loss(models: Models, mb: Batch, weights: Tensor, share: float, cfg: TrainConfig,
                    algo: Algorithm, credit_state: CreditState | None = None) -> tuple[Tensor, Metrics]:
    """Policy loss (+ KL to the reference, + value loss) of one micro-batch, token `weights` (b, t) given.

    The loss terms are sums weighted by the minibatch's `weights`; the loss
    metrics are those sums divided by `share` (its fraction of the
    minibatch's weight), so their share-weighted mean in `minibatch_backward`
    is the minibatch loss (over the rows that were run, renormalised).
    """
    a = cfg.algorithm
    device = next(models.model.parameters()).device
    mb, w = _to(mb, device), weights.to(device)
    method = ENTROPY_METHODS[a.entropy.method]
    out = token_forward(models.model, mb.input_ids, mb.attention_mask, mb.loss_mask, cfg.temperature,
                        entropy=True, value_head=models.value_head, share_prefix=cfg.share_prefix,
                        entropy_fn=entropy_fn(method.loss_entropy, a.entropy))
    policy_w, extra, em = loss_terms(out, mb, w, share, a.entropy, credit_state)  # STEER weights; EPO, SIREN terms
    old = mb.old_logprobs
    if a.decoupled:  # AReaL's decoupled PPO: the ratio to pi_prox, each token weighted by pi_prox / pi_behaviour
        policy_w = policy_w * behaviour_weights(mb.prox_logprobs, mb.old_logprobs, mb.loss_mask,
                                                cap=a.behaviour_weight_cap).to(policy_w.dtype)
        old = mb.prox_logprobs
    on_mask = mb.loss_mask if mb.shaped is None else mb.loss_mask * (~mb.shaped)[:, None].to(mb.loss_mask.dtype)
    loss, m = POLICY_LOSSES[algo.policy_loss](out.logprobs, old, mb.advantages, on_mask,
                                               weights=policy_w, **policy_loss_kwargs(algo.policy_loss, a))
    metrics = {"losses/policy_loss": loss.item() / share, **{f"losses/{k}": v for k, v in m.items()},
               **{f"entropy/{k}": v for k, v in em.items()}}
    if mb.shaped is not None and mb.shaped.any():  # Critique-GRPO's refinements: f(p) = p / (p + gamma), no ratio
        shaped_mask = mb.loss_mask * mb.shaped[:, None].to(mb.loss_mask.dtype)
        shaping, sm = policy_shaping_loss(out.logprobs, mb.advantages, shaped_mask, gamma=a.critique.gamma,
                                          weights=policy_w)
        loss = loss + shaping
        metrics.update({"losses/shaping_loss": shaping.item() / share, **{f"losses/{k}": v for k, v in sm.items()}})
    if extra is not None:
        loss = loss + extra
        metrics["losses/entropy_term"] = extra.item() / share
    if algo.kl_in == "loss" and a.kl_coef > 0:
        kl, km = kl_loss(out.logprobs, mb.ref_logprobs, mb.loss_mask, estimator=a.kl_estimator, weights=w)
        loss = loss + a.kl_coef * kl
        metrics["losses/kl_ref"] = km["kl"]
    if models.value_head is not None:
        vl, vm = value_loss(out.values, mb.old_values, mb.returns, mb.loss_mask, weights=w,
                            clip=a.value_clip if a.value_clip is not None else math.inf)
        loss = loss + a.value_coef * vl
        metrics.update({"losses/value_loss": vl.item() / share, **{f"losses/{k}": v for k, v in vm.items()}})
    metrics.update(_token_metrics(out.logprobs.detach(), mb.old_logprobs, out.entropy, mb.loss_mask))
    return loss, metrics


@torch.no_grad()
def _token_metrics(logprobs: Tensor, old_logprobs: Tensor, entropy: Tensor, mask: Tensor) -> Metrics:
    valid = mask.bool()
    n = valid.sum().clamp(min=1)
    log_ratio = torch.where(valid, logprobs - old_logprobs, torch.zeros_like(logprobs))
    return {
        "losses/entropy": (torch.where(valid, entropy, 0.0).sum() / n).item(),
        "losses/approx_kl": ((log_ratio.exp() - 1 - log_ratio).sum() / n).item(),  # k3 of KL(pi_old || pi)
        "losses/ratio_max": log_ratio.exp().masked_fill(~valid, 0).max().item(),
    }


def _to(mb: Batch, device: torch.device) -> Batch:
    if device.type == "cpu":
        return mb
    moved = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in vars(mb).items()}
    return Batch(**moved)
