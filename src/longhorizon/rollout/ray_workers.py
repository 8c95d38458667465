"""Rollouts on Ray actors: `rollout: {workers: N}` runs each training step's episodes in N worker processes.

    pool = RolloutPool(WorkerSpec.from_config(cfg), cfg.rollout)  # a local Ray, or the cluster at rollout.address
    pool.sync(model)                    # the trainer's weights, put once in Ray's object store
    trajectories = pool.collect(specs)  # in the order of `specs`, token ids and behaviour log-probs included
    pool.close()

Each worker (`RolloutWorker`, one Ray actor) holds its own copy of the model, a transformers sampler built
as `models.make_sampler` builds it, and the context strategy; the envs are made per episode by the runner.

Units. A step's episodes are cut into units of `groups_per_unit` groups (the G samples of one task). A
worker runs one unit at a time as one batched rollout (`run_unit`: the in-process runner, `run_episodes`)
and returns all of its trajectories at once, so a unit is recorded whole or not at all.

Seeding. The in-process runner draws call k of the step from `seed + k`, with all episodes of the step in
each generate call: which random numbers an episode gets depends on what else is in the batch. A worker
cannot reproduce that without running the whole batch itself. So each unit samples from its own seed,
`unit_seed(seed, group ids)`, with a fresh call counter and an empty KV cache: a unit's trajectories depend
only on the weights and on the unit, never on which worker runs it, what it ran before, or a re-run. The
in-process equivalent is `[run_unit(u, ...) for u in make_units(...)]`, which the tests compare with the
workers exactly (same token ids, same log-probs). With `workers: 0` the loop does not use this module and
samples as before (one batch, one seed per call). Greedy decoding does not depend on the batch except
through float rounding of padded rows.

Faults. A worker that dies (its process is killed, runs out of memory, its node goes) loses only the unit
it was running: nothing of it was recorded. The pool starts a replacement actor, loads the current weights
into it, and re-runs the unit there (or on any free worker), up to `max_attempts` times per unit. An
exception raised inside a worker (a bug) is not retried: it propagates.

Weights. After each update `sync` exports the trainer's weights (LoRA merged into the base weights, as
for vLLM: `models.vllm_sampler.export_weights`), puts them in Ray's object store once (`ray.put`), and
every worker loads them from there; a replacement worker loads the latest ones before it runs anything.
Every trajectory records the weights version that sampled it (`metadata["policy_version"]`: 1 after the
first sync, +1 per sync).

Ray. Without `rollout.address` a private local Ray is started on this machine (`ray.init` with
`num_cpus = workers * cpus_per_worker`, no dashboard, bound to 127.0.0.1, usage stats off); with
an address (`ray://host:10001` or `host:6379`) the workers are placed on that cluster, whose nodes
must have longhorizon installed. Only the local Ray is tested here.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import torch

from longhorizon.errors import UserError
from longhorizon.rollout.policies import ModelPolicy
from longhorizon.rollout.runner import EpisodeSpec, run_episodes
from longhorizon.models.sampler import SamplingParams
from longhorizon.types import Trajectory


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to sample as the trainer would: the model, sampling settings and the context."""

    model: str
    params: SamplingParams
    dtype: str = "float32"
    device: str = "cpu"
    context: str = "full"
    context_options: dict[str, Any] = field(default_factory=dict)
    prefill: bool = True
    kv_cache_mb: int = 1024
    torch_threads: int = 1
    autocast_bf16: bool = False

    @classmethod
    def from_config(cls, cfg: Any) -> "WorkerSpec":
        """The worker settings of a `TrainConfig` (training rollouts: its temperature, token cap, stops, seed)."""
        params = SamplingParams(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, stop=tuple(cfg.stop),
                                seed=cfg.seed)
        return cls(model=cfg.model, params=params, dtype=cfg.dtype, device=cfg.device, context=cfg.context,
                   context_options=dict(cfg.context_options), prefill=cfg.prefill, kv_cache_mb=cfg.kv_cache_mb,
                   torch_threads=cfg.rollout.torch_threads, autocast_bf16=cfg.autocast_bf16)


@dataclass(frozen=True)
class Unit:
    """Episodes a worker runs together as one batched rollout, recorded whole or not at all."""

    index: int
    specs: tuple[EpisodeSpec, ...]
    positions: tuple[int, ...]  # where each episode's trajectory goes in the step's list
    seed: int  # the sampler's base seed for this unit


def unit_seed(seed: int, group_ids: tuple[int, ...]) -> int:
    """A unit's sampling seed: a function of the run's seed and the unit's groups only (32 bits)."""
    return int(np.random.SeedSequence([seed, *group_ids]).generate_state(1)[0])


def make_units(specs: list[EpisodeSpec], seed: int, groups_per_unit: int = 1) -> list[Unit]:
    """Cut a step's episodes into units of `groups_per_unit` groups, in the order groups first appear."""
    groups: dict[int, list[int]] = {}
    for position, spec in enumerate(specs):
        groups.setdefault(spec.group_id, []).append(position)
    ids = list(groups)
    units = []
    for index, start in enumerate(range(0, len(ids), groups_per_unit)):
        chunk = tuple(ids[start : start + groups_per_unit])
        positions = tuple(p for g in chunk for p in groups[g])
        units.append(Unit(index, tuple(specs[p] for p in positions), positions, unit_seed(seed, chunk)))
    return units


def run_unit(unit: Unit, sampler: Any, strategy: Any, prefill: bool = True,
             on_tick: Callable[[int, int], None] | None = None) -> list[Trajectory]:
    """One unit's episodes as one batched rollout: the sampler's settings with the unit's seed, a fresh call
    counter and an empty KV cache (`with_params`), so the result depends on the unit and the weights only."""
    unit_sampler = sampler.with_params(replace(sampler.params, seed=unit.seed))
    return run_episodes(list(unit.specs), ModelPolicy(unit_sampler, strategy, prefill=prefill), on_tick=on_tick)


class RolloutWorker:
    """The body of one Ray actor: a model copy, its transformers sampler and the context strategy."""

    def __init__(self, spec: WorkerSpec):
        from longhorizon.context import make_strategy
        from longhorizon.models import LoadedModel, load_model, make_sampler

        torch.set_num_threads(spec.torch_threads)
        loaded = load_model(spec.model, dtype=spec.dtype, device=spec.device)
        self.sampler = make_sampler("transformers", spec.model, spec.params, dtype=spec.dtype,
                                    kv_cache_mb=spec.kv_cache_mb, loaded=LoadedModel(spec.model, loaded.model,
                                                                                     loaded.tokenizer))
        self.strategy = make_strategy(spec.context, **spec.context_options)
        self.spec, self.version, self.ticks = spec, 0, 0

    def load_weights(self, state: dict[str, torch.Tensor], version: int) -> int:
        """Load the trainer's weights (every tensor, strictly) and remember their version."""
        self.sampler.model.load_state_dict(state)
        self.version = version
        return version

    def run(self, unit: Unit, state: dict[str, torch.Tensor] | None = None, version: int = 0) -> list[Trajectory]:
        """Run one unit to the end (after loading `state`, weights `version`, when given: the asynchronous
        pool's lazy weight update, never in the middle of a unit); every trajectory records the weights version
        that sampled it."""
        if state is not None:
            self.load_weights(state, version)
        device_type = torch.device(self.spec.device).type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.spec.autocast_bf16):
            trajectories = run_unit(unit, self.sampler, self.strategy, self.spec.prefill, on_tick=self._tick)
        for t in trajectories:
            t.metadata["policy_version"] = self.version
        return trajectories

    def _tick(self, actions: int, live: int) -> None:
        self.ticks += 1

    def progress(self) -> dict[str, int]:
        """The worker's process id and the rollout ticks it has run (answers while `run` is busy)."""
        return {"pid": os.getpid(), "ticks": self.ticks}


_SAVED_HANDLERS: dict[int, Any] = {}  # signal handlers before init_ray started Ray


def _ray() -> Any:
    """The ray module, or a one-line user error naming the extra."""
    try:
        import ray
    except ImportError:
        raise UserError("rollout.workers needs Ray: pip install 'longhorizon[ray]'") from None
    return ray


def require_ray() -> None:
    """Fail fast, before any model loads, where Ray is not installed."""
    _ray()


def init_ray(address: str | None, num_cpus: int) -> bool:
    """Connect to the cluster at `address`, or start a private local Ray; False if Ray was already running.
    The process's SIGINT and SIGTERM handlers are saved, for `shutdown_ray` to put back (`ray.init` installs
    its own SIGTERM handler and `ray.shutdown` leaves it)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    _SAVED_HANDLERS.update({sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)})
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False)
    return True


class RolloutPool:
    """N rollout workers on Ray, fed one unit at a time; a dead worker's unit is re-run on a replacement."""

    def __init__(self, spec: WorkerSpec, settings: Any):
        self.spec, self.settings = spec, settings
        if settings.workers < 1:
            raise UserError("rollout.workers must be >= 1 for a worker pool")
        self.owns_ray = init_ray(settings.address, num_cpus=max(1, int(settings.workers * settings.cpus_per_worker)))
        ray = _ray()
        self.actor_class = ray.remote(RolloutWorker).options(
            num_cpus=settings.cpus_per_worker, num_gpus=settings.gpus_per_worker, max_concurrency=2, max_restarts=0)
        self.actors = [self.actor_class.remote(spec) for _ in range(settings.workers)]
        self.weights: Any = None  # ObjectRef of the latest state dict
        self.version = 0
        self.stats = {"worker_restarts": 0, "units_rerun": 0}

    def publish(self, model: Any) -> int:
        """Put the trainer's weights in the object store once, as the next version; no worker loads them yet
        (the asynchronous pool hands them to each worker with its next unit). Returns the new version."""
        from longhorizon.models.vllm_sampler import export_weights

        ray = _ray()
        self.weights = ray.put({name: t.detach().to("cpu", copy=True) for name, t in export_weights(model)})
        self.version += 1
        return self.version

    def sync(self, model: Any) -> None:
        """Put the trainer's weights in the object store once; every worker loads them (a dead one is replaced)."""
        ray = _ray()
        self.publish(model)
        for i, actor in enumerate(self.actors):
            try:
                ray.get(actor.load_weights.remote(self.weights, self.version))
            except ray.exceptions.RayActorError:
                self._replace(i)

    def collect(self, specs: list[EpisodeSpec]) -> list[Trajectory]:
        """Run every episode on the workers; trajectories come back in the order of `specs`."""
        ray = _ray()
        units = make_units(specs, self.spec.params.seed, self.settings.groups_per_unit)
        queue, idle = deque(units), list(range(len(self.actors)))
        running: dict[Any, tuple[int, Unit]] = {}
        attempts = {u.index: 0 for u in units}
        out: list[Trajectory | None] = [None] * len(specs)
        while queue or running:
            while queue and idle:
                worker, unit = idle.pop(0), queue.popleft()
                running[self.actors[worker].run.remote(unit)] = (worker, unit)
            [ref], _ = ray.wait(list(running), num_returns=1)
            worker, unit = running.pop(ref)
            try:
                for position, trajectory in zip(unit.positions, ray.get(ref)):
                    out[position] = trajectory
            except ray.exceptions.RayActorError:
                attempts[unit.index] += 1
                self._lost(worker, unit, attempts[unit.index])
                queue.appendleft(unit)
            idle.append(worker)
        return out  # type: ignore[return-value]

    def _lost(self, worker: int, unit: Unit, attempt: int) -> None:
        """A worker died with `unit` in flight: nothing of it was kept; replace the worker, count the re-run."""
        if attempt >= self.settings.max_attempts:
            raise RuntimeError(f"rollout unit {unit.index} (groups {sorted({s.group_id for s in unit.specs})}) lost "
                               f"its worker {attempt} times; giving up (rollout.max_attempts)")
        self.stats["units_rerun"] += 1
        self._replace(worker)

    def _replace(self, worker: int) -> None:
        """A new actor in place of a dead one, with the latest weights loaded before it runs anything."""
        ray = _ray()
        ray.kill(self.actors[worker], no_restart=True)
        self.actors[worker] = self.actor_class.remote(self.spec)
        if self.weights is not None:
            ray.get(self.actors[worker].load_weights.remote(self.weights, self.version))
        self.stats["worker_restarts"] += 1

    def metrics(self) -> dict[str, float]:
        """Faults so far: workers replaced and units re-run."""
        return {f"rollout/{k}": float(v) for k, v in self.stats.items()}

    def close(self) -> None:
        """Stop the workers (and the local Ray, if this pool started it)."""
        ray = _ray()
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
        if self.owns_ray:
            shutdown_ray()


def shutdown_ray() -> None:
    """Stop the Ray this process started and put back the signal handlers `init_ray` saved."""
    _ray().shutdown()
    for sig, handler in _SAVED_HANDLERS.items():
        if handler is not None:
            signal.signal(sig, handler)
    _SAVED_HANDLERS.clear()
