"""`longhorizon eval`: run a policy at several horizons and measure where it breaks.

All episodes of all horizons run in ONE batched rollout (episodes of
different lengths end independently), so a model sees one generate call per
tick however many horizons are asked for. The config is `eval/config.py`'s
`EvalConfig`; `run_horizon_eval` resolves its `auto` knob and `None` horizons.
"""

from __future__ import annotations

from typing import Any, Callable

from longhorizon.eval.config import AUTO, EvalConfig, HorizonEvalConfig, resolve  # noqa: F401  (HorizonEvalConfig: its old home)
from longhorizon.eval.bootstrap import bootstrap_horizon
from longhorizon.eval.horizon import horizon_length, horizon_summary
from longhorizon.rollout.runner import EpisodeSpec, Policy, run_episodes
from longhorizon.types import Trajectory, Turn


def episode_specs(cfg: EvalConfig) -> list[EpisodeSpec]:
    """One spec per (horizon, episode); the horizon is stored as `metadata["horizon_value"]` via env_kwargs."""
    return [
        EpisodeSpec(cfg.env_id, seed=cfg.seed + i, env_kwargs=env_kwargs_at(cfg, h), group_id=i, wrappers=cfg.wrappers)
        for h in cfg.horizons
        for i in range(cfg.episodes)
    ]


def env_kwargs_at(cfg: EvalConfig, horizon: int) -> dict[str, Any]:
    return {**cfg.env_kwargs, cfg.horizon_knob: horizon} if cfg.horizon_knob else dict(cfg.env_kwargs)


def run_horizon_eval(
    cfg: EvalConfig, policy: Policy, on_tick: Callable[[int, int], None] | None = None
) -> tuple[list[Trajectory], dict[str, Any]]:
    """Run every horizon's episodes in one batched rollout; return trajectories and metrics."""
    if cfg.horizon_knob == AUTO or cfg.horizons is None:
        cfg = resolve(cfg)
    trajectories = run_episodes(episode_specs(cfg), policy, on_tick=on_tick)
    return trajectories, summarize(cfg, trajectories)


def summarize(cfg: EvalConfig, trajectories: list[Trajectory]) -> dict[str, Any]:
    """Per-horizon summaries plus H_s, over the horizons that have episodes (all of them, unless interrupted)."""
    by_h = by_horizon(cfg, trajectories)
    horizons = [h for h in cfg.horizons if by_h[h]]
    rows = [horizon_summary(by_h[h], h) for h in horizons]
    swept = cfg.horizon_knob is not None and bool(rows)
    ci = confidence(cfg, horizons, by_h) if swept else None
    for row, band in zip(rows, ci.pop("success_band") if ci else []):
        row["success_ci"] = band  # bootstrap percentile band of the success rate (eval/bootstrap.py)
    return {
        "model": cfg.model,
        "env_id": cfg.env_id,
        "horizon_knob": cfg.horizon_knob,
        "horizons": rows,
        "horizon_length": horizon_length(horizons, [r["success_rate"] for r in rows], cfg.s) if swept else None,
        "horizon_length_ci": ci,
        "prompt_tokens_by_turn": _prompt_lengths(by_h[max(horizons)]) if horizons else [],
    }


def confidence(cfg: EvalConfig, horizons: list[int], by_h: dict[int, list[Trajectory]]) -> dict[str, Any]:
    """Bootstrap intervals for H_s and each horizon's success rate (episodes resampled per horizon, seeded)."""
    successes = [[bool(t.success) for t in by_h[h]] for h in horizons]
    return bootstrap_horizon(horizons, successes, cfg.s, seed=cfg.seed)


def by_horizon(cfg: EvalConfig, trajectories: list[Trajectory]) -> dict[int, list[Trajectory]]:
    """Episodes grouped by the horizon knob's value they ran with (recorded in their env_kwargs)."""
    if cfg.horizon_knob is None:
        return {h: list(trajectories) for h in cfg.horizons}
    groups: dict[int, list[Trajectory]] = {h: [] for h in cfg.horizons}
    for t in trajectories:
        groups.setdefault(int(t.metadata["env_kwargs"][cfg.horizon_knob]), []).append(t)
    return groups


def _prompt_lengths(trajectories: list[Trajectory]) -> list[float]:
    """Mean prompt length (tokens) at each turn of the longest horizon (empty for scripted policies).

    A turn's prompt length is that of the longest prompt the model saw in it:
    `len(prompt_ids)`, or for an answer sampled in chunks (Delethink) the
    longest chunk prompt recorded in `info["policy"]["chunk_prompt_tokens"]`.
    """
    out = []
    for i in range(max((len(t.turns) for t in trajectories), default=0)):
        lens = [turn_prompt_tokens(t.turns[i]) for t in trajectories if len(t.turns) > i and t.turns[i].prompt_ids]
        if lens:
            out.append(sum(lens) / len(lens))
    return out


def turn_prompt_tokens(turn: Turn) -> int:
    """Tokens in the longest prompt the model saw during this turn."""
    return max(turn.info.get("policy", {}).get("chunk_prompt_tokens") or [len(turn.prompt_ids)])
