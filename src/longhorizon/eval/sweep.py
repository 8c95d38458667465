"""`longhorizon eval`: run a policy at several horizons and measure where it breaks.

All episodes of all horizons run in ONE batched rollout (episodes of
different lengths end independently), so a model sees one generate call per
tick however many horizons are asked for.
"""

from __future__ import annotations

from typing import Any, Callable

from pydantic import ConfigDict, Field, field_validator

from longhorizon.context.settings import ContextSettings, context_field, context_options_field
from longhorizon.eval.horizon import horizon_length, horizon_summary
from longhorizon.rollout.runner import EpisodeSpec, Policy, run_episodes
from longhorizon.types import Trajectory, Turn


class HorizonEvalConfig(ContextSettings):
    """Everything that defines a horizon evaluation (written to runs/NAME/config.yaml)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m", description="smollm2-135m, tiny-random, oracle, noisy-oracle:p, or a local HF directory")
    env_id: str = Field("longhorizon/Execution-v0", description="registered env id")
    horizons: list[int] = Field([1, 2, 4, 8, 16, 32], description="values of the horizon knob to evaluate")
    horizon_knob: str | None = Field("horizon", description="env knob the horizons set (None: run the env's own settings once)")
    episodes: int = Field(16, ge=1, description="episodes per horizon")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="other env knobs, e.g. turn_complexity")
    wrappers: list[dict[str, Any]] = Field(default_factory=list, description='feedback wrappers, innermost first: [{"name": "try_again", "max_attempts": 3}]')
    context: str = context_field()
    context_options: dict[str, Any] = context_options_field()
    temperature: float = Field(0.0, ge=0, description="sampling temperature; 0 is greedy")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling threshold")
    max_new_tokens: int = Field(24, ge=1, description="token cap per model turn")
    dtype: str = Field("float32", description="model dtype: float32 or bfloat16")
    prefill: bool = Field(True, description="pre-fill the env's response prefix (e.g. <answer>) in each model turn")
    s: float = Field(0.5, gt=0, lt=1, description="success threshold for the horizon length H_s")
    seed: int = Field(0, description="episode i of every horizon uses env seed `seed + i`; also the sampling seed")

    @field_validator("horizons")
    @classmethod
    def _positive_horizons(cls, v: list[int]) -> list[int]:
        if not v or any(h < 1 for h in v):
            raise ValueError("horizons must be a non-empty list of positive integers")
        return sorted(set(v))


def episode_specs(cfg: HorizonEvalConfig) -> list[EpisodeSpec]:
    """One spec per (horizon, episode); the horizon is stored as `metadata["horizon_value"]` via env_kwargs."""
    return [
        EpisodeSpec(cfg.env_id, seed=cfg.seed + i, env_kwargs=env_kwargs_at(cfg, h), group_id=i, wrappers=cfg.wrappers)
        for h in cfg.horizons
        for i in range(cfg.episodes)
    ]


def env_kwargs_at(cfg: HorizonEvalConfig, horizon: int) -> dict[str, Any]:
    return {**cfg.env_kwargs, cfg.horizon_knob: horizon} if cfg.horizon_knob else dict(cfg.env_kwargs)


def run_horizon_eval(
    cfg: HorizonEvalConfig, policy: Policy, on_tick: Callable[[int, int], None] | None = None
) -> tuple[list[Trajectory], dict[str, Any]]:
    """Run every horizon's episodes in one batched rollout; return trajectories and metrics."""
    trajectories = run_episodes(episode_specs(cfg), policy, on_tick=on_tick)
    return trajectories, summarize(cfg, trajectories)


def summarize(cfg: HorizonEvalConfig, trajectories: list[Trajectory]) -> dict[str, Any]:
    """Per-horizon summaries plus H_s."""
    per_h = len(trajectories) // len(cfg.horizons)  # episode_specs orders them horizon by horizon
    by_h = {h: trajectories[k * per_h : (k + 1) * per_h] for k, h in enumerate(cfg.horizons)}
    rows = [horizon_summary(by_h[h], h) for h in cfg.horizons]
    swept = cfg.horizon_knob is not None
    return {
        "model": cfg.model,
        "env_id": cfg.env_id,
        "horizon_knob": cfg.horizon_knob,
        "horizons": rows,
        "horizon_length": horizon_length(cfg.horizons, [r["success_rate"] for r in rows], cfg.s) if swept else None,
        "prompt_tokens_by_turn": _prompt_lengths(by_h[max(cfg.horizons)]),
    }


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
