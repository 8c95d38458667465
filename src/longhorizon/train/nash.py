"""Nash-MD and Nash-MP on episodes: the policy's episodes against opponent episodes (`algorithm.name`).

    longhorizon train recipes/prefs/nash-md.yaml

A step samples `group_size` episodes of each of `tasks_per_step` tasks with the
policy (y) and as many opponent episodes of the same tasks (y'); pair k of a
task is (y_k, y'_k). The labeller gives p = P(y ≻ y'): by default the verifier,
1 when y's return is higher, 1/2 on a tie, 0 otherwise; a reward model,
preference model or judge gives a soft p (`algorithm.labeller`, `feedback/labellers.py`). Then `epochs * num_minibatches` updates of the loss
(`algorithms.PREFERENCE_LOSSES`), which only differentiates through y:

- nash_md (Munos et al. 2024, methods.md §9a, TRL's practical loss): every turn
  of y' is sampled from the geometric mixture pi^(1-m) pi_ref^m
  (`algorithm.mixture_coef`, `models/mixture.py`); loss
  beta * sum_t (log pi - log pi_ref)_t.detach() log pi_t - (p - 1/2) sum_t log pi_t.
- nash_mp (Tiapkin et al. 2025, methods.md §9b; the practical loss is NOT FOUND,
  see `algorithms/preference.py` choice 3): mirror prox, two proximal
  half-steps from pi_k, each Nash-MD's loss plus KL(pi || pi_k) / eta
  (`algorithm.prox_eta`). Half-step 1 plays y against y' ~ pi_k and moves the
  weights to pi_{k+1/2}; y'' is sampled from pi_{k+1/2}; the weights and the
  optimizer state go back to pi_k; half-step 2 plays the same y against y''.
  Both anchor the proximal term at pi_k = the behaviour log-probs of y.

A side's log-probs are those of every token the model sampled in the episode, over
all the rows its context strategy made, under softmax(logits / temperature) as in
the RL loop. Opponents are sampled by a fresh sampler per step, seeded from
(seed, step), so a resumed run draws the same opponents; they never reach a
memory store (`strategy.frozen()`). The held-out evaluation, checkpoints (exact
resume), metrics and the exported model are the session's, as for every trainer.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from longhorizon.algorithms import PREFERENCE_LOSSES, PairLogps
from longhorizon.feedback.labellers import Labeller, episode_candidates, verifier
from longhorizon.models import SamplingParams, TransformersSampler
from longhorizon.models.mixture import mixture_processors
from longhorizon.rollout import ModelPolicy, run_episodes
from longhorizon.train.batch import Batch, by_prompt, collate, microbatches
from longhorizon.train.config import TrainConfig
from longhorizon.train.loop import rollout_metrics, task_specs
from longhorizon.train.memory import release_memory
from longhorizon.train.metrics import peak_memory_mb
from longhorizon.train.model import Models, autocast, reference, token_forward
from longhorizon.train.online import LabelledRun
from longhorizon.train.session import OnLog, Session, TrainResult, mean_metrics, run_updates, write_trajectories
from longhorizon.types import Trajectory

Metrics = dict[str, float]
OPPONENT_SEED = 104_729  # opponents of step k sample from seed + OPPONENT_SEED * (k + 1), apart from the policy's
# What a one-sided pair loss reports (the opponent's log-probs are never computed).
KEPT_METRICS = ("chosen_logratio", "chosen_reward", "preference_prob", "kl", "kl_prev")


def train_nash(cfg: TrainConfig, *, resume: bool = False, on_log: OnLog | None = None) -> TrainResult:
    """Train the policy against opponent episodes (nash_md, nash_mp); return before/after evals."""
    run = LabelledRun.open(cfg, resume, on_log)  # shared with train/online.py
    session, models, optimizer, scheduler = run.session, run.models, run.optimizer, run.scheduler
    prefer = lambda ours, theirs: preferences(ours, theirs, run.labeller, run.systems(ours))  # noqa: E731
    step, position = run.step, run.position

    session.evaluate_first(step)
    while step < cfg.steps:
        release_memory()
        t_start = time.perf_counter()

        # 1. The policy's episodes y, the opponents y', their verifier preferences; reference log-probs of y.
        trajectories = run.collect(position)
        opponents = opponent_episodes(cfg, models, session, position, step, mixture=cfg.algorithm.name == "nash_md")
        batch = collate(trajectories, session.strategy, models.tokenizer.pad_token_id)
        ref = reference_tokens(models, batch, cfg)

        # 2. K epochs of updates; Nash-MP's second half-step replays them from pi_k against pi_{k+1/2}.
        prefs = prefer(trajectories, opponents)
        pi_k = Snapshot.take(models, optimizer, scheduler) if cfg.algorithm.name == "nash_mp" else None
        updates = update(models, optimizer, scheduler, batch, ref, prefs, cfg)
        metrics: Metrics = {"charts/opponent_reward_mean": rollout_metrics(opponents)["charts/reward_mean"]}
        if pi_k is not None:
            midpoint = opponent_episodes(cfg, models, session, position, step, mixture=False, half=True)
            pi_k.restore(models, optimizer, scheduler)
            metrics.update({f"half1/{k.split('/', 1)[1]}": v for k, v in mean_metrics(updates).items()},
                           **{"charts/midpoint_win_rate": float(prefer(trajectories, midpoint).mean()),
                              "charts/midpoint_reward_mean": rollout_metrics(midpoint)["charts/reward_mean"]})
            updates = update(models, optimizer, scheduler, batch, ref, prefer(trajectories, midpoint), cfg)
        position += cfg.tasks_per_step
        step += 1

        # 3. Log, evaluate every M steps, checkpoint every N steps.
        if cfg.save_trajectories:
            write_trajectories(session.path / "trajectories" / f"step_{step:06d}.jsonl", trajectories)
        session.record(step, {**rollout_metrics(trajectories), **mean_metrics(updates), **metrics,
                              "charts/win_rate": float(prefs.mean()), "charts/updates": float(len(updates)),
                              "charts/learning_rate": scheduler.get_last_lr()[0],
                              "perf/step_time": time.perf_counter() - t_start,
                              "perf/peak_memory_mb": peak_memory_mb(cfg.device)})
        session.end_step(step, position)

    return session.finish(step)


@dataclass
class Snapshot:
    """Nash-MP's pi_k: the trainable weights, the optimizer state and the schedule before half-step 1."""

    weights: dict[str, Tensor]
    optimizer: dict
    scheduler: dict

    @classmethod
    def take(cls, models: Models, optimizer, scheduler) -> "Snapshot":
        weights = {n: p.detach().clone() for n, p in models.model.named_parameters() if p.requires_grad}
        return cls(weights, copy.deepcopy(optimizer.state_dict()), copy.deepcopy(scheduler.state_dict()))

    @torch.no_grad()
    def restore(self, models: Models, optimizer, scheduler) -> None:
        for name, param in models.model.named_parameters():
            if name in self.weights:
                param.copy_(self.weights[name])
        optimizer.load_state_dict(self.optimizer)
        scheduler.load_state_dict(self.scheduler)


# ------------------------------------------------------------------ opponents and preferences


def opponent_episodes(cfg: TrainConfig, models: Models, session: Session, position: int, step: int, *,
                      mixture: bool, half: bool = False) -> list[Trajectory]:
    """The opponents of the step's tasks (the same specs as the policy's episodes), from a fresh sampler seeded
    by (seed, step): the geometric mixture of policy and reference (Nash-MD) or the current policy (Nash-MP)."""
    seed = cfg.seed + OPPONENT_SEED * (step + 1) + (OPPONENT_SEED // 2 if half else 0)
    params = SamplingParams(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, stop=tuple(cfg.stop),
                            seed=seed)
    processors = mixture_processors(lambda: reference(models), cfg.algorithm.mixture_coef) if mixture else None
    sampler = TransformersSampler(models.model, models.tokenizer, params, kv_cache_bytes=0, processors=processors)
    models.model.eval()
    with autocast(cfg), session.strategy.frozen():  # opponents never reach a memory store
        return run_episodes(task_specs(cfg, position), ModelPolicy(sampler, session.strategy, prefill=cfg.prefill))


def preferences(episodes: list[Trajectory], opponents: list[Trajectory], labeller: Labeller = verifier,
                systems: list[str | None] | None = None) -> Tensor:
    """(N,) P(y_i ≻ y'_i) by the labeller; the verifier's is 1 if y_i's return is higher, 1/2 on a tie, 0 if lower."""
    pairs = [(i, i) for i in range(len(episodes))]
    return torch.tensor([lab.prob for lab in labeller(episode_candidates(episodes, pairs, systems, opponents))],
                        dtype=torch.float32)


# ------------------------------------------------------------------ log-probs per episode


@torch.no_grad()
def reference_tokens(models: Models, batch: Batch, cfg: TrainConfig) -> Tensor:
    """(B, T) reference log-probs of every sampled token, in micro-batches of rows."""
    ref = torch.zeros_like(batch.old_logprobs)
    order = torch.arange(batch.rows)
    order = order[by_prompt(batch, order)] if cfg.share_prefix else order
    device = next(models.model.parameters()).device
    for rows in microbatches(order, cfg.micro_batch_size):
        mb = batch.select(rows)
        with autocast(cfg), reference(models) as ref_model:
            lp = token_forward(ref_model, mb.input_ids.to(device), mb.attention_mask.to(device), mb.loss_mask.to(device),
                               cfg.temperature, share_prefix=cfg.share_prefix).logprobs
        ref[rows, : lp.shape[1]] = lp.float().cpu()
    return ref


def episode_tokens(values: Tensor, mask: Tensor, row_episode: Tensor, episodes: Tensor) -> tuple[Tensor, Tensor]:
    """Each episode's sampled-token values, its rows' masked entries in row order: `values`, `mask` (b, t) of
    rows belonging to `row_episode` (b,) → (P, L) padded values and (P, L) mask for `episodes` (P,)."""
    keep = mask.bool()
    rows = [torch.cat([values[r][keep[r]] for r in (row_episode == e).nonzero().squeeze(1).tolist()])
            for e in episodes.tolist()]
    lengths = torch.tensor([len(r) for r in rows])
    padded = pad_sequence(rows, batch_first=True)
    return padded, torch.arange(padded.shape[1])[None, :] < lengths[:, None].to(padded.device)


# ------------------------------------------------------------------ the update


def update(models: Models, optimizer, scheduler, batch: Batch, ref: Tensor, prefs: Tensor,
           cfg: TrainConfig) -> list[Metrics]:
    """`epochs * num_minibatches` optimizer updates over the step's episodes (pair i: y_i against its opponent)."""
    return run_updates(cfg, models, optimizer, scheduler, torch.arange(len(prefs)),
                       lambda mb: episodes_backward(models, batch, ref, prefs, mb, cfg))


def episodes_backward(models: Models, batch: Batch, ref: Tensor, prefs: Tensor, episodes: Tensor,
                      cfg: TrainConfig) -> Metrics:
    """Accumulate d(mean loss over these episodes' pairs)/d(params) over micro-batches of episodes."""
    a = cfg.algorithm
    loss_fn = PREFERENCE_LOSSES[a.name]
    kwargs = {"beta": a.beta} if a.name == "nash_md" else {"beta": a.beta, "eta": a.prox_eta}
    device = next(models.model.parameters()).device
    metrics: Metrics = {}
    for micro in microbatches(episodes, cfg.micro_batch_size):
        share = len(micro) / len(episodes)
        rows = torch.isin(batch.row_episode, micro).nonzero().squeeze(1)
        mb = batch.select(rows)
        width = mb.input_ids.shape[1]
        with autocast(cfg):
            lp = token_forward(models.model, mb.input_ids.to(device), mb.attention_mask.to(device),
                               mb.loss_mask.to(device), cfg.temperature, share_prefix=cfg.share_prefix).logprobs.float()
        mask = mb.loss_mask.to(device)
        side = lambda x: episode_tokens(x, mask, mb.row_episode, micro)[0]  # noqa: E731
        chosen, chosen_mask = episode_tokens(lp, mask, mb.row_episode, micro)
        none = torch.zeros(len(micro), 1, device=device)  # the opponent side: no log-probs, masked out
        pair = PairLogps(chosen, none, side(ref[rows, :width].to(device)), none, chosen_mask, none.bool(),
                         prev_chosen=side(batch.old_logprobs[rows, :width].to(device)), preference=prefs[micro].to(device))
        loss, m = loss_fn(pair, **kwargs)
        (loss * share).backward()
        kept = {k: v for k, v in m.items() if k in KEPT_METRICS}
        for key, value in {"losses/pref_loss": loss.item(), **{f"losses/{k}": v for k, v in kept.items()}}.items():
            metrics[key] = metrics.get(key, 0.0) + share * value
    return metrics
