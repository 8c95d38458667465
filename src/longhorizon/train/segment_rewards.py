"""Small named reward functions, each scoring every turn (segment) of an episode, as in verifiers' rubrics.

A function takes a `Trajectory` and returns one score per turn. The trainer
stacks the configured ones into `(C, N, K)` components (`components`), gates
them by priority (G-RA) and mixes them with weights into dense per-turn
rewards (`algorithms.turn_credit`).

- "env": the env's own turn reward;
- "success": 1 on the last turn of an episode the env calls a success, else 0 (the outcome level for G-RA);
- "correct": 1 on a turn whose info says `correct`, else 0;
- "format": -1 on a turn whose info carries an `error` (bad or illegal action), else 0.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from longhorizon.types import Trajectory

SegmentReward = Callable[[Trajectory], list[float]]


def env_reward(traj: Trajectory) -> list[float]:
    return [float(t.reward) for t in traj.turns]


def success(traj: Trajectory) -> list[float]:
    scores = [0.0] * len(traj.turns)
    if scores and traj.success:
        scores[-1] = 1.0
    return scores


def correct(traj: Trajectory) -> list[float]:
    return [float(bool(t.info.get("correct"))) for t in traj.turns]


def format_penalty(traj: Trajectory) -> list[float]:
    return [-1.0 if t.info.get("error") else 0.0 for t in traj.turns]


SEGMENT_REWARDS: dict[str, SegmentReward] = {
    "env": env_reward,
    "success": success,
    "correct": correct,
    "format": format_penalty,
}


def components(trajectories: list[Trajectory], names: Sequence[str], turns: int) -> Tensor:
    """Scores of each named function `(C, N, K)`, K = `turns` (0 past an episode's end)."""
    out = torch.zeros(len(names), len(trajectories), turns)
    for c, name in enumerate(names):
        for i, traj in enumerate(trajectories):
            scores = SEGMENT_REWARDS[name](traj)
            out[c, i, : len(scores)] = torch.tensor(scores, dtype=out.dtype)
    return out
