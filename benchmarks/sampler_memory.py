"""Peak memory of one generate call: log-probs gathered step by step vs every step's scores stacked.

    python benchmarks/sampler_memory.py [--model smollm2-135m] [--batch 16] [--tokens 96]

Each variant runs in its own process (peak RSS only rises, so one process cannot
measure two). The model is loaded and warmed up with a 2-token call, then the
peak RSS is read before and after the measured call; the figure is the rise.
"stacking" is the former `TransformersSampler`: generate returns every step's
(B, V) scores and they are log-softmaxed and stacked to (B, T, V). No row ends
early (EOS is set to an id the model never emits), so every row runs T tokens.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch

from longhorizon.models import SamplingParams, TransformersSampler, load_model
from longhorizon.models.sampler import StopOnText, left_pad


class StackingSampler(TransformersSampler):
    """The implementation before issue 10: scores of every step kept, then stacked to (B, T, V)."""

    def _generate_batch(self, prompts, params):
        from transformers import GenerationConfig

        input_ids, attention_mask = left_pad(prompts, self.tokenizer.pad_token_id)
        config = GenerationConfig(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0,
                                  max_new_tokens=params.max_new_tokens, output_scores=True,
                                  return_dict_in_generate=True, pad_token_id=self.tokenizer.pad_token_id,
                                  eos_token_id=self.tokenizer.eos_token_id)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params.seed)
            result = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config,
                                         stopping_criteria=[StopOnText(self.tokenizer, (), input_ids.shape[1])])
        new_ids = result.sequences[:, input_ids.shape[1]:]
        logprobs = torch.stack([torch.log_softmax(s.float(), dim=-1) for s in result.scores], dim=1)  # (B, T, V)
        return [self._trim(p, new_ids[i], logprobs[i].gather(1, new_ids[i][:, None])[:, 0], None)
                for i, p in enumerate(prompts)]


class NoEos:
    def __init__(self, tokenizer):
        self._tok, self.eos_token_id = tokenizer, -1

    def __getattr__(self, name):
        return getattr(self._tok, name)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(variant: str, model: str, batch: int, tokens: int) -> dict:
    loaded = load_model(model)
    cls = StackingSampler if variant == "stacking" else TransformersSampler
    tok = NoEos(loaded.tokenizer)
    prompts = [loaded.tokenizer.encode(f"Write a story about item {i}.") for i in range(batch)]
    cls(loaded.model, tok, SamplingParams(max_new_tokens=2)).generate(prompts)  # warm-up
    before = peak_rss_mb()
    gens = cls(loaded.model, tok, SamplingParams(max_new_tokens=tokens, seed=1)).generate(prompts)
    return {"variant": variant, "before_mb": before, "after_mb": peak_rss_mb(), "tokens": len(gens[0].token_ids),
            "vocab": loaded.model.config.vocab_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--variant", choices=["gathered", "stacking"], help="(internal) measure one variant here")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.model, args.batch, args.tokens)))
        return
    print(f"model {args.model}, batch {args.batch}, {args.tokens} new tokens")
    for variant in ("stacking", "gathered"):
        cmd = [sys.executable, __file__, "--variant", variant, "--model", args.model, "--batch", str(args.batch),
               "--tokens", str(args.tokens)]
        row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        stack_mb = args.batch * row["tokens"] * row["vocab"] * 4 / 2**20
        print(f"{variant:>9}: peak RSS {row['before_mb']:7.0f} MB -> {row['after_mb']:7.0f} MB "
              f"(+{row['after_mb'] - row['before_mb']:.0f} MB; one (B, T, V) float32 tensor is {stack_mb:.0f} MB)")


if __name__ == "__main__":
    main()
