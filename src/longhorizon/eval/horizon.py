"""Horizon metrics: how long a task a policy carries out before it breaks.

For each horizon H, over N episodes:
- success rate (every turn correct) and its standard error sqrt(p(1-p)/N);
- per-step accuracy by turn index: among episodes that reached turn i (and
  were judged there), the fraction whose turn-i answer was a correct update
  of the agent's own previous state (`info["step_correct"]`, else
  `info["correct"]`);
- chance-corrected per-step accuracy by turn index, where the env reports it
  (`info["step_chance_corrected"]`, Execution): the mean over episodes of
  (step_correct - chance) / (1 - chance), 0 for an agent that ignores the
  turn's input, 1 for a perfect one (defined in the env's docstring);
- task (prefix) accuracy by turn index: fraction of episodes whose turns
  1..i were all correct;
- mean number of turns survived before the first error.

H_s, the horizon length at success rate s: the success curve is interpolated
between the last horizon with success >= s and the next one, linearly in
log(success) against H. That is exact when success decays geometrically
(success(H) = p^H gives H_s = ln s / ln p). A curve that never reaches s is
reported as censored ("above" the largest horizon, or "below" the smallest
when even the smallest horizon has zero success).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from longhorizon.types import Trajectory


def _turn_correct(turn) -> bool:
    """A turn without a verdict (e.g. a tool call) is not an error."""
    return bool(turn.info.get("correct", True))


def _step_correct(turn) -> bool | None:
    """The turn's step verdict, or None if the env judged nothing at this turn."""
    verdict = turn.info.get("step_correct", turn.info.get("correct"))
    return None if verdict is None else bool(verdict)


def _step_chance_corrected(turn) -> float | None:
    """The turn's chance-corrected step verdict, or None if the env gave none."""
    value = turn.info.get("step_chance_corrected")
    return None if value is None else float(value)


def turns_survived(traj: Trajectory) -> int:
    """Number of leading correct turns."""
    n = 0
    for turn in traj.turns:
        if not _turn_correct(turn):
            break
        n += 1
    return n


def horizon_summary(trajectories: list[Trajectory], horizon: int) -> dict[str, Any]:
    """Success, per-step accuracy and survival for episodes of one horizon.

    Envs whose turns carry no `correct` verdict (tool worlds) get success,
    reward, turn counts and their own end-of-episode metrics only.
    """
    n = len(trajectories)
    p = float(np.mean([bool(t.success) for t in trajectories])) if n else float("nan")
    row = {
        "horizon": horizon,
        "episodes": n,
        "success_rate": p,
        "success_se": math.sqrt(p * (1 - p) / n) if n else float("nan"),
        "mean_reward": float(np.mean([t.total_reward for t in trajectories])) if n else float("nan"),
        "reward_se": float(np.std([t.total_reward for t in trajectories], ddof=1) / math.sqrt(n)) if n > 1 else 0.0,
        "mean_turns": float(np.mean([len(t.turns) for t in trajectories])) if n else float("nan"),
        "env_metrics": mean_env_metrics(trajectories),
    }
    if any("correct" in turn.info for t in trajectories for turn in t.turns):
        survived = [turns_survived(t) for t in trajectories]
        length = max(len(t.turns) for t in trajectories)
        row["mean_turns_survived"] = float(np.mean(survived))
        row["per_step_accuracy"] = _by_turn(trajectories, length, _step_correct)
        if any("step_chance_corrected" in turn.info for t in trajectories for turn in t.turns):
            row["per_step_accuracy_chance_corrected"] = _by_turn(trajectories, length, _step_chance_corrected)
        row["prefix_accuracy"] = [float(np.mean([s >= i for s in survived])) for i in range(1, length + 1)]
    return row


def mean_env_metrics(trajectories: list[Trajectory]) -> dict[str, float]:
    """Mean of each numeric end-of-episode metric the env reported, plus Succ@k under a retry wrapper."""
    values: dict[str, list[float]] = {}
    for t in trajectories:
        for key, v in (t.metadata.get("metrics") or {}).items():
            if isinstance(v, (int, float)):  # bools count as 0/1
                values.setdefault(key, []).append(float(v))
    return {**{k: float(np.mean(v)) for k, v in values.items()}, **succ_at_k(trajectories)}


def succ_at_k(trajectories: list[Trajectory]) -> dict[str, float]:
    """UFO's Succ@k under `try_again` / `feedback_loop` (whose metrics carry `solved` and `attempts`): the
    fraction of episodes solved within k attempts, for k = 1 and k = the most attempts any episode used."""
    runs = [(m.get("solved"), m.get("attempts")) for t in trajectories for m in [t.metadata.get("metrics") or {}]]
    runs = [(bool(s), float(a)) for s, a in runs if s is not None and a is not None]
    if not runs:
        return {}
    top = int(max(a for _, a in runs))
    return {f"succ@{k}": float(np.mean([s and a <= k for s, a in runs])) for k in sorted({1, top})}


def _by_turn(trajectories: list[Trajectory], horizon: int, correct) -> list[float | None]:
    """Accuracy at each turn index among episodes that reached it (None where none did)."""
    out: list[float | None] = []
    for i in range(horizon):
        judged = [correct(t.turns[i]) for t in trajectories if len(t.turns) > i]
        reached = [v for v in judged if v is not None]
        out.append(float(np.mean(reached)) if reached else None)
    return out


def horizon_length(horizons: list[int], success: list[float], s: float = 0.5) -> dict[str, Any]:
    """H_s from a success-vs-horizon curve (see module docstring)."""
    if not 0 < s < 1:
        raise ValueError(f"s must be in (0, 1), got {s}")
    points = sorted(zip(horizons, success))
    if points[0][1] == 0:  # nothing to interpolate: H_s is below the smallest horizon tried
        return {"s": s, "value": float(points[0][0]), "censored": "below"}
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
