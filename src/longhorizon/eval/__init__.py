"""Evaluation: horizon sweeps, H_s, per-step accuracy, plots; `run(cfg)` is `longhorizon eval`."""

from longhorizon.eval.config import EvalConfig, HorizonEvalConfig, load_eval_config, resolve
from longhorizon.eval.evaluate import run
from longhorizon.eval.horizon import horizon_length, horizon_summary, turns_survived
from longhorizon.eval.sweep import run_horizon_eval

__all__ = ["EvalConfig", "HorizonEvalConfig", "horizon_length", "horizon_summary", "load_eval_config", "resolve",
           "run", "run_horizon_eval", "turns_survived"]
