"""Curricula (`algorithm.curriculum`): progressive difficulty on an env knob, and annealed privileged hints.

- Progressive difficulty: the training tasks use the knob's current value (e.g. `horizon`). After each
  step the step's episodes join a rolling window of the last `window` successes; when its rate reaches
  `raise_at` the knob goes up by `step`, when it falls to `lower_at` it goes down, and the window starts
  over. The value never leaves [min, max] nor the knob's own range (its `ge` / `le` bounds), and an
  integer knob stays an integer. The held-out eval keeps its own horizons and knobs.
- Privileged hints: each training observation shows the env's oracle action as a hint with probability
  p_t = hint_prob * (1 - t / hint_steps) at step t (0 from step `hint_steps` on; constant when
  `hint_steps` is 0), through the `hint` wrapper (`envs/core/wrappers.PrivilegedHint`). The hint is part
  of the observation, so it is prompt, never loss; the held-out eval does not add the wrapper.

The state (the knob's value and the window) lives in `CreditState.curriculum` and is saved in every
checkpoint, so a resumed run continues exactly. Metrics: `curriculum/level`, `curriculum/success_window`,
`curriculum/hint_prob`, `curriculum/hinted_frac`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym

from longhorizon.rollout import EpisodeSpec
from longhorizon.types import Trajectory

Metrics = dict[str, float]


def knob_bounds(env_id: str, knob: str) -> tuple[float, float, bool, Any]:
    """(lowest, highest, integer?, default) of an env knob, from the env's knob model."""
    env = gym.make(env_id)
    model = getattr(env.unwrapped, "Knobs", None)
    env.close()
    if model is None or knob not in model.model_fields:
        known = ", ".join(model.model_fields) if model is not None else "none declared"
        raise ValueError(f"curriculum.knob: {env_id} has no knob {knob!r} (knobs: {known})")
    field = model.model_fields[knob]
    lo, hi = -float("inf"), float("inf")
    for m in field.metadata:
        lo = max(lo, getattr(m, "ge", None) if getattr(m, "ge", None) is not None else lo)
        hi = min(hi, getattr(m, "le", None) if getattr(m, "le", None) is not None else hi)
    return lo, hi, field.annotation is int, field.default


def start_state(cfg: Any) -> dict[str, Any] | None:
    """The curriculum's first state: the knob's start value (clamped) and an empty window."""
    cur = cfg.algorithm.curriculum
    if not cur.on:
        return None
    value = None
    if cur.knob is not None:
        lo, hi, integer, default = knob_bounds(cfg.env_id, cur.knob)
        value = cur.start if cur.start is not None else cfg.env_kwargs.get(cur.knob, default)
        value = _clamp(value, cur, lo, hi, cur.min if cur.min is not None else value, integer)
    return {"value": value, "window": []}


def _clamp(value: float, cur: Any, lo: float, hi: float, floor: float, integer: bool) -> float:
    top = min(hi, cur.max) if cur.max is not None else hi
    value = min(max(value, lo, floor), top)
    return int(value) if integer else float(value)


def hint_prob(cur: Any, step: int) -> float:
    if cur.hint_prob == 0:
        return 0.0
    return cur.hint_prob * max(0.0, 1.0 - step / cur.hint_steps) if cur.hint_steps else cur.hint_prob


def apply(cfg: Any, state: dict[str, Any] | None, step: int, specs: list[EpisodeSpec]) -> list[EpisodeSpec]:
    """The step's specs at the knob's current value, with the hint wrapper while its probability is > 0."""
    if state is None:
        return specs
    cur = cfg.algorithm.curriculum
    knobs = {cur.knob: state["value"]} if cur.knob is not None else {}
    p = hint_prob(cur, step)
    hint = [{"name": "hint", "prob": p, "seed": cfg.seed}] if p > 0 else []
    return [dataclasses.replace(s, env_kwargs={**s.env_kwargs, **knobs}, wrappers=[*s.wrappers, *hint]) for s in specs]


def update(cfg: Any, state: dict[str, Any] | None, step: int, trajectories: list[Trajectory]) -> Metrics:
    """Add the step's successes to the window; move the knob when the rate crosses a threshold."""
    if state is None:
        return {}
    cur = cfg.algorithm.curriculum
    turns = [t.info.get("hinted", False) for traj in trajectories for t in traj.turns]
    metrics = {"curriculum/hint_prob": hint_prob(cur, step),
               "curriculum/hinted_frac": sum(turns) / len(turns) if turns else 0.0}
    if cur.knob is None:
        return metrics
    state["window"] = (state["window"] + [float(bool(t.success)) for t in trajectories])[-cur.window:]
    rate = sum(state["window"]) / len(state["window"])
    metrics["curriculum/success_window"] = rate
    if len(state["window"]) >= cur.window and (rate >= cur.raise_at or rate <= cur.lower_at):
        lo, hi, integer, _ = knob_bounds(cfg.env_id, cur.knob)
        start = start_state(cfg)["value"]
        moved = _clamp(state["value"] + (cur.step if rate >= cur.raise_at else -cur.step), cur, lo, hi,
                       cur.min if cur.min is not None else start, integer)
        if moved != state["value"]:
            state["value"], state["window"] = moved, []
    metrics["curriculum/level"] = float(state["value"])
    return metrics
