"""`longhorizon eval`: one `EvalConfig` in, a run directory out.

    metrics, plot = run(load_eval_config("recipes/eval/execution.yaml", ["episodes=8"]))

writes RUN_DIR/config.yaml (the resolved config that ran), metrics.json,
trajectories.jsonl and horizon.png. The env and its wrappers are checked at
the largest horizon, and `sampler: vllm` for an installed vllm, before any model loads.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from longhorizon.errors import UserError
from longhorizon.eval.config import EvalConfig, resolve
from longhorizon.eval.sweep import env_kwargs_at, run_horizon_eval
from longhorizon.models.settings import require_vllm
from longhorizon.rollout.policies import scripted_policy


def run(cfg: EvalConfig, on_progress: Callable[[int, int], None] | None = None) -> tuple[dict[str, Any], Path]:
    """Evaluate; `on_progress(turns_done_now, total_turns)` reports progress. Returns the metrics and the plot."""
    from longhorizon.eval.report import plot_horizon_curves
    from longhorizon.rollout import make_env
    from longhorizon.store import RunDir

    cfg = resolve(cfg)
    if cfg.episodes < 1:
        raise UserError(f"episodes must be at least 1, got {cfg.episodes}")
    make_env(cfg.env_id, env_kwargs_at(cfg, max(cfg.horizons)), cfg.wrappers).close()
    if scripted_policy(cfg.model) is None:
        require_vllm(cfg.sampler)
    run_dir = RunDir(cfg.run_dir)
    policy = make_policy(cfg)
    if hasattr(policy, "strategy"):
        policy.strategy.attach(run_dir.path)  # e.g. the memory strategy keeps its lessons in the run directory
    total = cfg.episodes * sum(cfg.horizons)
    start = time.perf_counter()
    trajectories, metrics = run_horizon_eval(cfg, policy, on_tick=lambda n, live: on_progress and on_progress(n, total))
    metrics["wall_seconds"] = time.perf_counter() - start
    run_dir.write_config(cfg.model_dump())
    run_dir.write_trajectories(trajectories)
    run_dir.write_metrics(metrics)
    return metrics, plot_horizon_curves(metrics, run_dir.path / "horizon.png")


def make_policy(cfg: EvalConfig) -> Any:
    """A scripted policy (oracle, noisy-oracle:p) or the model behind the context strategy."""
    from longhorizon.context import make_strategy
    from longhorizon.models import SamplingParams
    from longhorizon.rollout import model_policy

    scripted = scripted_policy(cfg.model, cfg.seed)
    if scripted is not None:
        return scripted
    params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                            stop=tuple(cfg.stop), seed=cfg.seed)
    strategy = make_strategy(cfg.context, **cfg.context_options)
    return model_policy(cfg.model, strategy, params, dtype=cfg.dtype, prefill=cfg.prefill, sampler=cfg.sampler,
                        vllm=cfg.vllm, kv_cache_mb=cfg.kv_cache_mb)
