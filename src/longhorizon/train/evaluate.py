"""Held-out evaluation during training, with the horizon-eval code (`run_horizon_eval`).

`cfg.eval` is an `EvalConfig` (the config of `longhorizon eval`) whose left-out
keys came from the training config. Episode i uses env seed `eval.seed + i`
(the config checks that training never sees these seeds). The horizons are
the env's horizon knob at its training value unless `eval.horizons` lists
others. Every evaluation builds a fresh sampler with the same seed, so
evaluations at different steps draw the same random numbers and differ only
by the weights. It samples with the training sampler's backend: the live
model (transformers), or the training vLLM engine, whose weights were synced
after the last update (`sampler: vllm`; no second engine is started).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from longhorizon.context import ContextStrategy
from longhorizon.eval import resolve, run_horizon_eval
from longhorizon.eval.horizon import mean_env_metrics
from longhorizon.models import SamplingParams
from longhorizon.rollout import ModelPolicy
from longhorizon.train.config import TrainConfig
from longhorizon.types import Trajectory


def held_out_eval(cfg: TrainConfig, sampler: Any, strategy: ContextStrategy) -> tuple[list[Trajectory], dict[str, float]]:
    """Run the held-out episodes with the training sampler's model or engine (fresh settings and seeds); return
    them and `eval/` metrics (means with standard errors)."""
    ecfg = resolve(cfg.eval)
    params = SamplingParams(temperature=ecfg.temperature, top_p=ecfg.top_p, max_new_tokens=ecfg.max_new_tokens,
                            stop=tuple(ecfg.stop), seed=ecfg.seed)
    policy = ModelPolicy(sampler.with_params(params), strategy, prefill=ecfg.prefill)
    if ecfg.best_of is not None:  # reward-guided best-of-N at every turn
        from longhorizon.rollout.best_of_n import best_of

        policy = best_of(policy, ecfg.best_of, ecfg.dtype)
    trajectories, summary = run_horizon_eval(ecfg, policy)
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
    out.update({f"eval/env/{k}": v for k, v in mean_env_metrics(trajectories).items()})  # e.g. Succ@k, LongWrite's scores
    return out


def _se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0
