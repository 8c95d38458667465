"""Learning from verifier-labelled pairs on the quickstart task: offline DPO, online methods, and RL on a learned reward.

    python benchmarks/preference_learning.py [--policies dpo,inpo,nash_md,grpo_rm] [--out runs/bench-prefs]
        [--tasks N] [--rm-steps N] [--rl-kl 0,0.1]
    python benchmarks/preference_learning.py --quick          # noisy-oracle pairs, tiny-random: the wiring only

1. `longhorizon prefs build recipes/prefs/quickstart.yaml`: the bundled model samples the pairs itself.
2. `longhorizon train recipes/dpo-quickstart.yaml` on them (offline DPO).
3. `longhorizon train recipes/<online>-quickstart.yaml` (online: pairs of the policy's own episodes).
4. `longhorizon train recipes/prefs/reward-model.yaml` on the same pairs: a Bradley-Terry reward model, with
   its held-out pair accuracy (whole tasks held out) before and after.
5. `longhorizon train recipes/quickstart.yaml` with that reward model as the only reward
   (`algorithm.rewards.components: [{name: reward_model, ...}]`): GRPO never sees the env's reward, and the
   held-out eval scores the env's reward; `--rl-kl` adds a KL penalty to the reference (one run per value),
   RLHF's guard against a policy drifting to text the reward model never saw.
Each policy run evaluates the same held-out episodes (greedy) before and after; the table gives the
held-out env reward with standard errors, the gain in standard errors (independent SEs combined) and the
wall time. The issue asks each method to beat the untrained model by more than 3 SE. Everything printed
is also written to OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
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
    online = ["online_dpo", "dno", "inpo", "p3o_v1", "p3o_v2", "nash_md", "nash_mp"]
    ap.add_argument("--policies", default="dpo,inpo,nash_md,grpo_rm",
                    help=f"comma-separated policy runs, in order: dpo, grpo_rm (GRPO on the reward model alone), or an "
                         f"online method ({', '.join(online)})")
    ap.add_argument("--tasks", type=int, default=None, help="prefs build: tasks to sample pairs from (default: the recipe's)")
    ap.add_argument("--rm-steps", type=int, default=None, help="reward model: training steps (default: the recipe's)")
    ap.add_argument("--rl-kl", default="0", help="grpo_rm: comma-separated KL-to-reference coefficients, one run each")
    ap.add_argument("--out", default="runs/bench-prefs")
    ap.add_argument("--quick", action="store_true", help="tiny-random, a few steps: the wiring, not a result")
    args = ap.parse_args()
    policies = args.policies.split(",")
    if unknown := [m for m in policies if m not in (*online, "dpo", "grpo_rm")]:
        ap.error(f"unknown policy run {', '.join(unknown)}: use dpo, grpo_rm, {', '.join(online)}")
    out = Path(args.out)
    build_sets = QUICK_BUILD if args.quick else []
    train_sets = QUICK_TRAIN if args.quick else []

    start = time.perf_counter()
    build_sets += [f"tasks={args.tasks}"] if args.tasks else []
    cfg = load(PrefsBuildConfig, RECIPES / "prefs" / "quickstart.yaml", [*build_sets, f"out={out / 'pairs'}"])
    pairs, summary = build_pairs(cfg)
    print(f"pairs: {summary['pairs']} from {summary['episodes']} episodes in {time.perf_counter() - start:.0f} s", flush=True)

    results: dict = {"pairs": summary, "pairs_wall_s": time.perf_counter() - start, "policies": {}}

    start = time.perf_counter()
    rm_sets = ["steps=2", "tasks_per_step=2", "model=tiny-random"] if args.quick else []
    rm_sets += [f"steps={args.rm_steps}", f"checkpoint_every={args.rm_steps}"] if args.rm_steps else []
    result = train(load_config(RECIPES / "prefs" / "reward-model.yaml",
                               [f"preferences={out / 'pairs'}", *rm_sets, f"run_dir={out / 'rm'}"]))
    results["reward_model"] = {"before": result.eval_before, "after": result.eval_after,
                               "wall_s": time.perf_counter() - start}
    rm_line = (f"reward model: held-out pair accuracy {result.eval_before['eval/pair_accuracy']:.3f} -> "
               f"{result.eval_after['eval/pair_accuracy']:.3f} on {result.eval_after['eval/pairs']:.0f} pairs "
               f"in {results['reward_model']['wall_s']:.0f} s")
    print(rm_line, flush=True)

    learned = json.dumps([{"name": "reward_model", "model": str(out / "rm" / "model"), "per": "episode"}])
    rows = []
    arms = []
    for m in policies:
        if m == "dpo":
            arms.append(("dpo", "dpo-quickstart.yaml", [f"preferences={out / 'pairs'}"]))
        elif m == "grpo_rm":  # the env's reward never reaches the policy; the held-out eval reads it
            arms += [(f"grpo_rm{'' if float(kl) == 0 else f'_kl{kl}'}", "quickstart.yaml",
                      [f"algorithm.rewards.components={learned}", f"algorithm.kl_coef={kl}"])
                     for kl in args.rl_kl.split(",")]
        else:
            arms.append((m, f"{m.replace('_', '-')}-quickstart.yaml", []))
    for name, recipe, extra in arms:
        start = time.perf_counter()
        cfg = load_config(RECIPES / recipe, [*extra, *train_sets, f"run_dir={out / name}"])
        result = train(cfg)
        seconds = time.perf_counter() - start
        results["policies"][name] = {"before": result.eval_before, "after": result.eval_after, "wall_s": seconds}
        rows.append(gain_row(name, result, seconds))
        print(rows[-1], flush=True)
    print(f"\n{rm_line}")
    print(f"\n{'method':<12}{'before (held-out reward)':>24}{'after':>15}{'gain/se':>9}{'wall s':>8}")
    print("\n".join(rows))
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
