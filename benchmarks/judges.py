"""Judges and learned rewards on the bundled model (issue 15): what each one buys here, measured.

    python benchmarks/judges.py [--model smollm2-135m] [--episodes 32] [--out benchmarks/results/judges]
        [--parts best_of,trlm,critic,rm_eval] [--reward-model RUN_DIR/model]

1. best_of: best-of-4 with the pointwise judge (the bundled model judging) against best-of-1, sampled at
   temperature 1 from `--policy` (default: the bundled model, which scores 0 here; a trained policy leaves
   the judge something to choose), on two envs: the quickstart's Execution task (horizons 1, 2) and Compose (multi, 2 problems).
2. trlm: best-of-4 reranked by the TRLM-Fo score (log P(observation | candidate)) against best-of-1, which is
   a random choice among the same samples, on the Execution task.
3. critic: the step critic's first-wrong-step accuracy on Execution episodes of a noisy oracle (p = 0.7,
   horizon 4, every step played; StepCritic-v0's held-out solutions): the critic's answer against the
   verifier's label, beside the majority baseline (always the most common label). `--critic MODEL` measures a
   trained critic (recipes/critic-sft.yaml, recipes/critic-rl.yaml) instead of the bundled model.
4. rm_eval: `longhorizon rm-eval`'s accuracy against context length for the bundled model as a judge, and
   for a reward model when `--reward-model` is given.
5. scorers (not run by default): best-of-4 on the Execution task with trained scorers against best-of-1: the
   step critic `--critic` and the reward model `--reward-model`.
Every number is printed and written to OUT/results.json, whichever way it comes out.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

EXECUTION = {"turn_complexity": 1, "dict_size": 2, "value_range": 1, "stop_on_error": True}


def eval_arm(model: str, env_id: str, knobs: dict, horizons: list[int], episodes: int, best_of: dict | None,
             out: Path, max_new_tokens: int) -> dict:
    """`model` samples at temperature 1; `best_of` (with its scorer's model) picks among its candidates."""
    from longhorizon.eval.config import load_eval_config
    from longhorizon.eval.evaluate import run

    sets = [f"model={model}", f"env_id={env_id}", f"env_kwargs={json.dumps(knobs)}", f"horizons={horizons}",
            f"episodes={episodes}", "temperature=1.0", f"max_new_tokens={max_new_tokens}", "seed=1000000",
            f"run_dir={out}", "dtype=bfloat16"] + ([f"best_of={json.dumps(best_of)}"] if best_of else [])
    start = time.perf_counter()
    metrics, _ = run(load_eval_config(None, sets))
    rows = {row["horizon"]: {"success": row["success_rate"], "success_se": row["success_se"],
                             "reward": row["mean_reward"], "reward_se": row["reward_se"]} for row in metrics["horizons"]}
    return {"rows": rows, "wall_s": time.perf_counter() - start}


def tag(args) -> str:
    """Run directories of another policy's arms sit apart from the bundled model's."""
    return "" if args.policy == args.model else "-" + (Path(args.policy).parent.name or Path(args.policy).name)


def best_of_part(args, out: Path) -> dict:
    envs = {"execution": ("longhorizon/Execution-v0", EXECUTION, [1, 2], 6),
            "compose": ("longhorizon/Compose-v0", {"mode": "multi"}, [2], 24)}
    results = {}
    for name, (env_id, knobs, horizons, tokens) in envs.items():
        judge = {"n": 4, "scorer": "judge", "model": args.model, "max_new_tokens": 128}
        for arm, best_of in (("best_of_1", None), ("judge_best_of_4", judge)):
            results[f"{name}/{arm}"] = eval_arm(args.policy, env_id, knobs, horizons, args.episodes, best_of,
                                                out / "runs" / (name + tag(args)) / arm, tokens)
            print(name, arm, results[f"{name}/{arm}"], flush=True)
    return results


def scorers_part(args, out: Path) -> dict:
    """Best-of-4 on the Execution task with trained scorers, against best-of-1: the step critic (`--critic`, e.g.
    one trained on StepCritic-v0) and the reward model (`--reward-model`), each when given."""
    arms = [("best_of_1", None)]
    if args.critic:
        arms.append(("critic_best_of_4", {"n": 4, "scorer": "critic", "model": args.critic, "max_new_tokens": 256}))
    if args.reward_model:
        arms.append(("reward_model_best_of_4", {"n": 4, "scorer": "reward_model", "model": args.reward_model}))
    results = {}
    for arm, best_of in arms:
        results[arm] = eval_arm(args.policy, "longhorizon/Execution-v0", EXECUTION, [1, 2], args.episodes, best_of,
                                out / "runs" / ("scorers" + tag(args)) / arm, 6)
        print("scorers", arm, results[arm], flush=True)
    return results


def trlm_part(args, out: Path) -> dict:
    results = {}
    for arm, best_of in (("best_of_1", None), ("trlm_best_of_4", {"n": 4, "scorer": "trlm", "model": args.model})):
        results[arm] = eval_arm(args.policy, "longhorizon/Execution-v0", EXECUTION, [1, 2], args.episodes, best_of,
                                out / "runs" / ("trlm" + tag(args)) / arm, 6)
        print("trlm", arm, results[arm], flush=True)
    return results


def critic_part(args, out: Path) -> dict:
    """The step critic on StepCritic-v0's held-out solutions (env seeds 1000000..): 4-turn Execution episodes of
    the noisy oracle, p = 0.7, every turn played; the critic reads them as `Judge.critique` sends them."""
    from longhorizon.envs.stepcritic.env import StepCriticKnobs, play, source_spec
    from longhorizon.feedback.critic import first_error, solution_steps
    from longhorizon.feedback.judges import Judge, episode_text
    from longhorizon.models import SamplingParams, TransformersSampler, load_model

    knobs = StepCriticKnobs(dict_size=EXECUTION["dict_size"], value_range=EXECUTION["value_range"], horizon=4)
    episodes = [play(source_spec(knobs, 1_000_000 + i), knobs.p_correct) for i in range(args.episodes)]
    labels = [first_error(t) for t in episodes]
    critic = args.critic or args.model
    lm = load_model(critic, "bfloat16")
    judge = Judge(TransformersSampler(lm.model, lm.tokenizer, SamplingParams(temperature=0.0, max_new_tokens=384),
                                      kv_cache_bytes=0), critic)
    start = time.perf_counter()
    critiques = judge.critique([(episode_text(t)[0], solution_steps(t)) for t in episodes])
    right = np.array([c.first_error == k for c, k in zip(critiques, labels)], dtype=float)
    majority = Counter(labels).most_common(1)[0]
    result = {"accuracy": float(right.mean()), "se": float(right.std(ddof=1) / np.sqrt(len(right))),
              "parsed": float(np.mean([c.first_error is not None for c in critiques])),
              "majority_label": majority[0], "majority_accuracy": majority[1] / len(labels),
              "labels": dict(Counter(labels)), "wall_s": time.perf_counter() - start}
    print("critic", critic, result, flush=True)
    return result


def rm_eval_part(args, out: Path) -> dict:
    from longhorizon.eval.rm_eval import build_items, plot_rm_eval, run_rm_eval, scorer_for, token_counter

    results = {}
    scorers = [("judge", args.model)] * ("judge" in args.rm_scorers.split(",")) + (
        [("reward_model", args.reward_model)] if args.reward_model else [])
    for kind, model in scorers:
        labeller, rank, tokenizer, window = scorer_for(kind, model, "bfloat16", max_new_tokens=128)
        count = token_counter(tokenizer)
        start = time.perf_counter()
        items = build_items("longhorizon/Execution-v0", {**EXECUTION, "stop_on_error": False, "horizon": 4096},
                            [int(x) for x in args.rm_lengths.split(",")], args.rm_items, 4, count)
        results[kind] = {"rows": run_rm_eval(items, labeller, rank, count, window), "wall_s": time.perf_counter() - start}
        plot_rm_eval(results[kind]["rows"], out / f"rm_eval_{kind}.png", f"rm-eval, {kind}: {Path(model).parent.name or model}", 4)
        print("rm_eval", kind, results[kind], flush=True)
    return results


PARTS = {"best_of": best_of_part, "trlm": trlm_part, "critic": critic_part, "rm_eval": rm_eval_part,
         "scorers": scorers_part}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--rm-items", type=int, default=8, help="rm_eval items per context length")
    ap.add_argument("--rm-lengths", default="1000,2000,4000,8000,16000,32000",
                    help="rm_eval context lengths in tokens (a scorer sees the last window's worth of a longer one)")
    ap.add_argument("--reward-model", default=None, help="a reward model directory for rm_eval")
    ap.add_argument("--rm-scorers", default="judge", help="rm_eval: judge (the --model judge, slow at long contexts), "
                    "or none (only --reward-model)")
    ap.add_argument("--policy", default=None, help="best_of, trlm, scorers: the policy whose samples are chosen among (default: "
                    "--model); its results are keyed PART[policy=NAME]")
    ap.add_argument("--critic", default=None, help="critic: the step critic (default: --model), e.g. a model trained "
                    "on StepCritic-v0 (recipes/critic-sft.yaml); its result is keyed critic[critic=NAME]")
    ap.add_argument("--parts", default="best_of,trlm,critic,rm_eval", help="any of " + ",".join(PARTS))
    ap.add_argument("--out", default="benchmarks/results/judges")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    suffix = f"[policy={Path(args.policy).parent.name or args.policy}]" if args.policy else ""
    args.policy = args.policy or args.model
    for part in args.parts.split(","):
        key = part + (suffix if part in ("best_of", "trlm", "scorers") else "")
        if part == "critic" and args.critic:
            key = f"critic[critic={Path(args.critic).parent.name or args.critic}]"
        results[key] = PARTS[part](args, out)
        path.write_text(json.dumps(results, indent=1, default=str))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
