"""vLLM (in-process, CPU) vs transformers `generate`, side by side in one process. Run it in .venv-vllm:

    .venv-vllm/bin/python benchmarks/vllm_rollouts.py [--dtype bfloat16] [--batch 32] [--episodes 16] [--horizon 16]

1. Single turn: generated tokens/s for `--batch` chat prompts (temperature 1, 48 new tokens).
2. Multi-turn: `longhorizon eval` on Execution-v0 at one horizon (full context, greedy), wall time
   including model load / engine start-up.
3. `sync_weights`: seconds to load the model's weights into the running engine (3 times).

Both backends use 1 torch thread (2 threads were 6-10x slower on a busy 2-core machine); the
transformers runs come first, because the engine's start-up binds the process's OpenMP threads.
Numbers on a shared machine are noisy: only the paired ratios mean much.
"""

from __future__ import annotations

import argparse
import time

import torch

from longhorizon.eval import EvalConfig, run
from longhorizon.models import SamplingParams, TransformersSampler, load_model
from longhorizon.models.vllm_sampler import VLLMSampler

TOPICS = ["dragons", "tea", "rivers", "clocks", "bread", "chess", "owls", "trains"]


def chat_prompts(tokenizer, n: int) -> list[list[int]]:
    questions = [f"Tell me something surprising about {TOPICS[i % len(TOPICS)]} (number {i})." for i in range(n)]
    return [list(tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                               tokenize=True, return_dict=True)["input_ids"]) for q in questions]


def tokens_per_s(sampler, prompts, params) -> tuple[float, int, float]:
    sampler.generate(prompts[:2], params)  # warm-up
    start = time.perf_counter()
    gens = sampler.generate(prompts, params)
    seconds = time.perf_counter() - start
    tokens = sum(len(g.token_ids) for g in gens)
    return tokens / seconds, tokens, seconds


def eval_seconds(sampler: str, args) -> tuple[float, dict]:
    cfg = EvalConfig(model="smollm2-135m", env_id="longhorizon/Execution-v0", horizons=[args.horizon],
                     episodes=args.episodes, context="full", temperature=0.0, dtype=args.dtype, sampler=sampler,
                     run_dir=f"runs/bench-vllm-{sampler}")
    start = time.perf_counter()
    metrics, _ = run(cfg)
    return time.perf_counter() - start, metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--horizon", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(1)
    params = SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)

    hf = load_model("smollm2-135m", dtype=args.dtype)
    prompts = chat_prompts(hf.tokenizer, args.batch)
    tf = tokens_per_s(TransformersSampler(hf.model, hf.tokenizer, params), prompts, params)
    tf_eval = eval_seconds("transformers", args)
    vl_eval = eval_seconds("vllm", args)
    engine = VLLMSampler.from_spec("smollm2-135m", params, dtype=args.dtype, tokenizer=hf.tokenizer)
    vl = tokens_per_s(engine, prompts, params)
    syncs = [engine.sync_weights(hf.model) for _ in range(3)]

    print(f"dtype={args.dtype} batch={args.batch} max_new_tokens={args.max_new_tokens} torch_threads=1")
    print(f"{'single turn':<14}{'tokens':>8}{'seconds':>9}{'tokens/s':>10}")
    for name, (rate, tokens, seconds) in (("transformers", tf), ("vllm", vl)):
        print(f"{name:<14}{tokens:>8}{seconds:>9.1f}{rate:>10.1f}")
    print(f"vllm / transformers tokens/s: {vl[0] / tf[0]:.2f}x")
    print(f"eval Execution-v0 horizon={args.horizon} episodes={args.episodes} full context, greedy (wall s, incl. start-up):")
    for name, (seconds, metrics) in (("transformers", tf_eval), ("vllm", vl_eval)):
        row = metrics["horizons"][0]
        print(f"  {name:<14}{seconds:>8.1f} s   success {row['success_rate']:.2f}")
    print(f"  speed-up: {tf_eval[0] / vl_eval[0]:.2f}x")
    print("sync_weights seconds: " + ", ".join(f"{s:.2f}" for s in syncs))


if __name__ == "__main__":
    main()
