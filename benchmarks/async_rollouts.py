"""Synchronous against asynchronous training (ASearcher's bounded staleness) on Ray workers, same wall time.

    python benchmarks/async_rollouts.py [--model smollm2-135m] [--seconds 300] [--modes sync,1,2]
        [--horizons 2,4,8,16,32] [--workers 2] [--out benchmarks/results/async_rollouts] [--set KEY=VALUE ...]

Every arm trains the same model (LoRA, GRPO, 4 episodes per task, one task per horizon in each step, so
a batch mixes episodes of 2 to 32 turns: Execution-v0 with a 2-word dictionary and values in [-1, 1],
running all H turns, reward = turns answered right) on 2 Ray workers for `--seconds` of wall time from
the start of `train` (the model load and the workers' start-up included, the same for every arm):
- sync: each step waits for all its units (`rollout.max_staleness` unset);
- k (1, 2, ...): asynchronous, `rollout.max_staleness: k`, with decoupled PPO (`algorithm.decoupled`).
The arm counts the steps checkpointed before the first log past the budget (at least 1; every step is
checkpointed, and the run stops at that log, before the step's own checkpoint); the weights of the last
of them are evaluated greedily on the same 32 held-out tasks (horizon 8), by resuming the run with
`steps` set to that step.

Prints, per arm: steps done, trained tokens per second (tokens of the rows trained / wall time to the
last step), the trainer's idle fraction (time waiting for rollouts / step time, summed), the workers'
idle fraction (async only: time with no unit to run), the mean staleness, the mean turns of the episodes
trained against those sampled (async favours short episodes), and the held-out reward (± se). On a
2-core machine the trainer and the two workers share the cores: read the numbers as the machinery's
behaviour under contention, not as a speed-up to expect on separate devices.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np

from longhorizon.train import load_config, train
from longhorizon.train.checkpoint import latest_checkpoint
from longhorizon.train.metrics import read_records


class Budget(Exception):
    """The arm's wall time is spent."""


def arm_sets(mode: str, args: argparse.Namespace, run_dir: Path) -> list[str]:
    horizons = "[" + ", ".join(args.horizons.split(",")) + "]"
    sets = [f"model={args.model}", "lora.enabled=true", "optim.lr=2.0e-4",
            "env_id=longhorizon/Execution-v0",
            "env_kwargs={horizon: 2, turn_complexity: 1, dict_size: 2, value_range: 1, stop_on_error: false}",
            f"task_mix={{horizon: {horizons}}}", f"tasks_per_step={len(args.horizons.split(','))}",
            "algorithm.group_size=4", "max_new_tokens=6", "temperature=1.0", "steps=10000", "eval.episodes=0",
            "checkpoint_every=1", "keep_checkpoints=1", "save_final_model=false", "save_trajectories=false",
            f"rollout.workers={args.workers}", "torch_threads=1", f"run_dir={run_dir}", f"seed={args.seed}"]
    if mode != "sync":
        sets += [f"rollout.max_staleness={int(mode)}", "algorithm.decoupled=true"]
    return sets + args.sets


def run_arm(mode: str, args: argparse.Namespace) -> dict:
    run_dir = Path(args.runs) / f"{mode}-seed{args.seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # the benchmark's own run, started afresh
    cfg = load_config(None, arm_sets(mode, args, run_dir))
    start = time.perf_counter()
    logged: list[float] = []

    def stop_when_spent(step: int, metrics: dict) -> None:
        logged.append(time.perf_counter() - start)
        if logged[-1] > args.seconds and step >= 2:  # step - 1 is checkpointed; this step's checkpoint never is
            raise Budget

    try:
        train(cfg, on_log=stop_when_spent)
    except Budget:
        pass
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise SystemExit(f"{mode}: no step finished within {args.seconds} s; give it more --seconds")
    done = int(checkpoint.name.split("_")[-1])
    evaluated = cfg.model_copy(update={"steps": done, "rollout": cfg.rollout.model_copy(
        update={"workers": 0, "max_staleness": None}), "algorithm": cfg.algorithm.model_copy(update={"decoupled": False}),
        "eval": cfg.eval.model_copy(update={"episodes": args.eval_episodes, "env_kwargs": {
            "horizon": 8, "turn_complexity": 1, "dict_size": 2, "value_range": 1, "stop_on_error": False}})})
    train(evaluated, resume=True)  # no step to run: the held-out eval of the checkpoint's weights
    records = [r for r in read_records(run_dir) if "charts/reward_mean" in r and r["step"] <= done]
    episodes = [json.loads(line) for line in (run_dir / "eval" / f"step_{done:06d}.jsonl").read_text().splitlines() if line]
    rewards = [sum(t["reward"] for t in e["turns"]) for e in episodes]
    trained = sum(r["perf/train_tokens_per_s"] * r["perf/update_time"] for r in records)
    out = {"mode": mode, "steps": done, "wall_s": logged[len(records) - 1],
           "trained_tokens_per_s": trained / logged[len(records) - 1],
           "trainer_idle_fraction": sum(r["perf/rollout_time"] for r in records) / sum(r["perf/step_time"] for r in records),
           "held_out_reward": float(np.mean(rewards)),
           "held_out_se": float(np.std(rewards, ddof=1) / math.sqrt(len(rewards))),
           "train_reward": [r["charts/reward_mean"] for r in records]}
    if mode != "sync":
        last = records[-1]
        out.update({"worker_idle_fraction": last["async/worker_idle_fraction"],
                    "staleness_mean": float(np.mean([r["async/staleness_mean"] for r in records])),
                    "staleness_max": max(r["async/staleness_max"] for r in records),
                    "trained_turns": float(np.mean([r["async/trained_turns"] for r in records])),
                    "sampled_turns": float(np.mean([r["async/sampled_turns"] for r in records])),
                    "units_resampled": last["async/units_resampled"]})
    return out


def table(results: list[dict], args: argparse.Namespace) -> str:
    rows = [f"{args.model}, LoRA, Execution-v0 with horizons {args.horizons} in every step, {args.workers} Ray "
            f"workers, {args.seconds:.0f} s of wall time per arm, seed {args.seed}; held-out: {args.eval_episodes} "
            "greedy episodes at horizon 8 (reward = turns right, 0-8).", "",
            "| arm | steps | trained tokens/s | trainer idle | worker idle | staleness mean / max | turns trained / sampled | held-out reward |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["mode"] == "sync":
            extra = "- | 0 / 0 | - |"
        else:
            extra = (f"{r['worker_idle_fraction']:.2f} | {r['staleness_mean']:.2f} / {r['staleness_max']:.0f} | "
                     f"{r['trained_turns']:.1f} / {r['sampled_turns']:.1f} |")
        name = "sync" if r["mode"] == "sync" else f"async, max_staleness {r['mode']}"
        rows.append(f"| {name} | {r['steps']} | {r['trained_tokens_per_s']:.1f} | {r['trainer_idle_fraction']:.2f} | "
                    f"{extra} {r['held_out_reward']:.3f} ± {r['held_out_se']:.3f} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--modes", default="sync,1,2", help="sync and/or max_staleness values")
    ap.add_argument("--horizons", default="2,4,8,16,32")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-episodes", type=int, default=32)
    ap.add_argument("--out", default="benchmarks/results/async_rollouts")
    ap.add_argument("--runs", default="runs/async_rollouts", help="where the training runs go")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override for every arm")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for mode in args.modes.split(","):
        if mode != "sync" and not mode.isdigit():
            ap.error(f"--modes: {mode!r} is neither sync nor a max_staleness")
        results.append(run_arm(mode, args))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "train_reward"}), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    text = table(results, args)
    (out / "table.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
