"""Reward scaling, normalisation and clipping with running statistics (PPO-max options).

PPO-max (Zheng et al. 2023, arXiv 2307.04964) scales rewards by running
statistics and clips them. Here the statistics run over every turn reward
seen so far, the current batch included (updated before use), with Chan et
al.'s parallel update of mean and variance. The state is part of every
checkpoint, so a resumed run normalises exactly as an unbroken one.
"""

from __future__ import annotations

import torch
from torch import Tensor


class RewardNormalizer:
    """mode "none" | "scale" (r / std) | "normalize" ((r - mean) / std); then clip to [-clip, clip]."""

    def __init__(self, mode: str = "none", clip: float | None = None, eps: float = 1e-8):
        self.mode, self.clip, self.eps = mode, clip, eps
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def __call__(self, rewards: Tensor, mask: Tensor) -> Tensor:
        """Turn rewards (N, K) with mask (N, K) → processed rewards (0 where masked)."""
        valid = mask.bool()
        if self.mode != "none":
            self._update(rewards[valid].double())
            std = (self.m2 / max(self.count, 1)) ** 0.5 + self.eps
            shift = self.mean if self.mode == "normalize" else 0.0
            rewards = (rewards - shift) / std
        if self.clip is not None:
            rewards = rewards.clamp(-self.clip, self.clip)
        return torch.where(valid, rewards, torch.zeros_like(rewards))

    def _update(self, x: Tensor) -> None:
        n = x.numel()
        if n == 0:
            return
        mean, m2 = x.mean().item(), ((x - x.mean()) ** 2).sum().item()
        delta, total = mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.m2 += m2 + delta**2 * self.count * n / total
        self.count = total

    def state_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.count, self.mean, self.m2 = int(state["count"]), float(state["mean"]), float(state["m2"])
