"""Evaluation: horizon sweeps, H_s, per-step accuracy, plots."""

from longhorizon.eval.horizon import horizon_length, horizon_summary, turns_survived
from longhorizon.eval.sweep import HorizonEvalConfig, run_horizon_eval

__all__ = ["HorizonEvalConfig", "horizon_length", "horizon_summary", "run_horizon_eval", "turns_survived"]
