"""Which long-horizon credit method helps here? Same budget per arm, several seeds, held-out success and reward.

    python benchmarks/credit_ablation.py [--seeds 0,1] [--arms grpo,empg,...] [--horizon 4] [--steps 16]
        [--out benchmarks/results/credit_ablation] [--set KEY=VALUE ...]

Every arm trains the bundled model from the quickstart recipe
(`recipes/quickstart.yaml`: SmolLM2-135M, GRPO, G = 8, 4 tasks per step) on
Execution-v0 at `--horizon` turns (dictionary look-ups with a running sum,
stopping at the first error), for the same number of steps, then evaluates
greedily on the same held-out seeds. Arms:

- grpo: plain GRPO on the episode return (turns right before the first error);
- empg, epo, siren, steer: GRPO + one entropy-aware method (`algorithm.entropy.method`);
- per_turn: per-turn credit (return-to-go, gamma 0.9) of a fine-grained reward: success + 0.25 per correct turn;
- per_turn_gra: the same rewards, with the per-turn part gated on success (G-RA, gate 1.0);
- arpo: GRPO + ARPO replay of stored successes into all-failed groups, over a pool of 16 recurring tasks.

Why this task: untrained and greedy, the bundled model scores 0 on it (it
copies the instructions' example answer), but sampled at temperature 1 it is
sometimes right, and the quickstart learns the 2-turn version in 16 steps.
At 4 turns, stopping at the first error, success needs 4 right running sums
in a row: the outcome is sparse, most groups fail entirely (ARPO's case),
and the per-turn `correct` signal is dense, so per-turn credit and its
gating (G-RA) differ from the outcome. Check the untrained per-step accuracy
first (`longhorizon eval --model smollm2-135m --horizons 2,4,8 --temperature 1
...`) and move `--horizon` to where it is low but not zero.

Every finished run is saved as `--out`/runs/ARM-seedS.json and skipped when the
script runs again (so an interrupted ablation resumes, and two processes with
different `--seeds` can share one `--out`, e.g. one per core). Writes, under
--out: `results.json` (every saved run of the requested arms), `table.md` (per arm: held-out
success and reward, mean over seeds ± the standard error across seeds, and
± the pooled per-episode standard error; wall time per run) and
`ablation.png`. A method that does not help is a finding: the table says so.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from longhorizon.train import load_config, train
from longhorizon.train.metrics import read_records

SHAPED = ["algorithm.credit=per_turn", "algorithm.turn_gamma=0.9",
          "algorithm.rewards.components=[{name: success}, {name: correct, weight: 0.25}]"]
ARMS: dict[str, list[str]] = {
    "grpo": [],
    "empg": ["algorithm.entropy.method=empg"],
    "epo": ["algorithm.entropy.method=epo", "algorithm.entropy.epo_smooth_from_turn=1"],
    "siren": ["algorithm.entropy.method=siren"],
    "steer": ["algorithm.entropy.method=steer"],
    "per_turn": SHAPED,
    "per_turn_gra": [*SHAPED, "algorithm.rewards.gates=[1.0]"],
    "arpo": ["algorithm.replay.enabled=true", "algorithm.replay.task_pool=16"],
}


def run_arm(arm: str, seed: int, args: argparse.Namespace) -> dict:
    """Train one arm with one seed; return its held-out per-episode rewards and successes and its wall time."""
    run_dir = Path(args.runs) / f"{arm}-seed{seed}"
    sets = [f"env_kwargs={{horizon: {args.horizon}, turn_complexity: 1, dict_size: 2, value_range: 1, stop_on_error: true}}",
            f"steps={args.steps}", f"seed={seed}", f"run_dir={run_dir}", "save_final_model=false",
            "save_trajectories=false", "checkpoint_every=0", *ARMS[arm], *args.sets]
    cfg = load_config(args.recipe, sets)
    start = time.perf_counter()
    result = train(cfg)
    wall = time.perf_counter() - start
    before, after = (held_out(result.run_dir, step) for step in (0, cfg.steps))
    curve = [r["charts/reward_mean"] for r in read_records(result.run_dir) if "charts/reward_mean" in r]
    return {"arm": arm, "seed": seed, "wall_s": wall, **after, "before": before, "train_reward": curve}


def held_out(run_dir: Path, step: int) -> dict[str, list[float]]:
    """Per-episode held-out returns and successes of the evaluation at `step`."""
    lines = (run_dir / "eval" / f"step_{step:06d}.jsonl").read_text(encoding="utf-8").splitlines()
    episodes = [json.loads(line) for line in lines if line.strip()]
    return {"reward": [sum(t["reward"] for t in e["turns"]) for e in episodes],
            "success": [float(bool(e["success"])) for e in episodes]}


def summary(runs: list[dict], key: str) -> tuple[float, float, float]:
    """(mean over seeds of the per-seed means, se across seeds, pooled per-episode se)."""
    means = np.array([np.mean(r[key]) for r in runs])
    pooled = np.concatenate([r[key] for r in runs])
    across = means.std(ddof=1) / math.sqrt(len(means)) if len(means) > 1 else 0.0
    per_episode = pooled.std(ddof=1) / math.sqrt(len(pooled)) if len(pooled) > 1 else 0.0
    return float(means.mean()), float(across), float(per_episode)


def write_table(by_arm: dict[str, list[dict]], args: argparse.Namespace, out: Path) -> Path:
    rows = ["| arm | held-out success | held-out reward | seeds | wall time per run (s) |", "|---|---|---|---|---|"]
    first = next(iter(by_arm.values()))[0]["before"]  # the same untrained model and held-out seeds in every run
    rows.append(f"| untrained (step 0) | {np.mean(first['success']):.3f} | {np.mean(first['reward']):.3f} | - | - |")
    for arm, runs in by_arm.items():
        s, r = summary(runs, "success"), summary(runs, "reward")
        walls = ", ".join(f"{x['wall_s']:.0f}" for x in runs)
        rows.append(f"| {arm} | {s[0]:.3f} ± {s[1]:.3f} (± {s[2]:.3f}) | {r[0]:.3f} ± {r[1]:.3f} (± {r[2]:.3f}) "
                    f"| {len(runs)} | {walls} |")
    head = (f"Execution-v0, horizon {args.horizon}, {args.steps} steps per arm, recipe {args.recipe}, "
            f"overrides {args.sets or 'none'}. Mean over seeds ± standard error across seeds "
            "(± pooled per-episode standard error), greedy held-out evaluation on the same seeds.\n\n")
    path = out / "table.md"
    path.write_text(head + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_plot(by_arm: dict[str, list[dict]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    arms = list(by_arm)
    for ax, key in zip(axes, ("success", "reward")):
        stats = [summary(by_arm[a], key) for a in arms]
        ax.bar(arms, [s[0] for s in stats], yerr=[max(s[1], s[2]) for s in stats], capsize=3, color="tab:blue")
        ax.set_title(f"held-out {key} after training (± se)")
        ax.tick_params(axis="x", rotation=45)
    for arm in arms:  # training reward per step, mean over seeds
        curves = [r["train_reward"] for r in by_arm[arm]]
        n = min(len(c) for c in curves)
        axes[2].plot(range(1, n + 1), np.mean([c[:n] for c in curves], axis=0), label=arm)
    axes[2].set(title="training reward (mean over seeds)", xlabel="step")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    path = out / "ablation.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recipes/quickstart.yaml")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms: " + ", ".join(ARMS))
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--horizon", type=int, default=4)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--out", default="benchmarks/results/credit_ablation")
    ap.add_argument("--runs", default="runs/credit_ablation", help="where the training runs go")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override for every arm")
    args = ap.parse_args()

    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    arms, seeds = args.arms.split(","), [int(s) for s in args.seeds.split(",")]
    if unknown := [a for a in arms if a not in ARMS]:
        ap.error(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    for arm in arms:
        for seed in seeds:
            saved = out / "runs" / f"{arm}-seed{seed}.json"
            if saved.exists():
                print(f"{arm} seed {seed}: done already ({saved})", flush=True)
                continue
            run = run_arm(arm, seed, args)
            saved.write_text(json.dumps(run), encoding="utf-8")
            print(f"{arm} seed {seed}: success {np.mean(run['success']):.3f} reward {np.mean(run['reward']):.3f} "
                  f"({run['wall_s']:.0f} s)", flush=True)
    by_arm: dict[str, list[dict]] = {}  # every saved run of the requested arms, in arm order (another process's too)
    for arm in arms:
        for path in sorted((out / "runs").glob(f"{arm}-seed*.json")):
            by_arm.setdefault(arm, []).append(json.loads(path.read_text(encoding="utf-8")))
    (out / "results.json").write_text(json.dumps(by_arm, indent=1), encoding="utf-8")
    print(write_table(by_arm, args, out).read_text(encoding="utf-8"))
    print(f"plot: {write_plot(by_arm, out)}")


if __name__ == "__main__":
    main()
