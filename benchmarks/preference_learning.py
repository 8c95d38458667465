"""Learning from verifier-labelled pairs on the quickstart task: offline DPO and one online method.

    python benchmarks/preference_learning.py [--online online_dpo] [--out runs/bench-prefs]
    python benchmarks/preference_learning.py --quick          # noisy-oracle pairs, tiny-random: the wiring only

1. `longhorizon prefs build recipes/prefs/quickstart.yaml`: the bundled model samples the pairs itself.
2. `longhorizon train recipes/dpo-quickstart.yaml` on them (offline DPO).
3. `longhorizon train recipes/<online>-quickstart.yaml` (online: pairs of the policy's own episodes).
Each training run evaluates the same held-out episodes (greedy) before and after; the table gives the
held-out reward with standard errors, the gain in standard errors (independent SEs combined) and the
wall time. The issue asks each method to beat the untrained model by more than 3 SE.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from longhorizon.config_io import load
from longhorizon.feedback.build import PrefsBuildConfig, build_pairs
from longhorizon.train import load_config, train

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
QUICK_BUILD = ["model=noisy-oracle:0.6", "tasks=8", "samples=3"]  # tiny-random never scores: all ties
QUICK_TRAIN = ["model=tiny-random", "steps=2", "tasks_per_step=2", "eval.episodes=4", "autocast_bf16=false",
               "save_final_model=false", "algorithm.group_size=2"]


def gain_row(name: str, result, seconds: float) -> str:
    before, after = result.eval_before, result.eval_after
    gain = after["eval/reward_mean"] - before["eval/reward_mean"]
    se = math.hypot(before["eval/reward_se"], after["eval/reward_se"])
    in_se = f"{gain / se:+.1f}" if se > 0 else "n/a"
    return (f"{name:<12}{before['eval/reward_mean']:>8.3f} ± {before['eval/reward_se']:.3f}"
            f"{after['eval/reward_mean']:>9.3f} ± {after['eval/reward_se']:.3f}{in_se:>9}{seconds:>8.0f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--online", default="online_dpo", choices=["online_dpo", "dno", "inpo", "p3o_v1", "p3o_v2"])
    ap.add_argument("--out", default="runs/bench-prefs")
    ap.add_argument("--quick", action="store_true", help="tiny-random, a few steps: the wiring, not a result")
    args = ap.parse_args()
    out = Path(args.out)
    build_sets = QUICK_BUILD if args.quick else []
    train_sets = QUICK_TRAIN if args.quick else []

    start = time.perf_counter()
    cfg = load(PrefsBuildConfig, RECIPES / "prefs" / "quickstart.yaml", [*build_sets, f"out={out / 'pairs'}"])
    pairs, summary = build_pairs(cfg)
    print(f"pairs: {summary['pairs']} from {summary['episodes']} episodes in {time.perf_counter() - start:.0f} s", flush=True)

    rows = []
    for name, recipe, extra in (("dpo", "dpo-quickstart.yaml", [f"preferences={out / 'pairs'}"]),
                                (args.online, f"{args.online.replace('_', '-')}-quickstart.yaml", [])):
        start = time.perf_counter()
        cfg = load_config(RECIPES / recipe, [*extra, *train_sets, f"run_dir={out / name}"])
        rows.append(gain_row(name, train(cfg), time.perf_counter() - start))
        print(rows[-1], flush=True)
    print(f"\n{'method':<12}{'before (held-out reward)':>24}{'after':>15}{'gain/se':>9}{'wall s':>8}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
