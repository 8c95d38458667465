"""Supervised fine-tuning on demonstrations (`algorithm.name: sft`): the training loop over a fixed set of them.

    longhorizon demos longhorizon/Execution-v0 --episodes 256 --out runs/demos.jsonl --set dict_size=10
    longhorizon train recipes/sft-execution.yaml       # demonstrations: runs/demos.jsonl

Each step, top to bottom: the next `tasks_per_step` demonstrations → their rows (the context strategy's
`to_samples`, `train/demonstrations.py`), padded → `epochs * num_minibatches` updates of the token-mean
negative log-likelihood of the agent's tokens (`algorithms.supervised.sft_loss`) → log → evaluate every M
steps → checkpoint every N steps. The held-out evaluation on the env, the checkpoints (exact resume), the
metrics files and the exported model are the session's (`train/session.py`), as for every trainer.

Choices:
1. Demonstrations are read and tokenised once, before the first step (oracle episodes are replayed in their
   env to get the tokens the model would see: `rollout/demos.py`).
2. Data order: as `train/offline.py`: pass e over the demonstrations is the permutation drawn from seed
   `seed + e`; step k reads positions k*P .. (k+1)*P - 1 (P = tasks_per_step), so a resumed run reads the same
   demonstrations. The unit is a demonstration (an episode or a conversation), not a row: an episode gives
   one row under `full` and one per turn (or chunk) under `window`, `markovian` and `workspace`.
3. Minibatches split a step's rows with the global torch RNG (saved in checkpoints), as the RL loop does.
4. Log-probs at temperature 1 (the model's own distribution), not the rollout temperature.
5. The loss is the token mean over the minibatch (see `algorithms/supervised.py` for why); a micro-batch
   divides its summed NLL by the minibatch's token count, so gradient accumulation is exact.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from longhorizon.algorithms.supervised import SUPERVISED_LOSSES
from longhorizon.train.batch import microbatches
from longhorizon.train.checkpoint import Resumable
from longhorizon.train.config import TrainConfig
from longhorizon.train.demonstrations import demonstration_samples, read_demonstrations
from longhorizon.train.memory import release_memory
from longhorizon.train.metrics import peak_memory_mb
from longhorizon.train.model import Models, autocast, build_models, token_forward
from longhorizon.train.offline import Side, data_rows, pad
from longhorizon.train.optim import build_optimizer
from longhorizon.train.rewards import RewardNormalizer
from longhorizon.train.session import OnLog, Session, TrainResult, mean_metrics, run_updates, transformers_sampler
from longhorizon.types import Sample

Metrics = dict[str, float]


def train_sft(cfg: TrainConfig, *, resume: bool = False, on_log: OnLog | None = None) -> TrainResult:
    """Train on `cfg.demonstrations` (or continue from RUN_DIR's latest checkpoint) and return before/after evals."""
    session = Session.open(cfg, resume, on_log)
    strategy = session.strategy
    demos = read_demonstrations(cfg.demonstrations)  # a bad file fails before any model loads
    models = build_models(cfg, needs_ref=False, value_head=False)
    samples = demonstration_samples(demos, strategy, models.tokenizer, str(cfg.demonstrations), cfg.prefill,
                                    tuple(cfg.stop))
    optimizer, scheduler = build_optimizer(cfg, models)
    sampler = transformers_sampler(cfg, models)  # the live model: held-out evals (and rollouts)
    step, position = session.start(Resumable(models, optimizer, scheduler, RewardNormalizer(), sampler, strategy))

    session.evaluate_first(step)
    while step < cfg.steps:
        release_memory()
        t_start = time.perf_counter()

        # 1. The next demonstrations' rows, padded.
        picked = data_rows(len(samples), position, cfg.tasks_per_step, cfg.seed)
        position += cfg.tasks_per_step
        rows = pad_samples([s for i in picked for s in samples[i]], models.tokenizer.pad_token_id)

        # 2. K epochs of minibatch updates of the NLL of the agent's tokens.
        updates = run_updates(cfg, models, optimizer, scheduler, torch.arange(len(rows.input_ids)),
                              lambda mb: sft_backward(models, rows, mb, cfg))
        step += 1

        # 3. Log, evaluate every M steps, checkpoint every N steps.
        session.record(step, {**mean_metrics(updates), "charts/demonstrations": float(len(picked)),
                              "charts/rows_trained": float(len(rows.input_ids)), "charts/updates": float(len(updates)),
                              "charts/tokens_trained": float(rows.loss_mask.sum()),
                              "charts/learning_rate": scheduler.get_last_lr()[0],
                              "perf/step_time": time.perf_counter() - t_start, "perf/peak_memory_mb": peak_memory_mb(cfg.device)})
        session.end_step(step, position)

    return session.finish(step)


def pad_samples(samples: list[Sample], pad_id: int) -> Side:
    """Rows (R, T), right-padded: input_ids, attention_mask, loss_mask."""
    return pad([(s.input_ids, s.loss_mask) for s in samples], pad_id)


def sft_backward(models: Models, rows: Side, minibatch: Tensor, cfg: TrainConfig) -> Metrics:
    """Accumulate d(token-mean NLL over the minibatch)/d(params) over micro-batches; return the minibatch's metrics."""
    loss_fn = SUPERVISED_LOSSES[cfg.algorithm.name]
    num_tokens = float(rows.loss_mask[minibatch].sum())
    device = next(models.model.parameters()).device
    total = 0.0
    for micro in microbatches(minibatch, cfg.micro_batch_size):
        mb = rows.select(micro)
        ids, attn, mask = (x.to(device) for x in (mb.input_ids, mb.attention_mask, mb.loss_mask))
        with autocast(cfg):
            logps = token_forward(models.model, ids, attn, mask, 1.0, share_prefix=cfg.share_prefix).logprobs
            loss, _ = loss_fn(logps.float(), mask.float(), num_tokens)  # (,) this micro-batch's share of the mean
        loss.backward()
        total += loss.item()
    return {"losses/sft_loss": total, "losses/tokens": num_tokens}
