"""Online preference optimisation on episodes: `algorithm.name` online_dpo | dno | inpo | p3o_v1 | p3o_v2.

    longhorizon train recipes/online-dpo-quickstart.yaml

Each step, top to bottom: sample `group_size` episodes of `tasks_per_step` tasks with the current
policy → pair the episodes of each task and label them by the verifier (the higher return wins;
ties are dropped; `algorithm.pairing`: best vs worst, or every two) → reference log-probs (no grad)
→ `epochs * num_minibatches` updates of the pair loss (`algorithms.PREFERENCE_LOSSES`) → log → eval
→ checkpoint. Collection, the held-out evaluation, checkpoints (exact resume), metrics and the
exported model are the RL loop's.

A side of a pair is a whole episode: the sum of the log-probs of every token the model sampled in
it, over all the rows its context strategy made (`Batch.row_episode`), under softmax(logits /
temperature), the sampling distribution, as in the RL loop. What each method reads:
- online_dpo: DPO against the reference (online DPO with the verifier as annotator).
- dno: DPO against the iterate that sampled the pairs, pi_t = the behaviour log-probs: one DNO-Prct
  iteration per step; `algorithm.min_margin` is the large-margin filter on the return gap.
- inpo: INPO's square loss with pi_t = the behaviour log-probs and the reference (`algorithm.eta`, `tau`).
- p3o_v1 / p3o_v2: y1 the winner, y2 the loser, rewards = episode returns, pi_old = behaviour;
  `algorithm.clip_eps` clips the ratio, `algorithm.kl_coef` puts the KL to the reference in the rewards.
Nash-MD and Nash-MP play the policy's episodes against opponent episodes instead of pairing them among
themselves: `train/nash.py`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from longhorizon.algorithms import PREFERENCE_LOSSES, PairLogps, seq_logps
from longhorizon.feedback.build import candidate_pairs
from longhorizon.feedback.labellers import Labeller, episode_candidates, training_labeller, verifier
from longhorizon.rollout import ModelPolicy, run_episodes
from longhorizon.train.batch import Batch, by_prompt, collate, microbatches
from longhorizon.train.checkpoint import Resumable
from longhorizon.train.config import ONLINE_PREFERENCE, AlgorithmConfig, TrainConfig
from longhorizon.train.loop import rollout_metrics, task_specs
from longhorizon.train.memory import release_memory
from longhorizon.train.metrics import peak_memory_mb
from longhorizon.train.model import Models, autocast, build_models, reference, token_forward
from longhorizon.train.optim import build_optimizer
from longhorizon.train.rewards import RewardNormalizer
from longhorizon.train.session import OnLog, Session, TrainResult, mean_metrics, run_updates, transformers_sampler, write_trajectories
from longhorizon.types import Trajectory

Metrics = dict[str, float]


@dataclass
class LabelledRun:
    """What the trainers on the policy's own labelled episodes share (online preference methods, the Nash games):
    the session, the models with a reference, the optimizer, the live sampler's policy and the labeller, bound
    for an exact resume at (`step`, `position`)."""

    session: Session
    models: Models
    optimizer: Any
    scheduler: Any
    policy: ModelPolicy
    labeller: Labeller
    systems: Callable[[list[Trajectory]], list[str | None]]
    step: int
    position: int

    @classmethod
    def open(cls, cfg: TrainConfig, resume: bool, on_log: OnLog | None) -> "LabelledRun":
        session = Session.open(cfg, resume, on_log)
        models = build_models(cfg, needs_ref=True, value_head=False)
        optimizer, scheduler = build_optimizer(cfg, models)
        sampler = transformers_sampler(cfg, models)  # the live model: held-out evals (and rollouts)
        policy = ModelPolicy(sampler, session.strategy, prefill=cfg.prefill)
        labeller, systems = training_labeller(cfg.algorithm, cfg.dtype, cfg.env_kwargs, cfg.wrappers)
        step, position = session.start(Resumable(models, optimizer, scheduler, RewardNormalizer(), sampler,
                                                 session.strategy))
        return cls(session, models, optimizer, scheduler, policy, labeller, systems, step, position)

    def collect(self, position: int) -> list[Trajectory]:
        """`group_size` episodes of each of the `tasks_per_step` tasks from `position`, with the current weights."""
        cfg = self.session.cfg
        self.models.model.eval()
        with autocast(cfg):
            return run_episodes(task_specs(cfg, position), self.policy)


def train_online(cfg: TrainConfig, *, resume: bool = False, on_log: OnLog | None = None) -> TrainResult:
    """Train from verifier-labelled pairs of the policy's own episodes; return before/after evals."""
    run = LabelledRun.open(cfg, resume, on_log)
    session, models, optimizer, scheduler = run.session, run.models, run.optimizer, run.scheduler
    strategy = session.strategy
    step, position = run.step, run.position

    session.evaluate_first(step)
    while step < cfg.steps:
        release_memory()
        t_start = time.perf_counter()

        # 1. Collect with the current weights, pair each task's episodes, label them by return.
        trajectories = run.collect(position)
        position += cfg.tasks_per_step
        batch = collate(trajectories, strategy, models.tokenizer.pad_token_id)
        pairs = episode_pairs(trajectories, cfg.algorithm, run.labeller, run.systems(trajectories))  # (P, 2): winner, loser

        # 2. Reference and behaviour log-prob sums of every episode, then K epochs of updates on the pairs.
        sums = {"ref": reference_sums(models, batch, cfg), "old": episode_sums(batch.old_logprobs, batch),
                "return": torch.tensor([t.total_reward for t in trajectories])}
        updates = run_updates(cfg, models, optimizer, scheduler, torch.arange(len(pairs)),
                              lambda mb: pairs_backward(models, batch, pairs[mb], sums, cfg)) if len(pairs) else []
        step += 1

        # 3. Log, evaluate every M steps, checkpoint every N steps.
        if cfg.save_trajectories:
            write_trajectories(session.path / "trajectories" / f"step_{step:06d}.jsonl", trajectories)
        session.record(step, {**rollout_metrics(trajectories), **mean_metrics(updates), "charts/pairs": float(len(pairs)),
                              "charts/updates": float(len(updates)), "charts/learning_rate": scheduler.get_last_lr()[0],
                              "perf/step_time": time.perf_counter() - t_start, "perf/peak_memory_mb": peak_memory_mb(cfg.device)})
        session.end_step(step, position)

    return session.finish(step)


# ------------------------------------------------------------------ pairs


def episode_pairs(trajectories: list[Trajectory], cfg: AlgorithmConfig, labeller: Labeller = verifier,
                  systems: list[str | None] | None = None) -> Tensor:
    """(P, 2) long: (winner, loser) episode indices among the episodes of each task, as `labeller` says; ties
    dropped, and with the verifier return gaps below `min_margin` too (DNO's large-margin filter)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, traj in enumerate(trajectories):
        groups[traj.group_id].append(i)
    candidates = []
    for ids in groups.values():
        returns = [trajectories[i].total_reward for i in ids]
        candidates += [(ids[i], ids[j]) for i, j in candidate_pairs(returns, cfg.pairing)
                       if labeller is not verifier or abs(returns[i] - returns[j]) >= cfg.min_margin]
    labels = labeller(episode_candidates(trajectories, candidates, systems)) if candidates else []
    out = [(i, j) if label.preferred == "a" else (j, i) for (i, j), label in zip(candidates, labels)
           if label.preferred != "tie"]
    return torch.tensor(out, dtype=torch.long).reshape(-1, 2)


# ------------------------------------------------------------------ log-prob sums per episode


def episode_sums(token_logps: Tensor, batch: Batch, rows: Tensor | None = None) -> Tensor:
    """(N,) sum of the sampled tokens' log-probs of each episode, from `token_logps` (b, t) of `rows`
    (default: every row); episodes without a row here get 0."""
    rows = torch.arange(batch.rows) if rows is None else rows
    mask = batch.loss_mask[rows, :token_logps.shape[1]].to(token_logps.device)
    row_sums = seq_logps(token_logps, mask)  # (b,)
    n = batch.group_ids.shape[0]
    return row_sums.new_zeros(n).index_add(0, batch.row_episode[rows].to(row_sums.device), row_sums)


def _row_logps(model, batch: Batch, rows: Tensor, cfg: TrainConfig) -> Tensor:
    mb = batch.select(rows)
    device = next(model.parameters()).device
    return token_forward(model, mb.input_ids.to(device), mb.attention_mask.to(device), mb.loss_mask.to(device),
                         cfg.temperature, share_prefix=cfg.share_prefix).logprobs


@torch.no_grad()
def reference_sums(models: Models, batch: Batch, cfg: TrainConfig) -> Tensor:
    """(N,) reference log-prob sums of every episode, in micro-batches of rows."""
    order = torch.arange(batch.rows)
    order = order[by_prompt(batch, order)] if cfg.share_prefix else order
    total = torch.zeros(batch.group_ids.shape[0])
    for rows in microbatches(order, cfg.micro_batch_size):
        with autocast(cfg), reference(models) as ref_model:
            total += episode_sums(_row_logps(ref_model, batch, rows, cfg).float(), batch, rows).cpu()
    return total


# ------------------------------------------------------------------ the update


def loss_kwargs(cfg: AlgorithmConfig) -> dict[str, float]:
    clip = {"clip": cfg.clip_eps, "kl_coef": cfg.kl_coef}
    return {"online_dpo": {"beta": cfg.beta}, "dno": {"beta": cfg.beta}, "inpo": {"eta": cfg.eta, "tau": cfg.tau},
            "p3o_v1": clip, "p3o_v2": clip}[cfg.name]


def pairs_backward(models: Models, batch: Batch, pairs: Tensor, sums: dict[str, Tensor], cfg: TrainConfig) -> Metrics:
    """Accumulate d(mean loss over these pairs)/d(params) over micro-batches of pairs; return mean metrics."""
    metrics: Metrics = {}
    loss_fn = PREFERENCE_LOSSES[ONLINE_PREFERENCE[cfg.algorithm.name]]
    for micro in microbatches(torch.arange(len(pairs)), cfg.micro_batch_size):
        share = len(micro) / len(pairs)
        win, lose = pairs[micro, 0], pairs[micro, 1]
        rows = torch.isin(batch.row_episode, pairs[micro].flatten()).nonzero().squeeze(1)
        with autocast(cfg):
            policy = episode_sums(_row_logps(models.model, batch, rows, cfg).float(), batch, rows)
            device = policy.device
            ref, old, ret = (sums[k].to(device) for k in ("ref", "old", "return"))
            pair = PairLogps.from_sums(policy[win], policy[lose], ref[win], ref[lose], prev_chosen=old[win],
                                       prev_rejected=old[lose], old_chosen=old[win], old_rejected=old[lose],
                                       chosen_reward=ret[win], rejected_reward=ret[lose])
            loss, m = loss_fn(pair, **loss_kwargs(cfg.algorithm))
        (loss * share).backward()
        for key, value in {"losses/pref_loss": loss.item(), **{f"losses/{k}": v for k, v in m.items()}}.items():
            metrics[key] = metrics.get(key, 0.0) + share * value
    return metrics
