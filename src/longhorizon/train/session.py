"""What every trainer does around its steps: the run directory, resume, logging, held-out evals, checkpoints, the end.

The RL loop (`train/loop.py`), offline preference training (`train/offline.py`)
and online preference training (`train/online.py`) differ only in what one
step does. Each one:

    session = Session.open(cfg, resume, on_log)        # run dir, malloc tuning, context strategy, seeds, threads
    models = build_models(cfg, ...); ...               # its own models, optimizer, sampler
    step, position = session.start(Resumable(...))    # restore the latest checkpoint (with resume), open the log
    session.evaluate(0) if step == 0 ...               # before any training
    while step < cfg.steps:
        ...; step += 1
        session.record(step, metrics)
        session.end_step(step, position)               # eval every M steps, checkpoint every N
    return session.finish()                             # final eval, export, curves
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from longhorizon.context import ContextStrategy, make_strategy
from longhorizon.errors import UserError
from longhorizon.io import atomic_dir, atomic_write
from longhorizon.store import RunDir
from longhorizon.train.checkpoint import Resumable, clean_partial, latest_checkpoint, load_checkpoint, save_checkpoint
from longhorizon.train.config import OFFLINE_PREFERENCE, REACTION_MODELS, SUPERVISED, TrainConfig
from longhorizon.train.distributed import DataParallel
from longhorizon.train.evaluate import held_out_eval
from longhorizon.train.memory import tune_malloc
from longhorizon.train.metrics import MetricsLog, plot_curves, read_records
from longhorizon.train.model import Models, autocast
from longhorizon.types import Trajectory, save_trajectories

OnLog = Callable[[int, dict[str, float]], None]
Metrics = dict[str, float]


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    eval_before: dict[str, float] | None
    eval_after: dict[str, float] | None
    plot: Path


@dataclass
class Session:
    """One training run's directory, log and checkpoints; `start` binds the trainer's resumable state."""

    cfg: TrainConfig
    run: RunDir
    strategy: ContextStrategy
    on_log: OnLog | None = None
    resume: bool = False
    state: Resumable | None = None
    log: MetricsLog | None = field(default=None, repr=False)
    dp: DataParallel | None = None  # several training processes (train/distributed.py): rank 0 alone writes

    @classmethod
    def open(cls, cfg: TrainConfig, resume: bool, on_log: OnLog | None = None,
             dp: DataParallel | None = None) -> "Session":
        """Check the set-up, write the run's config, and make the context strategy; then seed every RNG (before
        any model is built, so LoRA and value-head initialisations are seeded). With `dp`, rank 0 prepares the
        run directory while the others wait."""
        if dp is None or dp.main:
            run = prepare_run_dir(cfg, resume)
        if dp is not None:
            dp.barrier()
            run = run if dp.main else RunDir(cfg.run_dir)
        tune_malloc()  # large tensors go back to the system when freed (train/memory.py)
        strategy = make_strategy(cfg.context, **cfg.context_options)
        strategy.attach(run.path)
        seed_everything(cfg.seed)
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        return cls(cfg, run, strategy, on_log, resume, dp=dp)

    @property
    def main(self) -> bool:
        """Whether this process writes (the only one, or rank 0 of several)."""
        return self.dp is None or self.dp.main

    @property
    def path(self) -> Path:
        return self.run.path

    def start(self, state: Resumable) -> tuple[int, int]:
        """Restore the latest checkpoint into `state` (when resuming and there is one) and open the metrics log,
        cut back to that step; return (step, data position)."""
        self.state = state
        step, position, resume_step = 0, 0, None
        if self.resume and (checkpoint := latest_checkpoint(self.path)) is not None:
            restored = load_checkpoint(checkpoint, state)
            step, position, resume_step = restored["step"], restored["data_position"], restored["step"]
        self.log = MetricsLog(self.path, resume_step=resume_step) if self.main else None
        return step, position

    def record(self, at: int, metrics: Metrics) -> None:
        if not self.main:
            return
        self.log.log(at, metrics)
        if self.on_log:
            self.on_log(at, metrics)

    def evaluate(self, at: int) -> None:
        """The held-out episodes with the current weights, saved under eval/ and logged at step `at` (rank 0)."""
        if not self.main:
            return
        self.state.models.model.eval()
        with autocast(self.cfg), self.strategy.frozen():  # held-out episodes never reach a memory store
            trajectories, metrics = held_out_eval(self.cfg, self.state.sampler, self.strategy)
        write_trajectories(self.path / "eval" / f"step_{at:06d}.jsonl", trajectories)
        self.record(at, metrics)

    def evaluate_first(self, step: int) -> None:
        if step == 0 and self.cfg.eval.episodes:
            self.evaluate(0)  # before any training

    def end_step(self, step: int, position: int) -> None:
        """Evaluate every `eval.every` steps (the last step's eval is `finish`'s), checkpoint every N steps."""
        cfg = self.cfg
        if cfg.eval.episodes and cfg.eval.every and step % cfg.eval.every == 0 and step < cfg.steps:
            self.evaluate(step)
        if cfg.checkpoint_every and (step % cfg.checkpoint_every == 0 or step == cfg.steps) and self.main:
            save_checkpoint(self.path, self.state, step, position, cfg.keep_checkpoints)

    def finish(self, step: int) -> TrainResult:
        """The after-training eval (unless a resumed run already has it), the exported model, the curves."""
        cfg = self.cfg
        if not self.main:  # the other ranks wait for rank 0's writes, then report the same run
            self.dp.barrier()
            return TrainResult(run_dir=self.path, step=step, eval_before=None, eval_after=None,
                               plot=self.path / "curves.png")
        if cfg.eval.episodes and eval_record(self.path, cfg.steps) is None:
            self.evaluate(cfg.steps)
        self.log.close()
        if cfg.save_final_model:
            export_model(self.state.models, self.path / "model", bf16=cfg.dtype == "bfloat16" or cfg.autocast_bf16)
        result = TrainResult(run_dir=self.path, step=step, eval_before=eval_record(self.path, 0),
                             eval_after=eval_record(self.path, cfg.steps),
                             plot=plot_curves(self.path, self.path / "curves.png"))
        if self.dp is not None:
            self.dp.barrier()
        return result


def run_updates(cfg: TrainConfig, models: Models, optimizer: Any, scheduler: Any, rows: torch.Tensor,
                backward: Callable[[torch.Tensor], Metrics], dp: DataParallel | None = None) -> list[Metrics]:
    """`epochs * num_minibatches` optimizer updates: each epoch shuffles `rows` (global torch RNG) into
    minibatches, `backward(minibatch)` accumulates the gradient and returns its metrics, then the gradient is
    clipped, stepped and freed. Returns every update's metrics. With `dp`, rank 0's shuffle is used by every
    rank, `backward` runs this rank's share and the gradients are summed over the ranks before clipping."""
    from longhorizon.train.batch import minibatches
    from longhorizon.train.optim import clip_gradients, trainable

    models.model.train()
    updates: list[Metrics] = []
    for _epoch in range(cfg.epochs):
        split = minibatches(rows, cfg.num_minibatches)
        if dp is not None:
            split = dp.broadcast(split)
        for minibatch in split:
            metrics = backward(minibatch)
            if dp is not None:
                dp.all_reduce_gradients(trainable(models))
            metrics["losses/grad_norm"] = clip_gradients(trainable(models), cfg.optim.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)  # now, not before the next backward: rollouts and evals run without them
            updates.append(metrics)
    return updates


def transformers_sampler(cfg: TrainConfig, models: Models) -> Any:
    """The trainer's sampler on its live model (held-out evals; rollouts for the online trainers)."""
    from longhorizon.models import LoadedModel, SamplingParams, make_sampler

    params = SamplingParams(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, stop=tuple(cfg.stop),
                            seed=cfg.seed)
    return make_sampler("transformers", cfg.model, params, dtype=cfg.dtype, kv_cache_mb=cfg.kv_cache_mb,
                        loaded=LoadedModel(cfg.model, models.model, models.tokenizer))


def export_model(models: Models, path: Path, bf16: bool = False) -> Path:
    """A loadable Hugging Face directory (LoRA merged into a copy; bf16 weights with `bf16`), written atomically.

    Written once, at the end of training: resumable state lives in the checkpoints.
    """
    model = copy.deepcopy(models.model).merge_and_unload() if models.lora else models.model
    if bf16:
        model = (model if models.lora else copy.deepcopy(model)).to(torch.bfloat16)  # the trainer's copy stays fp32
    return atomic_dir(path, lambda tmp: (model.save_pretrained(tmp), models.tokenizer.save_pretrained(tmp)))


def prepare_run_dir(cfg: TrainConfig, resume: bool) -> RunDir:
    check_setup(cfg)
    run = RunDir(cfg.run_dir)
    if not resume and latest_checkpoint(run.path) is not None:
        raise UserError(f"{run.path} already holds a training run: continue it with --resume {run.path}, "
                        "or choose another run_dir")
    clean_partial(run.path)
    run.write_config(cfg.model_dump())
    return run


def check_setup(cfg: TrainConfig) -> None:
    """Fail fast, before any model loads: unknown env, bad knobs or wrappers, unknown context strategy or model,
    unreadable preference pairs (dpo, ipo), reaction labels (reaction_model) or demonstrations (sft), a `reaction`
    reward component whose model is not a reaction model."""
    import gymnasium as gym

    from longhorizon.envs.core.knobs import KnobError
    from longhorizon.envs.core.wrappers import apply_wrappers
    from longhorizon.models import MODEL_LOADERS
    from longhorizon.models.settings import require_vllm
    from longhorizon.rollout.ray_workers import require_ray

    if cfg.env_id not in gym.registry:
        raise UserError(f"env_id: unknown env {cfg.env_id!r}; `longhorizon envs` lists them")
    mixes = [{}] + [{key: value} for key, values in cfg.task_mix.items() for value in values]
    for mix in mixes:  # env_kwargs, then each task_mix value over them
        where = "env_kwargs" if not mix else f"task_mix {next(iter(mix))}={next(iter(mix.values()))!r}"
        try:
            apply_wrappers(gym.make(cfg.env_id, **{**cfg.env_kwargs, **mix}), cfg.wrappers).close()
        except KnobError as err:
            raise UserError(f"{where}: {err}") from None
        except (TypeError, ValueError, KeyError) as err:
            raise UserError(f"{where}: bad knobs or wrappers for {cfg.env_id}: {err}") from None
    make_strategy(cfg.context, **cfg.context_options)
    if cfg.algorithm.curriculum.knob is not None:
        from longhorizon.train.curriculum import knob_bounds

        try:
            knob_bounds(cfg.env_id, cfg.algorithm.curriculum.knob)
        except ValueError as err:
            raise UserError(f"algorithm.{err}") from None
    require_vllm(cfg.sampler)
    if cfg.rollout.workers:
        require_ray()
    if cfg.algorithm.name in OFFLINE_PREFERENCE:
        from longhorizon.train.offline import decided_pairs

        decided_pairs(cfg.preferences)  # a missing or malformed pairs file, or only ties
    if cfg.algorithm.name in REACTION_MODELS:
        from longhorizon.feedback.reaction import read_reactions

        read_reactions(cfg.reactions)  # a missing or malformed reaction labels file, or no labelled row
    if cfg.algorithm.name in SUPERVISED:
        from longhorizon.train.demonstrations import check_held_out, read_demonstrations

        held_out = range(cfg.eval.seed, cfg.eval.seed + cfg.eval.episodes)  # a missing or malformed file, a leak
        check_held_out(read_demonstrations(cfg.demonstrations), cfg.eval.env_id, held_out, cfg.demonstrations)
    models = [("model", cfg.model)] + [(f"algorithm.rewards.components[{i}].model", c.model)
                                       for i, c in enumerate(cfg.algorithm.rewards.components) if c.model]
    if cfg.algorithm.labeller_model:
        models.append(("algorithm.labeller_model", cfg.algorithm.labeller_model))
    for key, spec in models:
        if spec not in MODEL_LOADERS and not (Path(spec) / "config.json").exists():
            raise UserError(f"{key}: unknown model {spec!r}: use {', '.join(MODEL_LOADERS)}, or a local HF model directory")
    for i, c in enumerate(cfg.algorithm.rewards.components):
        if c.name == "reaction":
            from longhorizon.feedback.reaction import check_reaction_dir

            try:
                check_reaction_dir(c.model)
            except UserError as err:
                raise UserError(f"algorithm.rewards.components[{i}].model: {err}") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def mean_metrics(records: list[Metrics]) -> Metrics:
    """Each key's mean over the records that have it (a step's minibatch updates)."""
    keys = {k for r in records for k in r}
    return {k: float(np.mean([r[k] for r in records if k in r])) for k in sorted(keys)}


def eval_record(run_dir: Path, step: int) -> dict[str, Any] | None:
    found = [r for r in read_records(run_dir) if r["step"] == step and "eval/reward_mean" in r]
    return found[-1] if found else None


def write_trajectories(path: Path, trajectories: list[Trajectory]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_trajectories(tmp, trajectories))
