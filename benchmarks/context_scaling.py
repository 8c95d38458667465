"""Prompt size, time and memory per turn of every context strategy as the horizon grows.

    python benchmarks/context_scaling.py [--model tiny-random|smollm2-135m] [--episodes 4] [--horizons 8,16,32,64]
        [--kv-reuse both|on|off]

Runs `longhorizon/Execution-v0` (dictionary of 100 words, one key per turn)
at each horizon H with each strategy, greedy, `--episodes` episodes batched,
and prints per (strategy, H): the mean prompt tokens per turn (a chunked
answer counts its longest chunk prompt), the time per episode-turn (rollout
time / (episodes x H)) as wall and CPU time, and peak RSS during the rollout
(reset before each cell through /proc/self/clear_refs, so each cell's peak is
its own). Then the ratio of the per-turn cost at the largest horizon to the
smallest: a bounded strategy stays within 1.2x, `full` grows with H.

Torch runs on `--threads` threads (default 1) and each cell is timed
`--repeats` times (the fastest is kept), so that CPU time is a stable measure
on a shared machine; wall time is printed as well.

The memory strategy's store is first filled by one rollout at the smallest
horizon, so its measured prompts carry lessons.

`--kv-reuse both` (the default) runs every strategy twice, with the sampler's
KV reuse (`models/kv_cache.py`: only what a prompt adds to a cached prefix
is computed) and without it (every prompt prefilled whole), side by side,
and prints the prompt tokens actually computed per turn.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from longhorizon.context import make_strategy
from longhorizon.eval.sweep import turn_prompt_tokens
from longhorizon.models import SamplingParams, TransformersSampler, load_model
from longhorizon.rollout import EpisodeSpec, ModelPolicy, run_episodes

STRATEGIES: dict[str, tuple[str, dict[str, Any]]] = {
    "full": ("full", {}),
    "window k=4": ("window", {"k": 4}),
    "window k=4 + reminder/8": ("window", {"k": 4, "reminder_every": 8}),
    "markovian turns m=32": ("markovian", {"mode": "turns", "carryover": 32}),
    "markovian chunked C=16 m=8": ("markovian", {"mode": "chunked", "chunk": 16, "carryover": 8, "head": 2,
                                                 "max_chunks": 3}),
    "workspace": ("workspace", {}),
    "memory (window k=4)": ("memory", {"base": "window", "base_options": {"k": 4}, "top_k": 3}),
}
BOUND = 1.2


def rss_mib(field: str) -> float:
    """VmRSS or VmHWM of this process, MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def specs(horizon: int, episodes: int) -> list[EpisodeSpec]:
    return [EpisodeSpec("longhorizon/Execution-v0", seed=i, env_kwargs={"horizon": horizon}) for i in range(episodes)]


def measure(policy: Any, horizon: int, episodes: int) -> dict[str, float]:
    """One batched rollout at this horizon: mean/max prompt tokens per turn, ms per turn, peak RSS."""
    reset_peak()
    cache = policy.sampler.kv_cache
    computed_before = cache.stats["computed_tokens"] if cache else 0
    start_rss, start, start_cpu = rss_mib("VmRSS"), time.perf_counter(), time.process_time()
    trajectories = run_episodes(specs(horizon, episodes), policy)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    lengths = [turn_prompt_tokens(t) for traj in trajectories for t in traj.turns]
    computed = cache.stats["computed_tokens"] - computed_before if cache else sum(
        prompt_tokens_run(t) for traj in trajectories for t in traj.turns)
    return {"prompt_mean": sum(lengths) / len(lengths), "prompt_max": max(lengths),
            "computed_mean": computed / len(lengths),
            "wall_ms": 1000 * wall / len(lengths), "cpu_ms": 1000 * cpu / len(lengths),
            "peak_rss": rss_mib("VmHWM"), "peak_growth": rss_mib("VmHWM") - start_rss}


def fastest(policy: Any, horizon: int, episodes: int, repeats: int) -> dict[str, float]:
    """The repeat with the least CPU time (greedy decoding: every repeat samples the same episodes)."""
    runs = [measure(policy, horizon, episodes) for _ in range(repeats)]
    best = min(runs, key=lambda r: r["cpu_ms"])
    return best | {"peak_rss": max(r["peak_rss"] for r in runs), "peak_growth": max(r["peak_growth"] for r in runs)}


def prompt_tokens_run(turn: Any) -> int:
    """Prompt tokens prefilled in one turn without reuse: every model call's whole prompt (one per chunk)."""
    return sum(turn.info.get("policy", {}).get("chunk_prompt_tokens") or [len(turn.prompt_ids)])


def run_strategy(label: str, kv: bool, loaded: Any, args: argparse.Namespace,
                 store_dir: Path) -> dict[int, dict[str, float]]:
    name, options = STRATEGIES[label]
    strategy = make_strategy(name, **options)
    strategy.attach(store_dir)
    params = SamplingParams(temperature=0.0, max_new_tokens=args.max_new_tokens)
    sampler = TransformersSampler(loaded.model, loaded.tokenizer, params, kv_cache_bytes=(1 << 31) if kv else 0)
    policy = ModelPolicy(sampler, strategy)
    run_episodes(specs(min(args.horizons), args.episodes), policy)  # warm-up (and fills the memory store)
    return {h: fastest(policy, h, args.episodes, args.repeats) for h in args.horizons}


def print_table(results: dict[str, dict[int, dict[str, float]]], horizons: list[int]) -> None:
    print(f"{'strategy':<36}{'H':>4}{'prompt tok/turn':>17}{'max':>7}{'computed/turn':>15}{'CPU ms/turn':>13}"
          f"{'wall ms/turn':>14}{'peak RSS MiB':>14}{'(+MiB)':>8}")
    for label, rows in results.items():
        for h in horizons:
            r = rows[h]
            print(f"{label:<36}{h:>4}{r['prompt_mean']:>17.1f}{r['prompt_max']:>7.0f}{r['computed_mean']:>15.1f}"
                  f"{r['cpu_ms']:>13.1f}{r['wall_ms']:>14.1f}{r['peak_rss']:>14.0f}{r['peak_growth']:>8.0f}")
    lo, hi = min(horizons), max(horizons)
    print(f"\nper-turn cost at H={hi} / H={lo} (bounded: <= {BOUND}x)")
    print(f"{'strategy':<36}{'prompt tokens':>14}{'computed':>10}{'CPU time':>10}{'wall time':>11}  verdict")
    for label, rows in results.items():
        tok, comp, cpu, wall = (rows[hi][k] / rows[lo][k] for k in ("prompt_mean", "computed_mean", "cpu_ms", "wall_ms"))
        verdict = "bounded" if min(tok, comp) <= BOUND and cpu <= BOUND else "grows"
        print(f"{label:<36}{tok:>13.2f}x{comp:>9.2f}x{cpu:>9.2f}x{wall:>10.2f}x  {verdict}")
    pairs = [label[: -len(" [kv]")] for label in results if label.endswith(" [kv]") and
             label[: -len(" [kv]")] + " [no kv]" in results]
    if pairs:
        print(f"\nCPU time per turn, KV reuse vs every prompt prefilled (same greedy episodes)")
        print(f"{'strategy':<36}" + "".join(f"{'H=' + str(h):>10}" for h in horizons))
        for label in pairs:
            on, off = results[label + " [kv]"], results[label + " [no kv]"]
            print(f"{label:<36}" + "".join(f"{off[h]['cpu_ms'] / on[h]['cpu_ms']:>9.2f}x" for h in horizons))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny-random", help="tiny-random (fast) or smollm2-135m")
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--horizons", default="8,16,32,64")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--repeats", type=int, default=2, help="timed rollouts per cell (the fastest is kept)")
    ap.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated labels (see STRATEGIES)")
    ap.add_argument("--kv-reuse", choices=("both", "on", "off"), default="both",
                    help="run each strategy with the sampler's KV reuse, without it, or both side by side")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    args.horizons = sorted(int(h) for h in args.horizons.split(","))
    labels = [s.strip() for s in args.strategies.split(",") if s.strip()]
    print(f"model={args.model} episodes={args.episodes} max_new_tokens={args.max_new_tokens} threads={args.threads} "
          f"repeats={args.repeats} env=Execution-v0 (dict_size=100, K=1)\n")
    torch.set_num_threads(args.threads)
    loaded = load_model(args.model, dtype=args.dtype)
    run_episodes(specs(min(args.horizons), args.episodes), ModelPolicy(TransformersSampler(  # global warm-up
        loaded.model, loaded.tokenizer, SamplingParams(temperature=0.0, max_new_tokens=args.max_new_tokens)),
        make_strategy("full")))
    modes = {"both": (True, False), "on": (True,), "off": (False,)}[args.kv_reuse]
    with tempfile.TemporaryDirectory() as tmp:
        results = {f"{label} [{'kv' if kv else 'no kv'}]": run_strategy(label, kv, loaded, args, Path(tmp) / f"s{i}{kv}")
                   for i, label in enumerate(labels) for kv in modes}
    print_table(results, args.horizons)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2))


if __name__ == "__main__":
    main()
