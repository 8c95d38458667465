"""Offline preference optimisation (`algorithm.name: dpo | ipo`): the training loop over a fixed set of pairs.

(`reward_model` / `preference_model` come here too and go on to `train/scorers.py`.)

    longhorizon train recipes/dpo-quickstart.yaml      # preferences: runs/prefs-quickstart

Each step, top to bottom: the next `tasks_per_step` pairs → their reference log-probs (no grad)
→ `epochs * num_minibatches` updates of the preference loss (`algorithms.PREFERENCE_LOSSES`)
→ log → evaluate every M steps → checkpoint every N steps. The held-out evaluation on the env,
the checkpoints (exact resume), the metrics files and the exported model are the RL loop's.

Choices:
1. The pairs are read once (`feedback.read_preferences`), ties dropped, and tokenised with the chat
   template (`feedback.tokens.continuation_tokens`: the loss covers the continuation's assistant
   tokens only, not the env's observations between them). Offline pairs are text, so unlike RL
   rollouts they are tokenised here rather than replayed token for token.
2. Data order: pass e over the pairs is the permutation drawn from seed `seed + e`; step k reads
   positions k*P .. (k+1)*P - 1 of the passes one after another (P = tasks_per_step). The data
   position alone fixes the data, so a resumed run reads the same pairs.
3. Log-probs at temperature 1 (the model's own distribution), not the rollout temperature.
4. The reference is a frozen copy (full fine-tune) or the LoRA base with adapters off.
5. Both sides of a micro-batch's pairs go through one forward pass, so with `share_prefix` (the default)
   the context they share is computed once, as a GRPO group's prompt is in the RL loop.
6. The loss of a minibatch is the mean over its pairs; a micro-batch of `micro_batch_size` pairs adds
   its own mean times (its pairs / the minibatch's pairs), so accumulation over micro-batches is exact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from longhorizon.algorithms import PREFERENCE_LOSSES, PairLogps
from longhorizon.errors import UserError
from longhorizon.feedback import PreferencePair, read_preferences
from longhorizon.feedback.tokens import continuation_tokens
from longhorizon.train.batch import microbatches
from longhorizon.train.checkpoint import Resumable
from longhorizon.train.config import PREFERENCE_MODELS, TrainConfig
from longhorizon.train.memory import release_memory
from longhorizon.train.metrics import peak_memory_mb
from longhorizon.train.model import Models, autocast, build_models, reference, token_forward
from longhorizon.train.optim import build_optimizer
from longhorizon.train.rewards import RewardNormalizer
from longhorizon.train.session import OnLog, Session, TrainResult, mean_metrics, run_updates, transformers_sampler

Metrics = dict[str, float]
Tokens = tuple[list[int], list[int]]  # ids, loss mask


def train_offline(cfg: TrainConfig, *, resume: bool = False, on_log: OnLog | None = None) -> TrainResult:
    """Train on `cfg.preferences` (or continue from RUN_DIR's latest checkpoint) and return before/after evals."""
    if cfg.algorithm.name in PREFERENCE_MODELS:  # reward_model, preference_model: a scalar head, not a policy
        from longhorizon.train.scorers import train_scorer

        return train_scorer(cfg, resume=resume, on_log=on_log)
    session = Session.open(cfg, resume, on_log)
    strategy = session.strategy  # for the held-out evaluation
    decided = decided_pairs(cfg.preferences)  # a bad path fails before any model loads
    models = build_models(cfg, needs_ref=True, value_head=False)
    pairs = [(continuation_tokens(models.tokenizer, p.context, p.chosen),
              continuation_tokens(models.tokenizer, p.context, p.rejected)) for p in decided]
    optimizer, scheduler = build_optimizer(cfg, models)
    sampler = transformers_sampler(cfg, models)  # the live model: held-out evals (and rollouts)
    step, position = session.start(Resumable(models, optimizer, scheduler, RewardNormalizer(), sampler, strategy))

    session.evaluate_first(step)
    while step < cfg.steps:
        release_memory()
        t_start = time.perf_counter()

        # 1. The next pairs, padded, and their reference log-probs (the reference never changes).
        rows = data_rows(len(pairs), position, cfg.tasks_per_step, cfg.seed)
        position += cfg.tasks_per_step
        chosen, rejected = (pad([pairs[i][side] for i in rows], models.tokenizer.pad_token_id) for side in (0, 1))
        ref_chosen, ref_rejected = reference_logps(models, (chosen, rejected), cfg)

        # 2. K epochs of minibatch updates of the preference loss.
        updates = run_updates(cfg, models, optimizer, scheduler, torch.arange(len(rows)),
                              lambda mb: pairs_backward(models, (chosen, rejected), (ref_chosen, ref_rejected), mb, cfg))
        step += 1

        # 3. Log, evaluate every M steps, checkpoint every N steps.
        session.record(step, {**mean_metrics(updates), "charts/pairs": float(len(rows)), "charts/updates": float(len(updates)),
                              "charts/learning_rate": scheduler.get_last_lr()[0],
                              "perf/step_time": time.perf_counter() - t_start, "perf/peak_memory_mb": peak_memory_mb(cfg.device)})
        session.end_step(step, position)

    return session.finish(step)


# ------------------------------------------------------------------ data


def decided_pairs(path: str) -> list[PreferencePair]:
    """The pairs at `path` that have a preferred side (dpo, ipo and the reward / preference models drop ties)."""
    decided = [p for p in read_preferences(path) if p.preferred != "tie"]
    if not decided:
        raise UserError(f"preferences: {path} holds no pair with a preferred side (ties are not used by dpo, ipo, "
                        "reward_model or preference_model)")
    return decided


@lru_cache(maxsize=4)
def _permutation(n: int, seed: int) -> list[int]:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()


def data_rows(n: int, position: int, count: int, seed: int) -> list[int]:
    """Pair indices at data positions position .. position + count - 1 (pass e shuffled by seed + e)."""
    return [_permutation(n, seed + p // n)[p % n] for p in range(position, position + count)]


@dataclass
class Side:
    """One side of P pairs, right-padded: input_ids, attention_mask, loss_mask, each (P, T)."""

    input_ids: Tensor
    attention_mask: Tensor
    loss_mask: Tensor

    def select(self, rows: Tensor) -> "Side":
        """Rows `rows`, trimmed to their longest sequence."""
        width = int(self.attention_mask[rows].sum(1).max())
        return Side(*(x[rows, :width] for x in (self.input_ids, self.attention_mask, self.loss_mask)))


def pad(rows: list[Tokens], pad_id: int) -> Side:
    width = max(len(ids) for ids, _ in rows)
    ids, attn, mask = (torch.zeros(len(rows), width, dtype=torch.long) for _ in range(3))
    ids.fill_(pad_id)
    for i, (row_ids, row_mask) in enumerate(rows):
        ids[i, :len(row_ids)] = torch.tensor(row_ids)
        attn[i, :len(row_ids)] = 1
        mask[i, :len(row_ids)] = torch.tensor(row_mask)
    return Side(ids, attn, mask)


# ------------------------------------------------------------------ log-probs and the loss


def both_logps(model, chosen: Side, rejected: Side, share_prefix: bool) -> tuple[Tensor, Tensor]:
    """Token log-probs of both sides at temperature 1 (0 off the mask): (p, tc), (p, tr), in ONE forward pass,
    so with `share_prefix` the context that a pair's two sides (and pairs of one task) share is computed once."""
    width = max(chosen.input_ids.shape[1], rejected.input_ids.shape[1])
    joint = [torch.cat([F.pad(a, (0, width - a.shape[1])), F.pad(b, (0, width - b.shape[1]))])
             for a, b in zip(vars(chosen).values(), vars(rejected).values())]
    device = next(model.parameters()).device
    logps = token_forward(model, *(x.to(device) for x in joint), 1.0, share_prefix=share_prefix).logprobs
    n = len(chosen.input_ids)
    return logps[:n, :chosen.input_ids.shape[1]], logps[n:, :rejected.input_ids.shape[1]]


@torch.no_grad()
def reference_logps(models: Models, sides: tuple[Side, Side], cfg: TrainConfig) -> tuple[Tensor, Tensor]:
    """Reference token log-probs of both sides of the step's pairs, (P, Tc) and (P, Tr), in micro-batches."""
    out = tuple(torch.zeros(side.input_ids.shape, dtype=torch.float32) for side in sides)
    models.model.eval()
    for rows in microbatches(torch.arange(len(sides[0].input_ids)), cfg.micro_batch_size):
        chosen, rejected = (side.select(rows) for side in sides)
        with autocast(cfg), reference(models) as ref_model:
            logps = both_logps(ref_model, chosen, rejected, cfg.share_prefix)
        for full, part in zip(out, logps):
            full[rows, :part.shape[1]] = part.float().cpu()
    return out


def pairs_backward(models: Models, sides: tuple[Side, Side], refs: tuple[Tensor, Tensor], rows: Tensor,
                   cfg: TrainConfig) -> Metrics:
    """Accumulate d(mean loss over the minibatch's pairs)/d(params) over micro-batches; return mean metrics."""
    metrics: Metrics = {}
    device = next(models.model.parameters()).device
    for micro in microbatches(rows, cfg.micro_batch_size):
        share = len(micro) / len(rows)
        chosen, rejected = (side.select(micro) for side in sides)
        with autocast(cfg):
            policy_chosen, policy_rejected = both_logps(models.model, chosen, rejected, cfg.share_prefix)
            batch = PairLogps(chosen=policy_chosen.float(), rejected=policy_rejected.float(),
                              ref_chosen=refs[0][micro, :chosen.input_ids.shape[1]].to(device),
                              ref_rejected=refs[1][micro, :rejected.input_ids.shape[1]].to(device),
                              chosen_mask=chosen.loss_mask.to(device), rejected_mask=rejected.loss_mask.to(device))
            loss, m = PREFERENCE_LOSSES[cfg.algorithm.name](batch, beta=cfg.algorithm.beta)
        (loss * share).backward()
        for key, value in {"losses/pref_loss": loss.item(), **{f"losses/{k}": v for k, v in m.items()}}.items():
            metrics[key] = metrics.get(key, 0.0) + share * value
    return metrics
