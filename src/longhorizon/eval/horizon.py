"""Horizon metrics: how long a task a policy carries out before it breaks.

For each horizon H, over N episodes:
- success rate (every turn correct) and its standard error sqrt(p(1-p)/N);
- per-step accuracy by turn index: among episodes that reached turn i, the
  fraction whose turn-i answer was a correct update of the agent's own
  previous state (`info["step_correct"]`, else `info["correct"]`);
- task (prefix) accuracy by turn index: fraction of episodes whose turns
  1..i were all correct;
- mean number of turns survived before the first error.

H_s, the horizon length at success rate s: the success curve is interpolated
between the last horizon with success >= s and the next one, linearly in
log(success) against H. That is exact when success decays geometrically
(success(H) = p^H gives H_s = ln s / ln p). A curve that never reaches s is
reported as censored ("above" the largest horizon or "below" the smallest).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from longhorizon.types import Trajectory


def _turn_correct(turn) -> bool:
    return bool(turn.info.get("correct", False))


def _step_correct(turn) -> bool:
    return bool(turn.info.get("step_correct", turn.info.get("correct", False)))


def turns_survived(traj: Trajectory) -> int:
    """Number of leading correct turns."""
    n = 0
    for turn in traj.turns:
        if not _turn_correct(turn):
            break
        n += 1
    return n


def horizon_summary(trajectories: list[Trajectory], horizon: int) -> dict[str, Any]:
    """Success, per-step accuracy and survival for episodes of one horizon."""
    n = len(trajectories)
    success = np.array([bool(t.success) for t in trajectories], dtype=float)
    p = float(success.mean()) if n else float("nan")
    survived = [turns_survived(t) for t in trajectories]
    return {
        "horizon": horizon,
        "episodes": n,
        "success_rate": p,
        "success_se": math.sqrt(p * (1 - p) / n) if n else float("nan"),
        "mean_turns_survived": float(np.mean(survived)) if n else float("nan"),
        "per_step_accuracy": _by_turn(trajectories, horizon, _step_correct),
        "prefix_accuracy": [float(np.mean([s >= i for s in survived])) for i in range(1, horizon + 1)] if n else [],
        "mean_reward": float(np.mean([t.total_reward for t in trajectories])) if n else float("nan"),
    }


def _by_turn(trajectories: list[Trajectory], horizon: int, correct) -> list[float | None]:
    """Accuracy at each turn index among episodes that reached it (None where none did)."""
    out: list[float | None] = []
    for i in range(horizon):
        reached = [correct(t.turns[i]) for t in trajectories if len(t.turns) > i]
        out.append(float(np.mean(reached)) if reached else None)
    return out


def horizon_length(horizons: list[int], success: list[float], s: float = 0.5) -> dict[str, Any]:
    """H_s from a success-vs-horizon curve (see module docstring)."""
    if not 0 < s < 1:
        raise ValueError(f"s must be in (0, 1), got {s}")
    points = sorted(zip(horizons, success))
    if points[0][1] < s:
        lo = (0, 1.0)  # success at horizon 0 is 1 by definition
        return {"s": s, "value": _interpolate(lo, points[0], s), "censored": None}
    for a, b in zip(points, points[1:]):
        if a[1] >= s > b[1]:
            return {"s": s, "value": _interpolate(a, b, s), "censored": None}
    return {"s": s, "value": float(points[-1][0]), "censored": "above"}


def _interpolate(a: tuple[float, float], b: tuple[float, float], s: float) -> float:
    """H where the log-success line through a and b crosses log s."""
    (h0, p0), (h1, p1) = a, b
    if p1 <= 0:  # log(0) is -inf: fall back to linear interpolation in success
        return h0 + (p0 - s) / (p0 - p1) * (h1 - h0)
    return h0 + (math.log(p0) - math.log(s)) / (math.log(p0) - math.log(p1)) * (h1 - h0)
