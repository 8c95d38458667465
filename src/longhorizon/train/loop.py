"""The training loop, top to bottom: collect → rewards → advantages → K epochs of updates → log → eval → checkpoint.

    from longhorizon.train import load_config, train
    result = train(load_config("recipes/quickstart.yaml"))

Each step samples `group_size` episodes of `tasks_per_step` tasks (task k
uses env seed `seed + k`, so the data position is just k), computes
advantages with the configured algorithm (`train/credit.py`), then makes
`epochs * num_minibatches` optimizer updates. The loss covers only sampled
tokens and uses the behaviour log-probs recorded when they were sampled;
nothing is re-tokenised.

Departures and choices:
1. Log-probs for the ratio, the KL and the entropy are taken under
   softmax(logits / temperature), the sampling distribution (so the ratio
   is 1 before the first update). Training rollouts must sample with
   top_p = 1 for that to hold, so the config has no top_p.
2. Minibatches are drawn by shuffling the step's rows with the global torch
   RNG, which is saved in every checkpoint.
3. Evaluations use their own sampler, with fixed seeds, and do not touch
   the training RNGs: evaluating more often does not change training.
4. `sampler: vllm` samples rollouts (and the held-out evaluations) with an
   in-process vLLM engine (`models/vllm_sampler.py`). After each step's
   updates, and after a resume, the trainer's weights are loaded into it
   (`sync_weights`, LoRA merged; `perf/sync_time`). The loss still covers
   exactly the sampled ids with vLLM's behaviour log-probs; those come from
   vLLM's kernels, so the first PPO ratio is 1 only up to about 1e-4 (fp32).
5. `rollout.workers: N` samples the episodes on N Ray actors
   (`rollout/ray_workers.py`), each unit of groups from its own seed, and
   broadcasts the weights to them after each step's updates.
6. `rollout.max_staleness: k` (with workers) trains asynchronously
   (`rollout/asynchronous.py`, ASearcher): the workers sample the coming
   steps' units while the trainer updates, each step trains on the first
   units to finish, and none is more than k weight versions old.
   `algorithm.decoupled` then clips the ratio to the trainer's weights
   before the step (pi_prox, one no-grad pass over the rows with a
   gradient, after the credit) and weights each token by pi_prox /
   pi_behaviour (AReaL's decoupled PPO).
7. `algorithm.name: critique_grpo` collects each task's G - 1 episodes,
   critiques them, samples refinements and keeps one per task
   (`train/critique.py`); its rows take the policy-shaping loss.
8. Launched in several processes (`--launcher accelerate`,
   `train/distributed.py`), rank 0 samples and sends the episodes, each
   rank trains its share of every minibatch and the gradients are summed
   over the ranks: the result is one process's.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from longhorizon.algorithms import behaviour_weights, kl_penalty
from longhorizon.eval.horizon import mean_env_metrics
from longhorizon.models import LoadedModel, SamplingParams, make_sampler
from longhorizon.rollout import EpisodeSpec, ModelPolicy, run_episodes
from longhorizon.rollout.asynchronous import AsyncRollouts
from longhorizon.rollout.ray_workers import RolloutPool, Unit, WorkerSpec, make_units
from longhorizon.store import first_missing
from longhorizon.train import critique, curriculum, exploration
from longhorizon.train.batch import Batch, by_prompt, collate, microbatches, with_credit
from longhorizon.train.checkpoint import Resumable, latest_checkpoint
from longhorizon.errors import UserError
from longhorizon.train.config import (NASH, OFFLINE_PREFERENCE, ONLINE_PREFERENCE, PREFERENCE_MODELS,
                                        REACTION_MODELS, STATEFUL_CONTEXTS, SUPERVISED, TrainConfig)
from longhorizon.train.distributed import DataParallel
from longhorizon.train.credit import ALGORITHMS, Algorithm
from longhorizon.train.memory import release_memory
from longhorizon.train.metrics import peak_memory_mb, read_records
from longhorizon.train.model import Models, autocast, build_models, reference, token_forward
from longhorizon.train.optim import build_optimizer
from longhorizon.train.reward_sources import RewardSources
from longhorizon.train.rewards import RewardNormalizer
from longhorizon.train.session import OnLog, Session, TrainResult, mean_metrics, run_updates, write_trajectories
from longhorizon.train.update import has_gradient, minibatch_backward
from longhorizon.types import Trajectory


def train(cfg: TrainConfig, *, resume: bool = False, on_log: OnLog | None = None) -> TrainResult:
    """Train (or, with `resume`, continue from RUN_DIR's latest checkpoint) and return before/after evals.

    A run that fails before it logged anything (a model that does not load, Ctrl-C during set-up) removes
    the run directory it created.
    """
    created = first_missing(cfg.run_dir)
    try:
        return _train(cfg, resume, on_log)
    except BaseException:
        if created is not None and not read_records(Path(cfg.run_dir)) and latest_checkpoint(Path(cfg.run_dir)) is None:
            shutil.rmtree(created, ignore_errors=True)
        raise


def _train(cfg: TrainConfig, resume: bool, on_log: OnLog | None) -> TrainResult:
    dp = DataParallel.from_environment(cpu=cfg.device == "cpu")  # several processes (accelerate launch): train/distributed.py
    if dp is not None:
        check_data_parallel(cfg)
        cfg = cfg.model_copy(update={"device": dp.device(cfg.device)})
    if cfg.algorithm.name in OFFLINE_PREFERENCE:  # dpo, ipo: a fixed set of pairs, not rollouts
        from longhorizon.train.offline import train_offline

        return train_offline(cfg, resume=resume, on_log=on_log)
    if cfg.algorithm.name in REACTION_MODELS:  # reaction_model: binary reaction labels, not rollouts
        from longhorizon.train.scorers import train_scorer

        return train_scorer(cfg, resume=resume, on_log=on_log)
    if cfg.algorithm.name in ONLINE_PREFERENCE:  # online_dpo, dno, inpo, p3o: pairs of the policy's own episodes
        from longhorizon.train.online import train_online

        return train_online(cfg, resume=resume, on_log=on_log)
    if cfg.algorithm.name in NASH:  # nash_md, nash_mp: the policy's episodes against opponent episodes
        from longhorizon.train.nash import train_nash

        return train_nash(cfg, resume=resume, on_log=on_log)
    if cfg.algorithm.name in SUPERVISED:  # sft: a fixed set of demonstrations
        from longhorizon.train.sft import train_sft

        return train_sft(cfg, resume=resume, on_log=on_log)
    session = Session.open(cfg, resume, on_log, dp=dp)
    algo = ALGORITHMS[cfg.algorithm.name]
    strategy = session.strategy
    models = build_models(cfg, needs_ref=algo.needs_ref(cfg.algorithm), value_head=algo.value_head)
    optimizer, scheduler = build_optimizer(cfg, models)
    params = SamplingParams(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                            stop=tuple(cfg.stop), seed=cfg.seed)
    sampler = make_sampler(cfg.sampler, cfg.model, params, dtype=cfg.dtype, vllm=cfg.vllm, kv_cache_mb=cfg.kv_cache_mb,
                           loaded=LoadedModel(cfg.model, models.model, models.tokenizer))  # vllm: synced by the loop
    policy = ModelPolicy(sampler, strategy, prefill=cfg.prefill)
    normalizer = RewardNormalizer(cfg.algorithm.reward_norm, cfg.algorithm.reward_clip)
    credit_state = exploration.CreditState.from_config(cfg)  # EPO history, SIREN anchor, ARPO replay
    sources = RewardSources.build(cfg.algorithm.rewards.components, session.path, cfg.dtype, cfg.env_kwargs,
                                  cfg.wrappers)  # judges and reward models, if any
    critic = (critique.Critic.build(cfg.algorithm.critique, session.path, cfg.dtype)
              if cfg.algorithm.name == "critique_grpo" else None)  # its critique model, if any
    step, position = session.start(Resumable(models, optimizer, scheduler, normalizer, sampler, strategy, credit_state))
    sampler.sync_weights(models.model)  # vllm: the engine starts from the trainer's weights (LoRA, a checkpoint)
    pool = RolloutPool(WorkerSpec.from_config(cfg), cfg.rollout) if cfg.rollout.workers else None  # Ray workers
    rollouts = None
    try:
        if pool:
            pool.sync(models.model)
        if pool and cfg.rollout.max_staleness is not None:  # ASearcher: the coming steps sampled while this one trains
            rollouts = asynchronous_rollouts(cfg, pool, position, credit_state)
        session.evaluate_first(step)
        while step < cfg.steps:
            release_memory()  # what the last update, eval or checkpoint freed
            t_start = time.perf_counter()

            # 1. Collect: G episodes of each task in one batched rollout, with the current weights (asynchronous:
            #    the first units to finish, sampled by weights at most max_staleness versions old).
            models.model.eval()
            async_metrics: dict[str, float] = {}
            critique_metrics: dict[str, float] = {}
            if rollouts:
                trajectories, async_metrics = rollouts.next_batch()
            else:
                specs, position = exploration.next_tasks(cfg, position, credit_state)  # = task_specs unless replay.task_pool or a task filter is set
                if session.main:
                    with autocast(cfg):
                        run = pool.collect if pool else (lambda s: run_episodes(s, policy))  # noqa: E731
                        if critic is not None:  # critique_grpo: G - 1 episodes, critiques, refinements, the kept one
                            trajectories, critique_metrics = critique.collect(specs, run, policy, critic)
                        else:
                            trajectories = run(specs)
                if dp is not None:  # rank 0 sampled; every rank trains on the same episodes
                    trajectories = dp.broadcast(trajectories if dp.main else None)
            curriculum_metrics = curriculum.update(cfg, credit_state.curriculum, credit_state.step, trajectories)  # sampled episodes only
            trajectories, replay_metrics = exploration.replay(trajectories, credit_state)  # ARPO (off by default)
            t_rollout = time.perf_counter()

            # 2. Rewards, then advantages: reference log-probs and values first (no grad), then the credit rule.
            batch = collate(trajectories, strategy, models.tokenizer.pad_token_id)
            decode = lambda ids: models.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731 (span rewards' text)
            batch.turn_rewards, batch.span_rewards, reward_metrics = exploration.shaped_turn_rewards(
                trajectories, batch, cfg.algorithm.rewards, decode, sources)
            batch.turn_rewards = normalizer(batch.turn_rewards, batch.turn_mask)
            t_score = time.perf_counter()
            batch, score_metrics = score(models, batch, cfg, algo)
            score_time = time.perf_counter() - t_score
            rollout_entropy = exploration.rollout_entropy(models, batch, cfg)  # None unless an entropy method needs it
            entropy_metrics = exploration.observe(credit_state, batch, rollout_entropy, cfg.algorithm.entropy)
            credit = algo.credit(batch, cfg.algorithm)
            credit = exploration.modulate_credit(credit, batch, rollout_entropy, cfg.algorithm.entropy)  # EMPG
            batch = with_credit(batch, advantages=credit.advantages, loss_mask=credit.loss_mask, returns=credit.returns)
            if cfg.algorithm.decoupled:  # pi_prox, for the rows the update will run
                t_prox = time.perf_counter()
                batch, prox_metrics = proximal_logprobs(models, batch, cfg, algo)
                score_metrics.update(prox_metrics)
                score_time += time.perf_counter() - t_prox

            # 3. K epochs of minibatch updates (rows LOOP filtered out carry no mask and are skipped).
            release_memory()  # what generate freed, before the update's peak
            rows = batch.loss_mask.bool().any(1).nonzero().squeeze(1)
            updates = run_updates(cfg, models, optimizer, scheduler, rows,
                                  lambda mb: minibatch_backward(models, batch, mb, cfg, algo, credit_state, dp), dp)
            t_sync = time.perf_counter()
            sampler.sync_weights(models.model)  # vllm: the engine samples the next step with the new weights
            if rollouts:
                rollouts.publish(models.model)  # each worker takes the new weights with its next unit
                position = rollouts.first_untrained_task()
            elif pool:
                pool.sync(models.model)  # the workers sample the next step with the new weights
            step += 1
            credit_state.step = step
            t_end = time.perf_counter()

            # 4. Log, evaluate every M steps, checkpoint every N steps.
            if cfg.save_trajectories:
                write_trajectories(session.path / "trajectories" / f"step_{step:06d}.jsonl", trajectories)
            session.record(step, {
                **rollout_metrics(trajectories), **{f"credit/{k}": v for k, v in credit.metrics.items()},
                **score_metrics, **mean_metrics(updates), "charts/updates": float(len(updates)),
                **replay_metrics, **reward_metrics, **entropy_metrics, **curriculum_metrics,
                "charts/rows_trained": float(len(rows)), "charts/learning_rate": scheduler.get_last_lr()[0],
                **perf_metrics(trajectories, batch, rows, cfg, t_start, t_rollout, t_end, score_time),
                "perf/sync_time": t_end - t_sync, **(pool.metrics() if pool else {}), **async_metrics,
                **critique_metrics,
            })
            session.end_step(step, position)
    finally:
        if rollouts:
            rollouts.close()
        if pool:
            pool.close()
        sources.close()
        if critic is not None:
            critic.close()
    return session.finish(step)


# ------------------------------------------------------------------ helpers of the loop


def asynchronous_rollouts(cfg: TrainConfig, pool: RolloutPool, position: int,
                          credit_state: exploration.CreditState) -> AsyncRollouts:
    """The workers sampling the coming steps' units (`rollout/asynchronous.py`), from data position `position`:
    the same units, with the same seeds, that the synchronous pool would run step after step."""
    cursor = {"position": position}

    def next_units() -> list[Unit]:  # called by the dispatcher thread, one step at a time
        start = cursor["position"]
        specs, cursor["position"] = exploration.next_tasks(cfg, start, credit_state)  # no task filter, no curriculum
        return make_units(specs, cfg.seed, cfg.rollout.groups_per_unit)

    per_step = math.ceil(cfg.tasks_per_step / cfg.rollout.groups_per_unit)
    return AsyncRollouts(pool, next_units, per_step, cfg.rollout.max_staleness, next_task=lambda: cursor["position"])


def check_data_parallel(cfg: TrainConfig) -> None:
    """What several training processes cannot do yet, refused before any model loads."""
    if cfg.algorithm.name in (*OFFLINE_PREFERENCE, *ONLINE_PREFERENCE, *NASH, *SUPERVISED, *PREFERENCE_MODELS,
                               *REACTION_MODELS):
        raise UserError(f"several training processes train the RL algorithms only, not {cfg.algorithm.name}: "
                        "run it in one process")
    if cfg.sampler != "transformers":
        raise UserError("several training processes sample with transformers on rank 0; with sampler: vllm run "
                        "one process")
    if cfg.rollout.workers:
        raise UserError("several training processes with Ray rollout workers are not supported yet: set "
                        "rollout.workers: 0, or run one process")
    if cfg.context in STATEFUL_CONTEXTS:
        raise UserError(f"several training processes need a context without cross-episode state, not {cfg.context!r}")


def task_specs(cfg: TrainConfig, position: int) -> list[EpisodeSpec]:
    """group_size episodes of each of the next tasks_per_step tasks (task k: env seed seed + k, group k, the
    knobs of `task_mix` at position k)."""
    return [EpisodeSpec(cfg.env_id, seed=cfg.seed + k, env_kwargs=exploration.task_env_kwargs(cfg, k), group_id=k,
                        wrappers=cfg.wrappers)
            for k in range(position, position + cfg.tasks_per_step) for _ in range(cfg.algorithm.group_size)]


@torch.no_grad()
def score(models: Models, batch: Batch, cfg: TrainConfig, algo: Algorithm) -> tuple[Batch, dict[str, float]]:
    """Reference log-probs (for a KL term) and value predictions (ppo) of every row, before any update."""
    needs_ref = algo.needs_ref(cfg.algorithm)
    ref = torch.zeros_like(batch.old_logprobs) if needs_ref else None
    values = torch.zeros_like(batch.old_logprobs) if algo.value_head else None
    device = next(models.model.parameters()).device
    order = torch.arange(batch.rows)
    if cfg.share_prefix:
        order = order[by_prompt(batch, order)]  # rows sharing a prompt in the same micro-batches
    share = {"share_prefix": cfg.share_prefix}
    for rows in microbatches(order, cfg.micro_batch_size):
        mb = batch.select(rows)
        inputs = (mb.input_ids.to(device), mb.attention_mask.to(device), mb.loss_mask.to(device), cfg.temperature)
        width = mb.input_ids.shape[1]
        with autocast(cfg):
            if needs_ref:
                with reference(models) as ref_model:
                    ref[rows, :width] = token_forward(ref_model, *inputs, **share).logprobs.cpu()
            if values is not None:
                values[rows, :width] = token_forward(models.model, *inputs, value_head=models.value_head,
                                                     **share).values.cpu()
    metrics = {}
    if needs_ref:
        kl = kl_penalty(batch.old_logprobs, ref, batch.loss_mask, estimator=cfg.algorithm.kl_estimator)
        metrics["losses/kl_ref_behaviour"] = (kl.sum() / batch.loss_mask.sum().clamp(min=1)).item()
    return with_credit(batch, ref_logprobs=ref, old_values=values), metrics


@torch.no_grad()
def proximal_logprobs(models: Models, batch: Batch, cfg: TrainConfig, algo: Algorithm) -> tuple[Batch, dict[str, float]]:
    """Decoupled PPO's pi_prox: the log-probs under the weights before this step's updates, for the rows whose
    loss has a gradient (the others are never run: their behaviour log-probs stand in), and the behaviour
    weights' mean and capped fraction over those rows."""
    prox = batch.old_logprobs.clone()
    live = has_gradient(batch, torch.arange(batch.rows), cfg, algo).nonzero().squeeze(1)
    device = next(models.model.parameters()).device
    if cfg.share_prefix:
        live = live[by_prompt(batch, live)]
    for rows in microbatches(live, cfg.micro_batch_size) if len(live) else []:
        mb = batch.select(rows)
        width = mb.input_ids.shape[1]
        with autocast(cfg):
            prox[rows, :width] = token_forward(models.model, mb.input_ids.to(device), mb.attention_mask.to(device),
                                               mb.loss_mask.to(device), cfg.temperature,
                                               share_prefix=cfg.share_prefix).logprobs.cpu()
    w = behaviour_weights(prox[live], batch.old_logprobs[live], batch.loss_mask[live], cap=math.inf)
    on = batch.loss_mask[live].bool()
    metrics = {"losses/prox_rows": float(len(live)),
               "losses/behaviour_weight_mean": w[on].mean().item() if on.any() else 1.0,
               "losses/behaviour_weight_capped": (w[on] > cfg.algorithm.behaviour_weight_cap).float().mean().item()
               if on.any() else 0.0}
    return with_credit(batch, prox_logprobs=prox * batch.loss_mask), metrics


def rollout_metrics(trajectories: list[Trajectory]) -> dict[str, float]:
    """The step's returns, successes and lengths, and the mean of every metric the env reported (`env/NAME`,
    e.g. LongWrite's length and checklist scores, Execution's correct turns)."""
    returns = np.array([t.total_reward for t in trajectories], dtype=float)
    return {"charts/reward_mean": float(returns.mean()), "charts/reward_std": float(returns.std()),
            "charts/success_rate": float(np.mean([bool(t.success) for t in trajectories])),
            "charts/episode_turns": float(np.mean([len(t.turns) for t in trajectories])),
            "charts/episodes": float(len(trajectories)),
            **{f"env/{k}": v for k, v in mean_env_metrics(trajectories).items()}}


def perf_metrics(trajectories: list[Trajectory], batch: Batch, rows: torch.Tensor, cfg: TrainConfig,
                 t_start: float, t_rollout: float, t_end: float, score_time: float) -> dict[str, float]:
    """Times of the step; perf/update_time runs from the rollout's end, so it includes perf/score_time."""
    sampled = sum(len(turn.action_ids) for t in trajectories for turn in t.turns)
    trained = float(batch.attention_mask[rows].sum()) * cfg.epochs
    return {"perf/step_time": t_end - t_start, "perf/rollout_time": t_rollout - t_start,
            "perf/update_time": t_end - t_rollout, "perf/score_time": score_time, "perf/sampled_tokens": float(sampled),
            "perf/tokens_per_s": sampled / (t_end - t_start),
            "perf/train_tokens_per_s": trained / max(t_end - t_rollout, 1e-9),
            "perf/peak_memory_mb": peak_memory_mb(cfg.device)}
