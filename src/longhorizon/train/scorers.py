"""Training a reward model or a pairwise preference model on preference pairs (`algorithm.name: reward_model |
preference_model`, `preferences: PATH`), or a user-reaction model on binary reaction labels (`algorithm.name:
reaction_model`, `reactions: PATH`; RLUF, `feedback/reaction.py`), the training loop top to bottom.

    longhorizon train recipes/prefs/reward-model.yaml       # -> runs/rm-quickstart/model (load_reward_model)
    longhorizon train recipes/prefs/reaction-model.yaml     # -> runs/reaction-model/model (load_reaction_model)

Each step: the next `tasks_per_step` training pairs → `epochs * num_minibatches` updates of the
pair loss (`algorithms.REWARD_MODEL_LOSSES`) → log → evaluate on the held-out pairs every
`eval.every` steps → checkpoint every N steps. The run directory, exact resume, the metrics
files and the exported model are the other trainers' (`train/session.py`).

Choices:
1. The model is `AutoModelForSequenceClassification` (num_labels 1) with the configured LM's
   trunk and a new head (`feedback.reward_model.attach_score_head`, drawn after seeding with
   `seed`). LoRA is peft's SEQ_CLS task: adapters on `lora.target_modules` and a trainable copy
   of the head (`modules_to_save`); the exported `RUN_DIR/model` has the adapters merged (a plain
   Hugging Face directory with the head); the checkpoints hold the adapters and the head.
2. Ties are dropped (`offline.decided_pairs`). A pair's `metadata["margin"]` (the `margin`
   column of a TRL dataset) is used as TRL's RewardTrainer uses it: -log sigmoid(z - margin).
3. Held-out pairs (`pairs_heldout`, `pairs_heldout_seed`): pairs are grouped by task (env id and
   seed in their metadata, as `longhorizon prefs build` writes them; otherwise by context) and
   whole groups are held out, in an order drawn from `pairs_heldout_seed`, until at least that
   fraction of the pairs is held out. Two episodes of one task appear in many pairs; splitting
   pairs at random would put an episode on both sides of the split.
4. The held-out metrics (`feedback.pair_metrics`: accuracy, ECE over 10 bins, log-loss, mean
   log-odds) are logged as `eval/pair_*` at step 0, every `eval.every` steps and at the end, in
   place of the env evaluation (there is no policy to run).
5. Data order as in offline DPO: pass e over the training pairs is the permutation drawn from
   `seed + e`; the data position alone fixes the data, so a resumed run reads the same pairs.
6. Each forward pass scores both members of a micro-batch's pairs (2 * micro_batch_size rows,
   right-padded); with `share_prefix` (the default) the context they share is computed once, as
   offline DPO does (equal up to float rounding). The loss of a minibatch is the mean over its
   pairs, accumulated exactly over micro-batches.
7. The reaction model runs the same loop (`SCORER_KINDS`: what a kind reads, its rows, its loss and its
   held-out eval): one row per label, binary cross-entropy on P[positive] = sigmoid(score), labels
   held out by task as pairs are (choice 3), and `eval/reaction_*` (AUROC, accuracy, ECE, log-loss).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from longhorizon.algorithms import PAIR_LOG_ODDS, REWARD_MODEL_LOSSES
from longhorizon.errors import UserError
from longhorizon.feedback import PreferencePair
from longhorizon.feedback.pair_metrics import pair_metrics
from longhorizon.feedback.reaction import Reaction, reaction_group, reaction_loss, reaction_metrics, read_reactions
from longhorizon.feedback.reward_model import (PAIR_TOKENS, attach_score_head, pad_right, pooled_scores,
                                               reward_tokens, score_rows)
from longhorizon.models import load_model
from longhorizon.train.batch import microbatches
from longhorizon.train.checkpoint import Resumable
from longhorizon.train.config import TrainConfig
from longhorizon.train.memory import release_memory
from longhorizon.train.metrics import peak_memory_mb, read_records
from longhorizon.train.model import Models, _checkpoint_activations, autocast
from longhorizon.train.offline import data_rows, decided_pairs
from longhorizon.train.optim import build_optimizer
from longhorizon.train.rewards import RewardNormalizer
from longhorizon.train.session import OnLog, Session, TrainResult, mean_metrics, run_updates

Metrics = dict[str, float]


@dataclass
class PairRow:
    """A pair as the model reads it: the two rows' token ids (chosen in the first role) and TRL's margin."""

    first: list[int]
    second: list[int]
    margin: float = 0.0


@dataclass
class NoSampler:
    """Nothing is sampled; checkpoints still save a sampler call counter."""

    calls: int = 0


def train_scorer(cfg: TrainConfig, *, resume: bool = False, on_log: OnLog | None = None) -> TrainResult:
    """Train on `cfg.preferences` (or continue from RUN_DIR's latest checkpoint); return the held-out pair evals."""
    session = Session.open(cfg, resume, on_log)
    kind = SCORER_KINDS[cfg.algorithm.name]
    train_items, heldout_items = kind.data(cfg)  # a bad file fails before the model loads
    models = build_scorer(cfg)
    train_rows, heldout_rows = (kind.rows(models.tokenizer, xs, cfg.algorithm.name) for xs in (train_items, heldout_items))
    optimizer, scheduler = build_optimizer(cfg, models)
    state = Resumable(models, optimizer, scheduler, RewardNormalizer(), NoSampler(), session.strategy)
    step, position = session.start(state)

    if step == 0:
        kind.evaluate(session, models, heldout_rows, 0)  # before any training
    while step < cfg.steps:
        release_memory()
        t_start = time.perf_counter()

        # 1. The next pairs (labels).
        rows = data_rows(len(train_rows), position, cfg.tasks_per_step, cfg.seed)
        position += cfg.tasks_per_step
        batch = [train_rows[i] for i in rows]

        # 2. K epochs of minibatch updates of the pair (reaction) loss.
        updates = run_updates(cfg, models, optimizer, scheduler, torch.arange(len(batch)),
                              lambda mb: kind.backward(models, batch, mb, cfg))
        step += 1

        # 3. Log, evaluate on the held-out pairs (labels) every M steps, checkpoint every N steps.
        session.record(step, {**mean_metrics(updates), kind.count_key: float(len(batch)),
                              "charts/updates": float(len(updates)), "charts/learning_rate": scheduler.get_last_lr()[0],
                              "perf/step_time": time.perf_counter() - t_start,
                              "perf/peak_memory_mb": peak_memory_mb(cfg.device)})
        if cfg.eval.every and step % cfg.eval.every == 0 and step < cfg.steps:
            kind.evaluate(session, models, heldout_rows, step)
        session.end_step(step, position)

    if scorer_eval_record(session.path, cfg.steps, kind.eval_key) is None:  # a resumed, finished run already has it
        kind.evaluate(session, models, heldout_rows, cfg.steps)
    result = session.finish(step)
    return replace(result, eval_before=scorer_eval_record(session.path, 0, kind.eval_key),
                   eval_after=scorer_eval_record(session.path, cfg.steps, kind.eval_key))


# ------------------------------------------------------------------ model and data


def build_scorer(cfg: TrainConfig) -> Models:
    """The configured LM's trunk with a scalar head (seeded with `seed`), LoRA (peft SEQ_CLS) if enabled."""
    loaded = load_model(cfg.model, dtype=cfg.dtype, device=cfg.device)
    torch.manual_seed(cfg.seed)  # the head's initialisation, and LoRA's
    model = attach_score_head(loaded.model, loaded.tokenizer, cfg.algorithm.name)
    if cfg.gradient_checkpointing:
        _checkpoint_activations(model)
    if cfg.lora.enabled:
        model = _with_lora(model, cfg)
    return Models(model=model, tokenizer=loaded.tokenizer, ref_model=None, value_head=None, lora=cfg.lora.enabled)


def _with_lora(model: Any, cfg: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = cfg.lora
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules, task_type="SEQ_CLS")  # SEQ_CLS: the head is trained too
    with warnings.catch_warnings():  # peft still asks for transformers' deprecated `is_gradient_checkpointing`
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def pair_rows(tokenizer: Any, pairs: list[PreferencePair], kind: str) -> list[PairRow]:
    return [PairRow(*PAIR_TOKENS[kind](tokenizer, p), margin=float(p.metadata.get("margin", 0.0))) for p in pairs]


def _group(pair: PreferencePair) -> str:
    """Pairs of one task (env id and seed, as `prefs build` records them) or else of one context."""
    meta = pair.metadata
    return repr((meta.get("env_id"), meta["seed"])) if "seed" in meta else repr(pair.model_dump()["context"])


def split_pairs(pairs: list[PreferencePair], fraction: float, seed: int) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(training, held-out) pairs: whole groups held out, in an order drawn from `seed`, until >= fraction of the pairs."""
    return split_groups(pairs, [_group(p) for p in pairs], fraction, seed, "pairs")


def split_groups(items: Sequence[Any], keys: list[str], fraction: float, seed: int,
                 what: str) -> tuple[list[Any], list[Any]]:
    """(training, held-out) items, whole groups (items of one key) held out in an order drawn from `seed`."""
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    members = list(groups.values())
    order = torch.randperm(len(members), generator=torch.Generator().manual_seed(seed)).tolist()
    held: list[int] = []
    for g in order:
        if len(held) >= fraction * len(items):
            break
        held += members[g]
    if len(held) == len(items):
        raise UserError(f"pairs_heldout: holding out {fraction:g} of the {len(items)} {what} by task leaves none to "
                        f"train on (they come from {len(members)} task(s)); lower pairs_heldout or set it to 0")
    held_set = set(held)
    return [p for i, p in enumerate(items) if i not in held_set], [items[i] for i in sorted(held_set)]


# ------------------------------------------------------------------ the loss and the held-out eval


def pair_scores(model: Any, rows: list[PairRow], pad_id: int, share_prefix: bool) -> tuple[Tensor, Tensor]:
    """Scores of both members of each pair, (P,) and (P,), in one forward pass of 2P right-padded rows
    (with `share_prefix`, the context the rows share runs once)."""
    ids, attn = pad_right([r.first for r in rows] + [r.second for r in rows], pad_id)
    device = next(model.parameters()).device
    scores = pooled_scores(model, ids.to(device), attn.to(device), share_prefix)
    return scores[:len(rows)], scores[len(rows):]


def scorer_backward(models: Models, batch: list[PairRow], rows: Tensor, cfg: TrainConfig) -> Metrics:
    """Accumulate d(mean loss over the minibatch's pairs)/d(params) over micro-batches; return mean metrics."""
    loss_fn = REWARD_MODEL_LOSSES[cfg.algorithm.name]
    metrics: Metrics = {}
    for micro in microbatches(rows, cfg.micro_batch_size):
        share = len(micro) / len(rows)
        pairs = [batch[i] for i in micro.tolist()]
        with autocast(cfg):
            first, second = pair_scores(models.model, pairs, models.tokenizer.pad_token_id, cfg.share_prefix)
        margin = torch.tensor([p.margin for p in pairs], device=first.device)
        loss, m = loss_fn(first, second, margin=margin, center_coef=cfg.algorithm.center_rewards_coef)
        (loss * share).backward()
        for key, value in {"losses/pair_loss": loss.item(), **{f"losses/{k}": v for k, v in m.items()}}.items():
            metrics[key] = metrics.get(key, 0.0) + share * value
    return metrics


def heldout_log_odds(models: Models, rows: list[PairRow], cfg: TrainConfig) -> Tensor:
    """(N,) log-odds that each held-out pair's labelled winner wins, no grad, in eval mode."""
    models.model.eval()
    with autocast(cfg):
        scores = score_rows(models.model, [r.first for r in rows] + [r.second for r in rows],
                            models.tokenizer.pad_token_id, 2 * cfg.micro_batch_size, cfg.share_prefix)
    return PAIR_LOG_ODDS[cfg.algorithm.name](scores[:len(rows)], scores[len(rows):])


def evaluate_pairs(session: Session, models: Models, rows: list[PairRow], at: int) -> None:
    """Log eval/pair_accuracy, eval/pair_ece, eval/pair_log_loss, eval/pair_margin, eval/pairs at step `at`."""
    if rows:
        log_odds = heldout_log_odds(models, rows, session.cfg)
        session.record(at, {f"eval/{k}": v for k, v in pair_metrics(log_odds).items()})


def pair_eval_record(run_dir: Path, step: int) -> dict[str, Any] | None:
    return scorer_eval_record(run_dir, step, "eval/pair_accuracy")


def scorer_eval_record(run_dir: Path, step: int, key: str) -> dict[str, Any] | None:
    found = [r for r in read_records(run_dir) if r["step"] == step and key in r]
    return found[-1] if found else None


# ------------------------------------------------------------------ the reaction model (RLUF)


@dataclass
class ReactionRow:
    """One reaction label as the model reads it: the token ids of context + response, and the label (1 or 0)."""

    ids: list[int]
    label: float


def reaction_data(cfg: TrainConfig) -> tuple[list[Reaction], list[Reaction]]:
    """(training, held-out) reaction labels, whole tasks (or prompts) held out as pairs are."""
    reactions = read_reactions(cfg.reactions)
    return split_groups(reactions, [reaction_group(r) for r in reactions], cfg.pairs_heldout,
                        cfg.pairs_heldout_seed, "reaction labels")


def reaction_rows(tokenizer: Any, reactions: list[Reaction], kind: str) -> list[ReactionRow]:
    return [ReactionRow(reward_tokens(tokenizer, r.prompt, r.completion), float(r.label)) for r in reactions]


def reaction_backward(models: Models, batch: list[ReactionRow], rows: Tensor, cfg: TrainConfig) -> Metrics:
    """Accumulate d(mean BCE over the minibatch's labels)/d(params) over micro-batches; return mean metrics."""
    metrics: Metrics = {}
    device = next(models.model.parameters()).device
    for micro in microbatches(rows, cfg.micro_batch_size):
        share = len(micro) / len(rows)
        examples = [batch[i] for i in micro.tolist()]
        ids, attn = pad_right([e.ids for e in examples], models.tokenizer.pad_token_id)
        with autocast(cfg):
            logits = pooled_scores(models.model, ids.to(device), attn.to(device), cfg.share_prefix)  # (B,)
        loss, m = reaction_loss(logits, torch.tensor([e.label for e in examples], device=device))
        (loss * share).backward()
        for key, value in {"losses/reaction_loss": loss.item(), **{f"losses/{k}": v for k, v in m.items()}}.items():
            metrics[key] = metrics.get(key, 0.0) + share * value
    return metrics


def evaluate_reactions(session: Session, models: Models, rows: list[ReactionRow], at: int) -> None:
    """Log eval/reaction_auroc, _accuracy, _ece, _log_loss, _positive_rate, _prob_mean and eval/reactions."""
    if rows:
        models.model.eval()
        with autocast(session.cfg):
            logits = score_rows(models.model, [r.ids for r in rows], models.tokenizer.pad_token_id,
                                2 * session.cfg.micro_batch_size, session.cfg.share_prefix)
        labels = torch.tensor([r.label for r in rows])
        session.record(at, {f"eval/{k}": v for k, v in reaction_metrics(logits, labels).items()})


# ------------------------------------------------------------------ what each kind of scorer trains on


@dataclass(frozen=True)
class ScorerKind:
    """What one kind of scorer reads (before the model loads), its rows, its loss and its held-out eval."""

    data: Callable[[TrainConfig], tuple[list[Any], list[Any]]]
    rows: Callable[[Any, list[Any], str], list[Any]]
    backward: Callable[[Models, list[Any], Tensor, TrainConfig], Metrics]
    evaluate: Callable[[Session, Models, list[Any], int], None]
    eval_key: str  # the metric that marks a held-out eval record
    count_key: str  # the chart of rows trained per step


def pair_data(cfg: TrainConfig) -> tuple[list[PreferencePair], list[PreferencePair]]:
    return split_pairs(decided_pairs(cfg.preferences), cfg.pairs_heldout, cfg.pairs_heldout_seed)


PAIR_SCORER = ScorerKind(pair_data, pair_rows, scorer_backward, evaluate_pairs, "eval/pair_accuracy", "charts/pairs")
SCORER_KINDS = {"reward_model": PAIR_SCORER, "preference_model": PAIR_SCORER,
                "reaction_model": ScorerKind(reaction_data, reaction_rows, reaction_backward, evaluate_reactions,
                                             "eval/reaction_accuracy", "charts/reactions")}
