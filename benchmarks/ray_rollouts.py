"""One training step's rollout: in process (one batch), in process unit by unit, and on Ray workers.

    python benchmarks/ray_rollouts.py [--model tiny-random] [--workers 2] [--tasks 8] [--group 4]
        [--horizons 2,4,8,16] [--max-new-tokens 8] [--kill]

Every run samples the same episodes (Execution-v0, one task per group, the horizons cycled over the
tasks so long and short episodes mix) with temperature 1. It prints the wall time of each way, the
sampled tokens per second, and checks that the workers return exactly the in-process units'
trajectories. `--kill` SIGKILLs worker 0 once it has run a tick and reports the step's time with
the re-run. Workers start (Ray, model load) before the clock starts: the time is the step's alone.
Each process uses 1 torch thread. On a shared 2-core machine the workers compete with each other
and with the driver; read the numbers as what the machinery costs, not as a speed-up.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time

import torch

from longhorizon.context import make_strategy
from longhorizon.models import SamplingParams, load_model, make_sampler
from longhorizon.rollout import EpisodeSpec, ModelPolicy, run_episodes
from longhorizon.rollout.ray_workers import RolloutPool, WorkerSpec, make_units, run_unit
from longhorizon.train.config import RolloutSettings


def step_specs(tasks: int, group: int, horizons: list[int]) -> list[EpisodeSpec]:
    return [EpisodeSpec("longhorizon/Execution-v0", seed=k, env_kwargs={"horizon": horizons[k % len(horizons)]},
                        group_id=k) for k in range(tasks) for _ in range(group)]


def tokens(trajectories) -> int:
    return sum(len(turn.action_ids) for t in trajectories for turn in t.turns)


def timed(label: str, fn):
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    print(f"{label:<34} {seconds:8.1f} s  {tokens(out) / seconds:8.1f} sampled tokens/s", flush=True)
    return out


def by_units(specs, seed, sampler, strategy) -> list:
    """What the workers do, in this process: unit after unit, trajectories put back in spec order."""
    out = [None] * len(specs)
    for unit in make_units(specs, seed):
        for position, trajectory in zip(unit.positions, run_unit(unit, sampler, strategy)):
            out[position] = trajectory
    return out


def kill_after_first_tick(pool: RolloutPool) -> None:
    import ray

    victim = pool.actors[0]
    start = ray.get(victim.progress.remote())
    while ray.get(victim.progress.remote())["ticks"] == start["ticks"]:
        time.sleep(0.01)
    os.kill(start["pid"], signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--horizons", default="2,4,8,16")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--kill", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    params = SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    specs = step_specs(args.tasks, args.group, [int(h) for h in args.horizons.split(",")])
    loaded = load_model(args.model)
    sampler = make_sampler("transformers", args.model, params, loaded=loaded)
    strategy = make_strategy("full")
    print(f"{len(specs)} episodes, {args.model}, horizons {args.horizons}, {args.workers} workers", flush=True)
    timed("in process, one batch", lambda: run_episodes(specs, ModelPolicy(sampler, strategy)))
    want = timed("in process, unit by unit", lambda: by_units(specs, params.seed, sampler, strategy))
    pool = RolloutPool(WorkerSpec(model=args.model, params=params), RolloutSettings(workers=args.workers))
    start = time.perf_counter()
    pool.sync(loaded.model)
    print(f"{'workers up + first weight sync':<34} {time.perf_counter() - start:8.1f} s", flush=True)
    start = time.perf_counter()
    pool.sync(loaded.model)
    print(f"{'weight sync':<34} {time.perf_counter() - start:8.1f} s", flush=True)
    got = timed(f"{args.workers} Ray workers", lambda: pool.collect(specs))
    same = all([t.action_ids for t in a.turns] == [t.action_ids for t in b.turns] for a, b in zip(got, want))
    print(f"workers == in-process units: {same}", flush=True)
    if args.kill:
        killer = threading.Thread(target=kill_after_first_tick, args=(pool,))
        killer.start()
        timed(f"{args.workers} Ray workers, one killed", lambda: pool.collect(specs))
        killer.join()
        print(f"faults: {pool.metrics()}", flush=True)
    pool.close()


if __name__ == "__main__":
    main()
