"""Batched rollouts vs one episode at a time: generated tokens per second on the same episodes.

    python benchmarks/rollout_throughput.py [--model smollm2-135m] [--episodes 8] [--horizon 4] [--dtype bfloat16]

Both runs use the same model, env seeds and greedy decoding, so they generate
the same episodes; the batched runner makes one generate call per tick for all
live episodes, the baseline one call per episode per turn.
"""

from __future__ import annotations

import argparse
import time

from longhorizon.context import make_strategy
from longhorizon.models import SamplingParams
from longhorizon.rollout import EpisodeSpec, model_policy, run_episodes


def generated_tokens(trajectories) -> int:
    return sum(len(turn.action_ids) for t in trajectories for turn in t.turns)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--horizon", type=int, default=4)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    args = ap.parse_args()

    params = SamplingParams(temperature=0.0, max_new_tokens=args.max_new_tokens)
    policy = model_policy(args.model, make_strategy("full"), params, dtype=args.dtype)
    specs = [EpisodeSpec("longhorizon/Execution-v0", seed=i,
                         env_kwargs={"horizon": args.horizon, "dict_size": 10, "value_range": 9})
             for i in range(args.episodes)]
    run_episodes(specs[:1], policy)  # warm-up
    batched, t_batched = timed(lambda: run_episodes(specs, policy))
    single, t_single = timed(lambda: [t for s in specs for t in run_episodes([s], policy)])
    n_b, n_s = generated_tokens(batched), generated_tokens(single)
    print(f"model={args.model} dtype={args.dtype} episodes={args.episodes} horizon={args.horizon}")
    print(f"{'mode':<22}{'tokens':>8}{'seconds':>10}{'tokens/s':>10}")
    print(f"{'one episode at a time':<22}{n_s:>8}{t_single:>10.1f}{n_s / t_single:>10.1f}")
    print(f"{'batched runner':<22}{n_b:>8}{t_batched:>10.1f}{n_b / t_batched:>10.1f}")
    print(f"speed-up (tokens/s ratio): {(n_b / t_batched) / (n_s / t_single):.2f}x")
    same = [[tu.action_ids for tu in t.turns] for t in batched] == [[tu.action_ids for tu in t.turns] for t in single]
    print(f"identical episodes in both modes: {same}")


if __name__ == "__main__":
    main()
