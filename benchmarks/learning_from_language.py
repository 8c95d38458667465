"""Learning from demonstrations and language on the bundled model, each arm for the same wall-clock budget.

    python benchmarks/learning_from_language.py [--seconds 480] [--arms grpo,sft_grpo,critique_grpo,try_again]
        [--eval-episodes 32] [--out benchmarks/results/learning_from_language] [--model smollm2-135m]

The hard task (issue 14 (a), (b)): Execution-v0 with a 10-word dictionary and values in [-9, 9], trained at
horizon 2, stop at the first error (reward: 1 per turn answered right). Untrained, the bundled model scores 0.
- grpo: GRPO (8 episodes of 4 tasks per step, lr 2e-5) for the whole budget;
- sft_grpo: SFT on 256 oracle demonstrations (env seeds 0..255) for `--sft-share` of the budget, then GRPO
  from the SFT model for the rest (the demonstrations are written before the clock starts);
- critique_grpo: Critique-GRPO (7 initial episodes + 1 refinement per task, `simple_gt` critiques: the
  oracle's answers, f(p) = p / (p + 0.1) on the refinement) for the whole budget.
Each is evaluated greedily on the same held-out seeds (1000000 on) at horizons 1, 2 and 4: success and reward
± standard error per horizon, and H_0.5 (the horizon where success crosses 0.5, with its bootstrap band) of
the untrained model and of each arm's last checkpoint.
(c) try_again: Try-Again training (UFO) on recipes/try-again.yaml's task (the quickstart's, one turn per
attempt, up to 3 attempts) for the budget; Succ@1 against Succ@3 on 64 held-out tasks before and after.

A run stops at the first step logged past its budget (its previous step is checkpointed; at least 2 steps).
Each arm's numbers go to OUT/runs/ARM.json as soon as it finishes (a rerun skips finished arms), then
OUT/table.md and OUT/results.json hold them all. Wall-clock budgets on a shared 2-core machine: arms that ran
while other jobs did got less CPU; the table gives each arm's steps and CPU seconds next to its wall time.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

HARD = {"horizon": 2, "turn_complexity": 1, "dict_size": 10, "value_range": 9, "stop_on_error": True}
HORIZONS = [1, 2, 4]
HELD_OUT_SEED = 1000000
RECIPES = Path(__file__).resolve().parent.parent / "recipes"


class Budget(Exception):
    """The arm's wall time is spent."""


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def train_within(cfg, seconds: float, min_steps: int = 2) -> tuple[int, float, float]:
    """Train `cfg` until the first step logged past `seconds` (at least `min_steps`); the last checkpointed step,
    the wall time and the CPU time to it."""
    from longhorizon.train import train
    from longhorizon.train.checkpoint import latest_checkpoint

    start, cpu_start = time.perf_counter(), cpu_seconds()
    marks: dict[int, tuple[float, float]] = {}

    def stop_when_spent(step: int, metrics: dict) -> None:
        marks[step] = (time.perf_counter() - start, cpu_seconds() - cpu_start)
        if marks[step][0] > seconds and step > min_steps:  # step - 1 is checkpointed; this step's never is
            raise Budget

    try:
        train(cfg, on_log=stop_when_spent)
    except Budget:
        pass
    checkpoint = latest_checkpoint(Path(cfg.run_dir))
    if checkpoint is None:
        raise SystemExit(f"{cfg.run_dir}: no step was checkpointed within {seconds:.0f} s")
    done = int(checkpoint.name.split("_")[-1])
    return done, *marks[done]


def export_model(cfg, step: int) -> Path:
    """The weights of checkpoint `step` as a model directory (resuming with steps=step runs no step)."""
    from longhorizon.train import train

    final = cfg.model_copy(update={"steps": step, "save_final_model": True,
                                   "eval": cfg.eval.model_copy(update={"episodes": 0})})
    train(final, resume=True)
    return Path(cfg.run_dir) / "model"


def horizon_eval(model: str, out: Path, episodes: int, max_new_tokens: int = 8) -> dict:
    """Greedy held-out success and reward per horizon, and H_0.5, on the hard task."""
    from longhorizon.eval.config import load_eval_config
    from longhorizon.eval.evaluate import run

    knobs = {k: v for k, v in HARD.items() if k != "horizon"}
    sets = [f"model={model}", "env_id=longhorizon/Execution-v0", f"env_kwargs={json.dumps(knobs)}",
            f"horizons={HORIZONS}", f"episodes={episodes}", "temperature=0.0", f"max_new_tokens={max_new_tokens}",
            f"seed={HELD_OUT_SEED}", f"run_dir={out}", "dtype=bfloat16"]
    shutil.rmtree(out, ignore_errors=True)
    metrics, _ = run(load_eval_config(None, sets))
    return {"horizons": {str(row["horizon"]): {"success": row["success_rate"], "success_se": row["success_se"],
                                          "reward": row["mean_reward"], "reward_se": row["reward_se"]}
                         for row in metrics["horizons"]},
            "h50": metrics["horizon_length"], "h50_ci": metrics.get("horizon_length_ci")}


def hard_sets(args, run_dir: Path, model: str, algorithm: str) -> list[str]:
    return [f"model={model}", "autocast_bf16=true", "torch_threads=1", "env_id=longhorizon/Execution-v0",
            f"env_kwargs={json.dumps(HARD)}", "temperature=1.0", "max_new_tokens=8", "steps=100000",
            "tasks_per_step=4", "micro_batch_size=8", "checkpoint_every=1", "keep_checkpoints=1",
            "save_final_model=false", "save_trajectories=false", "eval.episodes=0", f"run_dir={run_dir}",
            f"algorithm.name={algorithm}", "algorithm.group_size=8", "optim.lr=2.0e-5", "optim.max_grad_norm=1.0",
            f"seed={args.seed}"]


def rl_arm(args, name: str, algorithm: str, model: str, seconds: float, extra: list[str] = ()) -> dict:
    from longhorizon.train import load_config

    run_dir = Path(args.runs) / name
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = load_config(None, [*hard_sets(args, run_dir, model, algorithm), *extra])
    steps, wall, cpu = train_within(cfg, seconds)
    return {"steps": steps, "wall_s": wall, "cpu_s": cpu, "run_dir": str(run_dir),
            "model": str(export_model(cfg, steps)), "train": train_curve(run_dir, steps)}


def train_curve(run_dir: Path, steps: int) -> list[dict]:
    from longhorizon.train.metrics import read_records

    keys = ("charts/reward_mean", "charts/success_rate", "critique/initial_success", "critique/selected_success",
            "losses/policy_loss", "losses/shaping_loss", "losses/nll")
    return [{"step": r["step"], **{k: r[k] for k in keys if k in r}} for r in read_records(run_dir)
            if r["step"] <= steps and any(k in r for k in keys)]


def sft_grpo_arm(args) -> dict:
    from longhorizon.rollout.demos import oracle_demonstrations
    from longhorizon.train import load_config
    from longhorizon.train.session import write_trajectories

    demos = Path(args.runs) / "demos-hard.jsonl"
    write_trajectories(demos, oracle_demonstrations("longhorizon/Execution-v0", 256, HARD, 0))
    run_dir = Path(args.runs) / "sft"
    shutil.rmtree(run_dir, ignore_errors=True)
    sft_sets = [f"demonstrations={demos}", f"model={args.model}", f"run_dir={run_dir}", "steps=100000",
                "save_final_model=false", "eval.episodes=0", "checkpoint_every=1", f"seed={args.seed}"]
    cfg = load_config(RECIPES / "sft-execution.yaml", sft_sets)
    sft_seconds = args.seconds * args.sft_share
    sft_steps, sft_wall, sft_cpu = train_within(cfg, sft_seconds)
    sft_model = export_model(cfg, sft_steps)
    grpo = rl_arm(args, "sft_grpo", "grpo", str(sft_model), args.seconds - sft_wall)
    return {**grpo, "sft_steps": sft_steps, "sft_wall_s": sft_wall, "sft_cpu_s": sft_cpu,
            "wall_s": sft_wall + grpo["wall_s"], "cpu_s": sft_cpu + grpo["cpu_s"],
            "sft_eval": horizon_eval(str(sft_model), Path(args.runs) / "eval-sft", args.eval_episodes)}


def try_again_arm(args) -> dict:
    from longhorizon.train import load_config

    run_dir = Path(args.runs) / "try_again"
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = load_config(RECIPES / "try-again.yaml", [f"model={args.model}", f"run_dir={run_dir}", "steps=100000",
                                                   "checkpoint_every=1", "save_final_model=false", "eval.episodes=0",
                                                   f"seed={args.seed}"])
    steps, wall, cpu = train_within(cfg, args.seconds)
    return {"steps": steps, "wall_s": wall, "cpu_s": cpu, "before": try_again_eval(cfg, args.model),
            "after": try_again_eval(cfg, str(export_model(cfg, steps))), "train": train_curve(run_dir, steps)}


def try_again_eval(cfg, model: str, episodes: int = 64) -> dict:
    """UFO's measure through the recipe's try_again wrapper, greedy, on held-out tasks: Succ@1 (solved at the
    first attempt) and Succ@T (solved within the T attempts), and the reward."""
    import numpy as np

    from longhorizon.eval.config import load_eval_config
    from longhorizon.eval.evaluate import make_policy
    from longhorizon.eval.sweep import run_horizon_eval

    attempts = cfg.wrappers[0]["max_attempts"]
    ecfg = load_eval_config(None, [f"model={model}", f"env_id={cfg.env_id}", f"env_kwargs={json.dumps(cfg.env_kwargs)}",
                                   f"wrappers={json.dumps(cfg.wrappers)}", "horizons=null", "horizon_knob=null",
                                   f"episodes={episodes}", "temperature=0.0", f"max_new_tokens={cfg.max_new_tokens}",
                                   f"seed={HELD_OUT_SEED}", "dtype=bfloat16"])
    trajectories, _ = run_horizon_eval(ecfg, make_policy(ecfg))
    runs = [(bool(m.get("solved")), m.get("attempts", attempts)) for t in trajectories
            for m in [t.metadata.get("metrics") or {}]]
    rewards = np.array([t.total_reward for t in trajectories])
    return {"succ@1": float(np.mean([s and a <= 1 for s, a in runs])),
            f"succ@{attempts}": float(np.mean([s for s, _ in runs])), "attempts": attempts,
            "reward": float(rewards.mean()), "reward_se": float(rewards.std(ddof=1) / np.sqrt(len(rewards)))}


def h50_text(h: dict) -> str:
    """H_0.5 as eval/horizon.py gives it: a value, or censored below the first horizon or above the last."""
    if h["censored"] == "below":
        return f"< {HORIZONS[0]}"
    if h["censored"] == "above":
        return f"> {HORIZONS[-1]}"
    return f"{h['value']:.2f}"


def fmt(x: float, se: float) -> str:
    return f"{x:.3f} ± {se:.3f}"


def table(results: dict, args) -> str:
    lines = [f"Bundled model ({args.model}), {args.seconds:.0f} s of wall time per arm, seed {args.seed}; greedy "
             f"held-out eval, {args.eval_episodes} episodes per horizon (seeds {HELD_OUT_SEED} on).", "",
             "Hard task: Execution-v0, 10-word dictionary, values in [-9, 9], trained at horizon 2.", "",
             "| arm | steps | wall s | CPU s | " + " | ".join(f"success H={h}" for h in HORIZONS) + " | "
             + " | ".join(f"reward H={h}" for h in HORIZONS) + " | H_0.5 |",
             "|---|---|---|---|" + "---|" * (2 * len(HORIZONS) + 1)]

    def row(name: str, arm: dict | None, ev: dict) -> str:
        hs = {int(h): v for h, v in ev["horizons"].items()}
        cells = [fmt(hs[h]["success"], hs[h]["success_se"]) for h in HORIZONS]
        cells += [fmt(hs[h]["reward"], hs[h]["reward_se"]) for h in HORIZONS]
        h50 = h50_text(ev["h50"])
        if ev.get("h50_ci") and ev["h50_ci"]["censored_fraction"] < 1:
            h50 += f" (95% {ev['h50_ci']['low']:.2f}–{ev['h50_ci']['high']:.2f})"
        meta = ["-", "-", "-"] if arm is None else [str(arm["steps"]), f"{arm['wall_s']:.0f}", f"{arm['cpu_s']:.0f}"]
        return f"| {name} | " + " | ".join(meta + cells) + f" | {h50} |"

    if "untrained" in results:
        lines.append(row("untrained", None, results["untrained"]))
    for name in ("grpo", "sft_grpo", "critique_grpo"):
        if name in results:
            if name == "sft_grpo":
                lines.append(row("sft (its first part)", {"steps": results[name]["sft_steps"], "wall_s":
                                 results[name]["sft_wall_s"], "cpu_s": results[name]["sft_cpu_s"]},
                                 results[name]["sft_eval"]))
            lines.append(row(name, results[name], results[name]["eval"]))
    if "try_again" in results:
        r = results["try_again"]
        t = r["before"]["attempts"]
        lines += ["", f"Try-Again training (recipes/try-again.yaml: the quickstart's task, one turn per attempt, {t} "
                  f"attempts), {r['steps']} steps in {r['wall_s']:.0f} s; 64 held-out tasks, greedy:", "",
                  f"| | Succ@1 | Succ@{t} | reward |", "|---|---|---|---|"]
        for when in ("before", "after"):
            e = r[when]
            lines.append(f"| {when} | {e['succ@1']:.3f} | {e[f'succ@{t}']:.3f} | {fmt(e['reward'], e['reward_se'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--seconds", type=float, default=480.0)
    ap.add_argument("--sft-share", type=float, default=0.5, help="sft_grpo: the share of the budget spent on SFT")
    ap.add_argument("--arms", default="grpo,sft_grpo,critique_grpo,try_again")
    ap.add_argument("--eval-episodes", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/learning_from_language")
    ap.add_argument("--runs", default="runs/bench-language", help="training runs (large: checkpoints)")
    args = ap.parse_args()
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    arms = args.arms.split(",")
    if unknown := set(arms) - {"grpo", "sft_grpo", "critique_grpo", "try_again"}:
        ap.error(f"unknown arms: {', '.join(sorted(unknown))}")

    def saved(name: str, make) -> dict:
        path = out / "runs" / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
        start = time.perf_counter()
        result = make()
        result["total_wall_s"] = time.perf_counter() - start
        path.write_text(json.dumps(result, indent=2, default=str))
        print(name, json.dumps({k: v for k, v in result.items() if k != "train"}, default=str), flush=True)
        return result

    results = {}
    if {"grpo", "sft_grpo", "critique_grpo"} & set(arms):
        results["untrained"] = saved("untrained", lambda: horizon_eval(args.model, Path(args.runs) / "eval-untrained",
                                                                       args.eval_episodes))
    for name in arms:
        if name == "grpo":
            make = lambda: rl_arm(args, "grpo", "grpo", args.model, args.seconds)  # noqa: E731
        elif name == "critique_grpo":
            make = lambda: rl_arm(args, "critique_grpo", "critique_grpo", args.model, args.seconds,  # noqa: E731
                                  ["algorithm.critique.source=simple_gt"])
        elif name == "sft_grpo":
            make = lambda: sft_grpo_arm(args)  # noqa: E731
        else:
            make = lambda: try_again_arm(args)  # noqa: E731
        results[name] = saved(name, make)
        if name != "try_again" and "eval" not in results[name]:
            results[name]["eval"] = horizon_eval(results[name]["model"], Path(args.runs) / f"eval-{name}",
                                                 args.eval_episodes)
            (out / "runs" / f"{name}.json").write_text(json.dumps(results[name], indent=2, default=str))
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    text = table(results, args)
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
