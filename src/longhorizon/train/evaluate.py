"""Held-out evaluation during training, with the horizon-eval code (`run_horizon_eval`).

Episode i uses env seed `eval.seed + i` (the config checks that training
never sees these seeds). The horizons are the env's horizon knob at its
training value unless `eval.horizons` lists others. Every evaluation builds a fresh sampler with the
same seed, so evaluations at different steps draw the same random numbers
and differ only by the weights.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from longhorizon.context import ContextStrategy
from longhorizon.envs import knob_default
from longhorizon.eval import HorizonEvalConfig, run_horizon_eval
from longhorizon.models import SamplingParams, TransformersSampler
from longhorizon.rollout import ModelPolicy
from longhorizon.train.config import TrainConfig
from longhorizon.types import Trajectory


def eval_setting(cfg: TrainConfig) -> tuple[str | None, list[int]]:
    """(horizon knob, horizons): the configured eval horizons, else the knob's training value."""
    env = gym.make(cfg.env_id, **cfg.env_kwargs)
    unwrapped = env.unwrapped
    env.close()
    knob = getattr(unwrapped, "HORIZON_KNOB", None)
    if knob is None:
        return None, [1]
    if cfg.eval.horizons:
        return knob, cfg.eval.horizons
    default = knob_default(type(unwrapped), knob)
    return knob, [int(cfg.env_kwargs.get(knob, default))]


def held_out_eval(cfg: TrainConfig, model: Any, tokenizer: Any, strategy: ContextStrategy) -> tuple[list[Trajectory], dict[str, float]]:
    """Run the held-out episodes; return them and `eval/` metrics (means with standard errors)."""
    knob, horizons = eval_setting(cfg)
    hcfg = HorizonEvalConfig(
        model=cfg.model, env_id=cfg.env_id, horizons=horizons, horizon_knob=knob, episodes=cfg.eval.episodes,
        env_kwargs={k: v for k, v in cfg.env_kwargs.items() if k != knob}, wrappers=cfg.wrappers,
        context=cfg.context, context_options=cfg.context_options, temperature=cfg.eval.temperature, max_new_tokens=cfg.max_new_tokens, dtype=cfg.dtype,
        prefill=cfg.prefill, seed=cfg.eval.seed)
    params = SamplingParams(temperature=cfg.eval.temperature, max_new_tokens=cfg.max_new_tokens,
                            stop=tuple(cfg.stop), seed=cfg.eval.seed)
    policy = ModelPolicy(TransformersSampler(model, tokenizer, params), strategy, prefill=cfg.prefill)
    trajectories, summary = run_horizon_eval(hcfg, policy)
    return trajectories, eval_metrics(trajectories, summary)


def eval_metrics(trajectories: list[Trajectory], summary: dict[str, Any]) -> dict[str, float]:
    rewards = np.array([t.total_reward for t in trajectories], dtype=float)
    success = np.array([bool(t.success) for t in trajectories], dtype=float)
    n = len(trajectories)
    out = {"eval/reward_mean": float(rewards.mean()), "eval/reward_se": _se(rewards),
           "eval/success_rate": float(success.mean()), "eval/success_se": math.sqrt(success.mean() * (1 - success.mean()) / n),
           "eval/episodes": float(n)}
    for row in summary["horizons"]:
        out[f"eval/success_rate_h{row['horizon']}"] = row["success_rate"]
    return out


def _se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0
