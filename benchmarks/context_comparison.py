"""Bundled model: `full` vs `markovian` vs `window` context on Execution and Vending, as a report with a plot.

    python benchmarks/context_comparison.py [--out runs/context_comparison] [--trained runs/quickstart/model]
                                            [--execution-episodes 32] [--vending-episodes 4]

For each model (the bundled SmolLM2-135M-Instruct, plus `--trained`, a model
directory such as the one `bash scripts/quickstart.sh` exports) and each
strategy, runs a horizon evaluation (greedy, bf16) and writes it as
`longhorizon eval` does (OUT/<env>/<model>/<strategy>/: config.yaml,
trajectories.jsonl, metrics.json, horizon.png); then `compare_runs` writes
OUT/report.md and OUT/comparison.png over every run under OUT (so models can
be run at different times with `--models`) and the report is printed.

- Execution-v0: the quickstart's task (2-word dictionary, values -1..1, one key
  per turn), horizons 1, 2, 4, 8, 16, played to the end after a wrong total
  (`stop_on_error=False`), so per-step accuracy is measured at every turn.
- Vending-v0: days 1, 2, 4 with at most 4 messages per day (bundled model only:
  the trained one learned Execution).

Strategies: `full`; `window` with k = 2; `markovian` across turns (the task
plus a carryover of the model's previous answer, m = 32 tokens). The model is
loaded once per model and shared by its strategies.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from longhorizon.context import make_strategy
from longhorizon.eval import HorizonEvalConfig, run_horizon_eval
from longhorizon.eval.compare import compare_runs, load_run, mean_step_accuracy
from longhorizon.eval.report import plot_horizon_curves
from longhorizon.models import SamplingParams, TransformersSampler, load_model
from longhorizon.rollout import ModelPolicy
from longhorizon.store import RunDir

STRATEGIES: dict[str, dict[str, Any]] = {
    "full": {"context": "full", "context_options": {}},
    "window": {"context": "window", "context_options": {"k": 2}},
    "markovian": {"context": "markovian", "context_options": {"mode": "turns", "carryover": 32}},
}


def settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {
        "execution": {"env_id": "longhorizon/Execution-v0", "horizons": [1, 2, 4, 8, 16], "horizon_knob": "horizon",
                      "episodes": args.execution_episodes, "max_new_tokens": 6,
                      "env_kwargs": {"turn_complexity": 1, "dict_size": 2, "value_range": 1, "stop_on_error": False}},
        "vending": {"env_id": "longhorizon/Vending-v0", "horizons": [1, 2, 4], "horizon_knob": "days",
                    "episodes": args.vending_episodes, "max_new_tokens": 96,
                    "env_kwargs": {"max_actions_per_day": 4}},
    }


def run_one(cfg: HorizonEvalConfig, loaded: Any, out: Path) -> Path:
    params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                            seed=cfg.seed)
    policy = ModelPolicy(TransformersSampler(loaded.model, loaded.tokenizer, params),
                         make_strategy(cfg.context, **cfg.context_options), prefill=cfg.prefill)
    start = time.perf_counter()
    trajectories, metrics = run_horizon_eval(cfg, policy)
    metrics["wall_seconds"] = time.perf_counter() - start
    run = RunDir(out)
    run.write_config(cfg.model_dump())
    run.write_trajectories(trajectories)
    run.write_metrics(metrics)
    plot_horizon_curves(metrics, run.path / "horizon.png")
    return run.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/context_comparison"))
    parser.add_argument("--trained", default=None, help="a trained model directory to compare as well (Execution only)")
    parser.add_argument("--execution-episodes", type=int, default=32)
    parser.add_argument("--vending-episodes", type=int, default=4)
    parser.add_argument("--envs", default="execution,vending")
    parser.add_argument("--models", default="bundled,trained", help="which of bundled, trained to run now "
                        "(trained only with --trained); the report covers every run already under --out")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    envs = settings(args)
    models = {"bundled": "smollm2-135m"} | ({"trained": args.trained} if args.trained else {})
    for model_name, model_spec in models.items():
        if model_name not in args.models.split(","):
            continue
        loaded = load_model(model_spec, dtype=args.dtype)
        for env_name in args.envs.split(","):
            if model_name == "trained" and env_name != "execution":
                continue
            setting = envs[env_name]
            for strategy, context in STRATEGIES.items():
                cfg = HorizonEvalConfig(model=model_spec, dtype=args.dtype, temperature=0.0, **setting, **context)
                t0 = time.perf_counter()
                run = load_run(run_one(cfg, loaded, args.out / env_name / model_name / strategy))
                cells = ", ".join(f"{r['horizon']}: {r['success_rate']:.2f}/{r['mean_reward']:.3g}"
                                  + (f"/{mean_step_accuracy(r):.2f}" if mean_step_accuracy(r) is not None else "")
                                  for r in run.metrics["horizons"])
                print(f"{env_name:9s} {model_name:7s} {strategy:9s} {time.perf_counter() - t0:6.0f} s  "
                      f"(horizon: success/reward/step acc) {cells}", flush=True)
    runs = [args.out / env / model / strategy for env in envs for model in ("bundled", "trained")
            for strategy in STRATEGIES if (args.out / env / model / strategy / "metrics.json").exists()]
    report, plot = compare_runs(runs, args.out, labels=[f"{p.parent.name} / {p.name}" for p in runs],
                                title="Context strategies on the bundled model: full vs markovian vs window")
    print(report.read_text(encoding="utf-8"))
    print(f"report: {report}\nplot: {plot}")


if __name__ == "__main__":
    main()
