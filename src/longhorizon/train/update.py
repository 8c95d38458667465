"""One optimizer update: the minibatch loss, accumulated over micro-batches.

The loss of a minibatch is the aggregation (token-mean, seq-mean-...) over
ALL its rows. A micro-batch's loss is its own aggregate times its share of
the minibatch's units (tokens for token-mean, sequences for the seq-mean
modes, episodes for trace-length), so the accumulated gradient equals the
gradient of the whole minibatch at once: 1 x 8 equals 8 x 1. (trace-length
is exact when an episode's rows share a micro-batch, as with `full`.)

Rows whose loss has no gradient (all advantages 0 and no KL or value term)
are not run at all (`has_gradient`). Metrics are share-weighted means over
the rows that were run.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from longhorizon.algorithms import POLICY_LOSSES, kl_loss, value_loss
from longhorizon.train.batch import Batch, microbatches
from longhorizon.train.config import AlgorithmConfig, TrainConfig, resolved_aggregation, resolved_clip_eps
from longhorizon.train.credit import Algorithm
from longhorizon.train.model import Models, autocast, token_forward

Metrics = dict[str, float]


def loss_units(mask: Tensor, row_episode: Tensor, agg: str) -> int:
    """How many terms the aggregation averages over: tokens, sequences or episodes."""
    if agg == "token-mean":
        return int(mask.bool().sum().item())
    has = mask.bool().any(1)
    return int(row_episode[has].unique().numel()) if agg == "trace-length" else int(has.sum().item())


def policy_loss_kwargs(name: str, cfg: AlgorithmConfig) -> dict[str, float]:
    low, high = resolved_clip_eps(cfg)
    return {"ppo_clip": {"clip_low": low, "clip_high": high}, "loop": {"eps": low}, "reinforce": {}}[name]


def minibatch_backward(models: Models, batch: Batch, rows: Tensor, cfg: TrainConfig, algo: Algorithm) -> Metrics:
    """Accumulate d(minibatch loss)/d(params) into `.grad` over micro-batches; return weighted-mean metrics."""
    agg = resolved_aggregation(cfg.algorithm, cfg.context)
    total = loss_units(batch.loss_mask[rows], batch.row_episode[rows], agg)  # every row counts in the mean
    live = rows[has_gradient(batch, rows, cfg, algo)]
    metrics: Metrics = {}
    shares = 0.0
    for micro in microbatches(live, cfg.micro_batch_size):
        mb = batch.select(micro)
        share = loss_units(mb.loss_mask, mb.row_episode, agg) / max(total, 1)
        if share == 0:
            continue
        with autocast(cfg):
            loss, micro_metrics = microbatch_loss(models, mb, cfg, algo)
        (loss * share).backward()
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
    if algo.value_head or (algo.kl_in == "loss" and cfg.algorithm.kl_coef > 0):
        return torch.ones(len(rows), dtype=torch.bool)
    return ((batch.advantages[rows] != 0) & batch.loss_mask[rows].bool()).any(1)


def microbatch_loss(models: Models, mb: Batch, cfg: TrainConfig, algo: Algorithm) -> tuple[Tensor, Metrics]:
    """Policy loss (+ KL to the reference, + value loss) of one micro-batch; tensors (b, t)."""
    a, agg = cfg.algorithm, resolved_aggregation(cfg.algorithm, cfg.context)
    device = next(models.model.parameters()).device
    mb = _to(mb, device)
    out = token_forward(models.model, mb.input_ids, mb.attention_mask, mb.loss_mask, cfg.temperature,
                        entropy=True, value_head=models.value_head)
    loss, m = POLICY_LOSSES[algo.policy_loss](out.logprobs, mb.old_logprobs, mb.advantages, mb.loss_mask, agg=agg,
                                               trace_ids=mb.row_episode, **policy_loss_kwargs(algo.policy_loss, a))
    metrics = {"losses/policy_loss": loss.item(), **{f"losses/{k}": v for k, v in m.items()}}
    if algo.kl_in == "loss" and a.kl_coef > 0:
        kl, km = kl_loss(out.logprobs, mb.ref_logprobs, mb.loss_mask, estimator=a.kl_estimator, agg=agg,
                         trace_ids=mb.row_episode)
        loss = loss + a.kl_coef * kl
        metrics["losses/kl_ref"] = km["kl"]
    if models.value_head is not None:
        vl, vm = value_loss(out.values, mb.old_values, mb.returns, mb.loss_mask, agg=agg, trace_ids=mb.row_episode,
                            clip=a.value_clip if a.value_clip is not None else math.inf)
        loss = loss + a.value_coef * vl
        metrics.update({"losses/value_loss": vl.item(), **{f"losses/{k}": v for k, v in vm.items()}})
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
