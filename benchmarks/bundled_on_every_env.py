"""Run the bundled model on every registered env at its smallest level; print and save the metrics.

    python benchmarks/bundled_on_every_env.py [--episodes 4] [--out runs/bundled-every-env]

One model load; each env runs its first `LEVELS` entry (the smallest), cut to
a short horizon by the `TurnLimit` wrapper (`--max-turns`), through the same
`run_horizon_eval` that `longhorizon eval` uses; each env's metrics are
written to `<out>/<EnvName>/metrics.json` with its trajectories.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from longhorizon.context import make_strategy
from longhorizon.envs import env_class, list_envs
from longhorizon.eval import HorizonEvalConfig, run_horizon_eval
from longhorizon.models import SamplingParams
from longhorizon.rollout import model_policy
from longhorizon.store import RunDir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--max-turns", type=int, default=8, help="TurnLimit per episode (a short horizon)")
    ap.add_argument("--out", default="runs/bundled-every-env")
    args = ap.parse_args()
    params = SamplingParams(temperature=0.0, max_new_tokens=args.max_new_tokens)
    policy = model_policy("smollm2-135m", make_strategy("full"), params, dtype=args.dtype)
    print(f"{'env':<32}{'level':<12}{'success':>8}{'reward':>8}{'turns':>7}{'sec':>6}  env metrics")
    for env_id in list_envs():
        cls = env_class(env_id)
        level, knobs = next(iter(cls.LEVELS.items()))
        cfg = HorizonEvalConfig(model="smollm2-135m", env_id=env_id, horizons=[1], horizon_knob=None,
                                episodes=args.episodes, env_kwargs=knobs, max_new_tokens=args.max_new_tokens,
                                dtype=args.dtype, wrappers=[{"name": "turn_limit", "max_turns": args.max_turns}])
        start = time.perf_counter()
        trajectories, metrics = run_horizon_eval(cfg, policy)
        row = metrics["horizons"][0]
        run = RunDir(Path(args.out) / env_id.split("/")[1])
        run.write_config(cfg.model_dump())
        run.write_trajectories(trajectories)
        run.write_metrics(metrics)
        env_metrics = ", ".join(f"{k}={v:.3g}" for k, v in row["env_metrics"].items())
        print(f"{env_id:<32}{level:<12}{row['success_rate']:>8.2f}{row['mean_reward']:>8.2f}"
              f"{row['mean_turns']:>7.1f}{time.perf_counter() - start:>6.0f}  {env_metrics}", flush=True)


if __name__ == "__main__":
    main()
