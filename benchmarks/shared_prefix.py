"""Shared prompt compute (`share_prefix`) on the bundled model: time and peak memory of scoring + one update.

    python benchmarks/shared_prefix.py [--repeats 2] [--threads 1]

A quickstart-like batch built directly (no rollout): 32 rows, 4 Execution-v0
tasks x 8 rows. Each row is a 2-turn `full` sequence: the task's chat-templated
first prompt (shared by its 8 rows) + "<answer>", 6 sampled tokens, the
template and second observation, 6 sampled tokens. Sampled tokens are random
ids, so rows diverge after the first prompt. The step is the quickstart
recipe's (bf16 autocast, micro-batches of 8, full fine-tune) with a KL term
(coefficient 0.04) so `score` computes reference log-probs with the frozen
copy: `score` + `minibatch_backward` over the 32 rows (rows shuffled, as
`minibatches` does). share_prefix off and on alternate in one process;
the best of `--repeats` is reported. Peak memory is the extra resident set
size of one step over the loaded models (sampled every 5 ms), each mode in
its own process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

import gymnasium as gym
import torch

import longhorizon.envs  # noqa: F401  (registers the envs)
from longhorizon.train import ALGORITHMS, load_config
from longhorizon.train.batch import Batch, with_credit
from longhorizon.train.loop import score
from longhorizon.train.model import build_models
from longhorizon.train.prefix import plan_prefixes
from longhorizon.train.update import minibatch_backward

RECIPE = "recipes/quickstart.yaml"
SETS = ["algorithm.kl_coef=0.04", "eval.episodes=0", "checkpoint_every=0"]
TASKS, GROUP, SAMPLED = 4, 8, 6


def task_rows(tokenizer, cfg, task: int, gen: torch.Generator) -> list[tuple[list[int], list[int]]]:
    """GROUP rows (ids, loss mask) of one task: prompt0 + a0 + template/obs1 + a1."""
    env = gym.make(cfg.env_id, **cfg.env_kwargs)
    obs, _ = env.reset(seed=task)
    obs1 = env.step("<answer>12</answer>")[0]
    chat = tokenizer.apply_chat_template([{"role": "user", "content": obs}], add_generation_prompt=True, tokenize=False)
    prompt = tokenizer.encode(chat + "<answer>", add_special_tokens=False)
    turn2 = tokenizer.encode(f"<|im_end|>\n<|im_start|>user\n{obs1}<|im_end|>\n<|im_start|>assistant\n<answer>",
                             add_special_tokens=False)
    rows = []
    for _ in range(GROUP):
        a0, a1 = (torch.randint(100, len(tokenizer), (SAMPLED,), generator=gen).tolist() for _ in range(2))
        rows.append((prompt + a0 + turn2 + a1, [0] * len(prompt) + [1] * SAMPLED + [0] * len(turn2) + [1] * SAMPLED))
    return rows


def build_batch(tokenizer, cfg) -> Batch:
    gen = torch.Generator().manual_seed(0)
    rows = [r for task in range(TASKS) for r in task_rows(tokenizer, cfg, task, gen)]
    width, b = max(len(ids) for ids, _ in rows), len(rows)
    ids, mask, loss = torch.full((b, width), tokenizer.pad_token_id), torch.zeros(b, width, dtype=torch.long), torch.zeros(b, width)
    for r, (row, lm) in enumerate(rows):
        ids[r, : len(row)], mask[r, : len(row)], loss[r, : len(row)] = torch.tensor(row), 1, torch.tensor(lm, dtype=torch.float)
    advantages = torch.randn(b, 1, generator=gen) * loss
    return Batch(input_ids=ids, attention_mask=mask, loss_mask=loss, old_logprobs=torch.zeros(b, width),
                 token_turn=torch.where(loss > 0, 0, -1), row_episode=torch.arange(b), turn_rewards=torch.zeros(b, 2),
                 turn_mask=torch.ones(b, 2), group_ids=torch.arange(b) // GROUP, advantages=advantages)


def step(models, batch: Batch, cfg) -> tuple[float, float]:
    """(score seconds, update seconds) of one step."""
    algo = ALGORITHMS[cfg.algorithm.name]
    t0 = time.perf_counter()
    scored, _ = score(models, batch, cfg, algo)
    t1 = time.perf_counter()
    scored = with_credit(scored, old_logprobs=scored.ref_logprobs)  # ratio 1, as before a step's first update
    models.model.train()
    models.model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    minibatch_backward(models, scored, torch.randperm(batch.rows), cfg, algo)
    models.model.eval()
    return t1 - t0, time.perf_counter() - t1


def setup(threads: int):
    torch.set_num_threads(threads)
    cfg = load_config(RECIPE, SETS)
    algo = ALGORITHMS[cfg.algorithm.name]
    models = build_models(cfg, needs_ref=algo.needs_ref(cfg.algorithm), value_head=algo.value_head)
    return cfg, models, build_batch(models.tokenizer, cfg)


def positions(batch: Batch, size: int) -> tuple[int, int]:
    """Token positions run per forward over the batch in micro-batches of `size`: (plain, shared)."""
    plain = shared = 0
    for i in range(0, batch.rows, size):
        mb = batch.select(torch.arange(i, min(i + size, batch.rows)))
        plan = plan_prefixes(mb.input_ids, mb.attention_mask, mb.loss_mask)
        plain += mb.input_ids.numel()
        shared += mb.input_ids.numel() if plan is None else plan.prefix_ids.numel() + plan.suffix_ids.numel()
    return plain, shared


def timing(args) -> None:
    cfg, models, batch = setup(args.threads)
    lengths = batch.attention_mask.sum(1).float()
    plain, shared = positions(batch, cfg.micro_batch_size)  # rows are already grouped by task
    print(f"{batch.rows} rows ({TASKS} tasks x {GROUP}), {lengths.mean():.0f} tokens per row on average "
          f"({int(batch.loss_mask.sum())} sampled), micro-batches of {cfg.micro_batch_size}, threads={args.threads}; "
          f"token positions per pass: {plain} plain, {shared} shared")
    best = {False: [float("inf")] * 2, True: [float("inf")] * 2}
    for _ in range(args.repeats):
        for share in (False, True):
            run_cfg = cfg.model_copy(update={"share_prefix": share})
            best[share] = [min(a, b) for a, b in zip(best[share], step(models, batch, run_cfg))]
    print(f"{'share_prefix':<14}{'score s':>10}{'update s':>10}{'total s':>10}")
    for share, (s, u) in best.items():
        print(f"{str(share).lower():<14}{s:>10.2f}{u:>10.2f}{s + u:>10.2f}")
    off, on = sum(best[False]), sum(best[True])
    print(f"speed-up: {off / on:.2f}x (score {best[False][0] / best[True][0]:.2f}x, update {best[False][1] / best[True][1]:.2f}x)")


def rss_mb() -> float:
    """The process's current resident set size (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_child(share: bool, threads: int) -> None:
    """Peak RSS during one step minus the RSS before it, sampled every 5 ms (ru_maxrss is set by the model load)."""
    cfg, models, batch = setup(threads)
    before, peak, done = rss_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], rss_mb())

    sampler = threading.Thread(target=sample)
    sampler.start()
    step(models, batch, cfg.model_copy(update={"share_prefix": share}))
    done.set()
    sampler.join()
    print(f"{peak[0] - before:.0f}")


def memory(args) -> None:
    extra = {}
    for share in (False, True):
        cmd = [sys.executable, __file__, "--memory-child", str(share).lower(), "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
        extra[share] = float(out.stdout.strip().splitlines()[-1])
    print(f"peak RSS of one step above the loaded models: {extra[False]:.0f} MiB off, {extra[True]:.0f} MiB on")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--memory-only", action="store_true", help="skip the timing")
    ap.add_argument("--memory-child", choices=["true", "false"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child == "true", args.threads)
    if not args.memory_only:
        timing(args)
    memory(args)


if __name__ == "__main__":
    main()
