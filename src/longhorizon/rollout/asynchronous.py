"""Asynchronous rollouts with a staleness bound (ASearcher / AReaL): `rollout: {workers: N, max_staleness: k}`.

    rollouts = AsyncRollouts(pool, next_units, units_per_step, max_staleness=k)   # starts sampling at once
    units, metrics = rollouts.next_batch()     # one step's units, none more than k weight versions old
    ...update...; rollouts.publish(model)      # the next version; each worker takes it with its next unit
    rollouts.close()

A dispatcher thread keeps the pool's workers busy with the units of the coming steps while the trainer
updates. Weights are published to Ray's object store after each update; a worker loads the newest ones
just before its next unit, never in the middle of one, so an episode is never cut at a step boundary and
every trajectory has one behaviour version (`metadata["policy_version"]`). Continuing a partial episode
with new weights (AReaL's interruptible generation) is not offered: units are atomic, as with the
synchronous pool.

Staleness. With the trainer at weights version v (the version it is about to update from), a trajectory
sampled by version b has staleness v - b. Two rules bound it by k = `max_staleness`:
1. admission (AReaL's `get_capacity`): a new unit starts only while the units admitted so far number fewer
   than (k + updates published since the start + 1) * units_per_step;
2. consumption: the trainer takes the first `units_per_step` units to finish (the order in which they
   finish, as ASearcher's trainer does), skipping any whose staleness exceeds k; a skipped unit is sampled
   again with the newest weights (`async/units_resampled`), so its tasks are not lost.
Rule 1 alone bounds staleness only on average: a long unit can finish after k updates. Rule 2 makes the
bound hard: no trained trajectory is more than k versions old.

With k = 0 a step's units start only after the previous update is published and all of them are trained
at the next step: synchronous training on the workers, the same units with the same seeds and weights,
put in the same order (a step's units are sorted by their first task before they are returned).

Taking units in the order they finish favours short episodes (users of asynchronous RL report it);
the metrics show it: `async/sampled_turns` (every unit finished since the last batch) against
`async/trained_turns` (what this step trains on). Also logged: the staleness histogram
(`async/staleness_frac_S` for S = 0..k, mean and max), the trainer's idle time waiting for a batch, and
the workers' idle fraction (time with no unit to run, e.g. held back by rule 1).

Resume. The data position saved with a checkpoint is the first task not yet trained on; units in
flight at the checkpoint are not saved, so a resumed asynchronous run samples again from there (tasks
that were trained out of order come back once). With k = 0 that is the synchronous position: resume is
exact.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from longhorizon.rollout.ray_workers import RolloutPool, Unit, _ray
from longhorizon.types import Trajectory


@dataclass
class Finished:
    """A unit whose episodes all ended, with the weights version that sampled it."""

    unit: Unit
    trajectories: list[Trajectory]
    version: int

    @property
    def first_task(self) -> int:
        return min(s.group_id for s in self.unit.specs)

    @property
    def turns(self) -> list[int]:
        return [len(t.turns) for t in self.trajectories]


def admissible(admitted: int, published: int, max_staleness: int, units_per_step: int) -> bool:
    """AReaL's admission rule: may another unit start? `published` counts updates since the start."""
    return admitted < (max_staleness + published + 1) * units_per_step


def split_stale(buffer: list[Finished], version: int, max_staleness: int) -> tuple[list[Finished], list[Finished]]:
    """(fresh, stale): units whose behaviour version is at most `max_staleness` behind `version`, and the rest."""
    fresh = [f for f in buffer if version - f.version <= max_staleness]
    return fresh, [f for f in buffer if version - f.version > max_staleness]


class AsyncRollouts:
    """Units of the coming steps on the pool's workers, sampled continuously within the staleness bound.

    `next_units()` gives the units of the next step not yet started (called by the dispatcher thread,
    one step at a time, in order); the batches `next_batch` returns hold `units_per_step` units each.
    """

    def __init__(self, pool: RolloutPool, next_units: Callable[[], list[Unit]], units_per_step: int,
                 max_staleness: int, next_task: Callable[[], int]):
        if max_staleness < 0:
            raise ValueError("max_staleness must be >= 0")
        self.pool, self.next_units, self.next_task = pool, next_units, next_task
        self.units_per_step, self.max_staleness = units_per_step, max_staleness
        self.published = 0  # updates published since the start
        self.admitted = 0  # units started (re-runs not counted)
        self.planned: deque[Unit] = deque()  # units of coming steps, not yet started
        self.rerun: deque[Unit] = deque()  # lost or stale units, first in line
        self.buffer: list[Finished] = []  # finished, not yet trained
        self.loaded = [pool.version] * len(pool.actors)  # weights version each worker holds
        self.running: dict[Any, tuple[int, Unit, float]] = {}  # ref -> (worker, unit, start time)
        self.idle = list(range(len(pool.actors)))
        self.attempts: dict[tuple[int, ...], int] = {}
        self.sampled_turns: list[int] = []  # every unit finished since the last batch
        self.stats = {"units_resampled": 0}
        self.busy_s, self.trainer_idle_s, self.started = 0.0, 0.0, time.perf_counter()
        self.error: BaseException | None = None
        self.cond = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._dispatch_forever, name="longhorizon-async-rollouts", daemon=True)
        self.thread.start()

    # ---------------------------------------------------------------- the trainer's side

    def next_batch(self) -> tuple[list[Trajectory], dict[str, float]]:
        """Wait for `units_per_step` fresh units; return their trajectories (sorted by task) and the metrics."""
        t0 = time.perf_counter()
        with self.cond:
            while True:
                if self.error is not None:
                    raise self.error
                fresh, stale = split_stale(self.buffer, self.pool.version, self.max_staleness)
                if stale:  # sampled again with the newest weights: the tasks are not lost
                    self.rerun.extend(f.unit for f in stale)
                    self.stats["units_resampled"] += len(stale)
                    self.buffer = fresh
                    self.cond.notify_all()
                if len(fresh) >= self.units_per_step:
                    break
                self.cond.wait(timeout=0.5)
            taken, self.buffer = fresh[: self.units_per_step], fresh[self.units_per_step :]
            sampled, self.sampled_turns = self.sampled_turns, []
            waited = time.perf_counter() - t0
            self.trainer_idle_s += waited
            wall = time.perf_counter() - self.started
            busy = self.busy_s + sum(time.perf_counter() - start for _, _, start in self.running.values())
        taken.sort(key=lambda f: f.first_task)
        staleness = np.array([self.pool.version - f.version for f in taken for _ in f.trajectories])
        trained = [n for f in taken for n in f.turns]
        metrics = {
            "async/staleness_mean": float(staleness.mean()), "async/staleness_max": float(staleness.max()),
            **{f"async/staleness_frac_{s}": float(np.mean(staleness == s)) for s in range(self.max_staleness + 1)},
            "async/trained_turns": float(np.mean(trained)), "async/trained_turns_max": float(max(trained)),
            "async/sampled_turns": float(np.mean(sampled)) if sampled else float(np.mean(trained)),
            "async/sampled_turns_max": float(max(sampled)) if sampled else float(max(trained)),
            "async/trainer_idle_s": waited, "async/trainer_idle_fraction": self.trainer_idle_s / wall,
            "async/worker_idle_fraction": max(0.0, 1.0 - busy / (wall * max(len(self.pool.actors), 1))),
            **{f"async/{k}": float(v) for k, v in self.stats.items()},
            **self.pool.metrics(),
        }
        return [t for f in taken for t in f.trajectories], metrics

    def first_untrained_task(self) -> int:
        """The data position to checkpoint: the smallest task not yet trained on (in flight, finished and
        waiting, or not started)."""
        with self.cond:
            pending = [min(s.group_id for s in u.specs) for u in (*self.planned, *self.rerun)]
            pending += [min(s.group_id for s in u.specs) for _, u, _ in self.running.values()]
            pending += [f.first_task for f in self.buffer]
            return min(pending, default=self.next_task())

    def publish(self, model: Any) -> None:
        """The trainer's new weights: the next version, which every worker takes before its next unit."""
        self.pool.publish(model)
        with self.cond:
            self.published += 1
            self.cond.notify_all()

    def close(self) -> None:
        """Stop dispatching (units in flight are abandoned: the pool's close kills their workers)."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.thread.join(timeout=30)

    # ---------------------------------------------------------------- the dispatcher thread

    def _dispatch_forever(self) -> None:
        try:
            while True:
                with self.cond:
                    if self.stopping:
                        return
                    self._start_units()
                    if not self.running:
                        self.cond.wait(timeout=0.5)  # held back by the admission rule: wait for an update
                        continue
                    refs = list(self.running)
                ready, _ = _ray().wait(refs, num_returns=1, timeout=0.2)
                for ref in ready:
                    self._finish(ref)
        except BaseException as err:  # noqa: BLE001 (handed to the trainer, which raises it)
            with self.cond:
                self.error = err
                self.cond.notify_all()

    def _start_units(self) -> None:
        """Fill idle workers: lost or stale units first, then new ones while the admission rule allows."""
        while self.idle:
            if self.rerun:
                unit = self.rerun.popleft()
            elif admissible(self.admitted, self.published, self.max_staleness, self.units_per_step):
                if not self.planned:
                    self.planned.extend(self.next_units())
                unit = self.planned.popleft()
                self.admitted += 1
            else:
                return
            worker = self.idle.pop(0)
            actor = self.pool.actors[worker]
            if self.loaded[worker] != self.pool.version:  # the newest weights go with the unit
                ref = actor.run.remote(unit, self.pool.weights, self.pool.version)
                self.loaded[worker] = self.pool.version
            else:
                ref = actor.run.remote(unit)
            self.running[ref] = (worker, unit, time.perf_counter())

    def _finish(self, ref: Any) -> None:
        ray = _ray()
        with self.cond:
            worker, unit, start = self.running.pop(ref)
        try:
            trajectories = ray.get(ref)
        except ray.exceptions.RayActorError:  # the worker died: nothing of the unit was kept; run it again
            key = tuple(s.group_id for s in unit.specs)
            self.attempts[key] = self.attempts.get(key, 0) + 1
            self.pool._lost(worker, unit, self.attempts[key])  # replaces the worker or raises
            with self.cond:
                self.loaded[worker] = -1  # its next unit carries the newest weights, whatever was published meanwhile
                self.rerun.appendleft(unit)
                self.idle.append(worker)
            return
        with self.cond:
            self.busy_s += time.perf_counter() - start
            version = trajectories[0].metadata["policy_version"] if trajectories else self.loaded[worker]
            finished = Finished(unit, trajectories, version)
            self.buffer.append(finished)
            self.sampled_turns += finished.turns
            self.idle.append(worker)
            self.cond.notify_all()
