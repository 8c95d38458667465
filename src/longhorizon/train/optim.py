"""AdamW with linear warmup then a constant or cosine learning rate, counted in optimizer updates."""

from __future__ import annotations

import functools
import math

import torch

from longhorizon.train.config import TrainConfig
from longhorizon.train.model import Models


def build_optimizer(cfg: TrainConfig, models: Models) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """One param group for the policy, one for the value head (its own learning rate)."""
    o = cfg.optim
    groups = [{"params": models.trainable_parameters(), "lr": o.lr}]
    if models.value_head is not None:
        groups.append({"params": list(models.value_head.parameters()), "lr": o.value_lr or o.lr})
    optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    factor = functools.partial(lr_factor, warmup=o.warmup_updates, total=cfg.total_updates,
                               schedule=o.schedule, min_ratio=o.min_lr_ratio)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def lr_factor(update: int, *, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the peak learning rate at optimizer update `update` (0-based)."""
    if update < warmup:
        return (update + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min((update - warmup) / max(total - warmup, 1), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def trainable(models: Models) -> list[torch.nn.Parameter]:
    head = list(models.value_head.parameters()) if models.value_head is not None else []
    return models.trainable_parameters() + head


def clip_gradients(params: list[torch.nn.Parameter], max_norm: float | None) -> float:
    """Clip the global gradient norm in place; return the norm before clipping."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm is not None else math.inf)
    return float(norm)
