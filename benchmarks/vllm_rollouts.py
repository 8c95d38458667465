"""vLLM (in-process, CPU) vs transformers `generate` on the bundled model. Run it in .venv-vllm:

    .venv-vllm/bin/python benchmarks/vllm_rollouts.py [--dtype bfloat16] [--batch 32] [--episodes 16] [--horizon 16]
        [--parts tokens,sync,eval-vllm,eval-transformers]

- tokens: generated tokens/s for `--batch` chat prompts (temperature 1, 48 new tokens), both backends.
- sync: seconds of `sync_weights` (the model's weights into the running engine), 3 times.
- eval-vllm / eval-transformers: `longhorizon eval` on Execution-v0 at one horizon (full context,
  greedy), wall time including model load / engine start-up.

Each part prints as it ends. Every backend uses 1 torch thread (2 threads were 6-10x slower on
a busy 2-core machine). Numbers on a shared machine are noisy: compare parts of one run.
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
    ap.add_argument("--parts", default="tokens,eval-vllm,eval-transformers,sync",
                    help="comma-separated: tokens, eval-vllm, eval-transformers, sync (printed as each ends)")
    args = ap.parse_args()
    parts = args.parts.split(",")
    torch.set_num_threads(1)
    params = SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    print(f"dtype={args.dtype} batch={args.batch} max_new_tokens={args.max_new_tokens} torch_threads=1", flush=True)
    hf = load_model("smollm2-135m", dtype=args.dtype)
    engine = None
    if "tokens" in parts:
        prompts = chat_prompts(hf.tokenizer, args.batch)
        tf = tokens_per_s(TransformersSampler(hf.model, hf.tokenizer, params), prompts, params)
        engine = VLLMSampler.from_spec("smollm2-135m", params, dtype=args.dtype, tokenizer=hf.tokenizer)
        vl = tokens_per_s(engine, prompts, params)
        for name, (rate, tokens, seconds) in (("transformers", tf), ("vllm", vl)):
            print(f"single turn {name:<13} {tokens:>6} tokens {seconds:>7.1f} s {rate:>8.1f} tokens/s", flush=True)
        print(f"single turn vllm / transformers tokens/s: {vl[0] / tf[0]:.2f}x", flush=True)
    if "sync" in parts:
        engine = engine or VLLMSampler.from_spec("smollm2-135m", params, dtype=args.dtype, tokenizer=hf.tokenizer)
        syncs = [engine.sync_weights(hf.model) for _ in range(3)]
        print("sync_weights seconds: " + ", ".join(f"{s:.2f}" for s in syncs), flush=True)
    for sampler in ("vllm", "transformers"):
        if f"eval-{sampler}" in parts:
            seconds, metrics = eval_seconds(sampler, args)
            print(f"eval Execution-v0 horizon={args.horizon} episodes={args.episodes} full context greedy, "
                  f"{sampler}: {seconds:.1f} s wall incl. start-up, success {metrics['horizons'][0]['success_rate']:.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
