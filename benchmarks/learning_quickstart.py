"""Does the quickstart learn? Held-out reward before and after training, with standard errors.

    python benchmarks/learning_quickstart.py [--recipe recipes/quickstart.yaml] [--out runs/bench-quickstart] [--set KEY=VALUE ...]

Trains the recipe (evaluating on held-out seeds before and after, greedy),
then prints mean episode reward and success with standard errors, the gain
in units of its standard error (unpaired: sqrt(se_before^2 + se_after^2);
and paired, since both evaluations use the same seeds), the most common
first answers before and after, and whether the gain exceeds 3 standard errors.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import time
from pathlib import Path

import numpy as np

from longhorizon.train import load_config, train


def eval_rewards(run_dir: Path, step: int) -> tuple[np.ndarray, list[str]]:
    lines = (run_dir / "eval" / f"step_{step:06d}.jsonl").read_text(encoding="utf-8").splitlines()
    episodes = [json.loads(line) for line in lines if line.strip()]
    rewards = np.array([sum(t["reward"] for t in e["turns"]) for e in episodes], dtype=float)
    return rewards, [e["turns"][0]["action"] if e["turns"] else "" for e in episodes]


def turn_accuracy(run_dir: Path, step: int) -> list[str]:
    """Per turn index: correct turns / episodes that reached it (the env's `info["correct"]`)."""
    lines = (run_dir / "eval" / f"step_{step:06d}.jsonl").read_text(encoding="utf-8").splitlines()
    turns = [json.loads(line)["turns"] for line in lines if line.strip()]
    out = []
    for k in range(max(len(t) for t in turns)):
        reached = [t[k]["info"].get("correct", False) for t in turns if len(t) > k]
        out.append(f"turn {k + 1}: {sum(reached)}/{len(reached)}")
    return out


def se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recipes/quickstart.yaml")
    ap.add_argument("--out", default="runs/bench-quickstart")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override KEY=VALUE")
    args = ap.parse_args()

    cfg = load_config(args.recipe, args.sets).model_copy(update={"run_dir": args.out})
    start = time.perf_counter()
    result = train(cfg, on_log=lambda step, m: print(
        f"[{time.perf_counter() - start:6.0f} s] step {step:3d} "
        + "  ".join(f"{k}={v:.3f}" for k, v in m.items() if k in ("charts/reward_mean", "eval/reward_mean", "perf/step_time")),
        flush=True))
    minutes = (time.perf_counter() - start) / 60

    before, answers_before = eval_rewards(result.run_dir, 0)
    after, answers_after = eval_rewards(result.run_dir, cfg.steps)
    gain = after.mean() - before.mean()
    se_unpaired = math.hypot(se(before), se(after))
    se_paired = se(after - before)
    print(f"\n{cfg.model} on {cfg.env_id} {cfg.env_kwargs}, {cfg.algorithm.name}, {cfg.steps} steps, "
          f"{len(after)} held-out episodes, {minutes:.1f} min")
    print(f"held-out reward before: {before.mean():.3f} ± {se(before):.3f}   "
          f"success {result.eval_before['eval/success_rate']:.3f} ± {result.eval_before['eval/success_se']:.3f}")
    print(f"held-out reward after:  {after.mean():.3f} ± {se(after):.3f}   "
          f"success {result.eval_after['eval/success_rate']:.3f} ± {result.eval_after['eval/success_se']:.3f}")
    for name, value in (("unpaired", se_unpaired), ("paired", se_paired)):
        print(f"gain {gain:+.3f} = {gain / value:+.1f} se ({name}, se {value:.3f})" if value > 0 else f"gain {gain:+.3f} ({name} se 0)")
    for name, step in (("before", 0), ("after", cfg.steps)):
        print(f"correct turns {name}: {', '.join(turn_accuracy(result.run_dir, step))}")
    for name, answers in (("before", answers_before), ("after", answers_after)):
        print(f"most common first answers {name}: {collections.Counter(answers).most_common(4)}")
    passed = gain > 3 * se_unpaired if se_unpaired > 0 else gain > 0
    print(f"trained beats untrained by more than 3 se: {'YES' if passed else 'NO'}")


if __name__ == "__main__":
    main()
