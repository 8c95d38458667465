"""ARPO replay of successful trajectories and task filtering (Lu et al., arXiv 2505.16282, methods.md §13).

    buffer = ReplayBuffer(size=8)
    trajectories, metrics = buffer.apply(trajectories)   # before credit assignment

Per task (env id and env seed), a FIFO buffer holds up to `size` successful
trajectories. A group (the samples of one task, sharing `group_id`) whose
outcomes have std < `fail_std` and mean < `fail_mean` is "all negative":
one stored success of that task, drawn with `random.choices`, replaces the
group's FIRST slot (dvlab-research/ARPO `apply_replay`, methods-2.md §0).
The buffer is then updated from the ORIGINAL batch (successes only), so a
replayed trajectory is never stored twice.

`TaskFilter` drops tasks the policy always or never solves: once a task has
`min_attempts` recorded episodes, it is skipped if its success rate is
<= `threshold` or >= 1 - `threshold`. `select_tasks` walks the data
positions over a pool of tasks and skips the filtered ones.

Choices (ARPO's code has a fixed task list and a binary evaluator score):
1. An episode's outcome is 1.0 / 0.0 from `Trajectory.success` when the env
   gives one, else its return; success = outcome > `success_threshold`
   (ARPO: eval_result > 0.1).
2. ARPO filters tasks once, offline, with the base agent (tasks solved at
   least once); here the filter is online, from the training episodes, with
   a threshold on both ends.
3. A replayed trajectory keeps its behaviour log-probs from when it was
   sampled (an older policy), as ARPO's replay does; the PPO ratio then
   weighs it off-policy.
4. The draw uses the buffer's own `random.Random` (seeded, saved in
   `state_dict`), so replay neither consumes nor depends on the global RNGs.
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from typing import Any, Callable

import numpy as np

from longhorizon.types import Trajectory

TaskKey = tuple[str, int]


def task_key(traj: Trajectory) -> TaskKey:
    return (traj.env_id, int(traj.seed))


def outcome(traj: Trajectory) -> float:
    """1.0 / 0.0 from the env's success verdict when it gives one, else the episode return."""
    return float(traj.success) if traj.success is not None else traj.total_reward


def groups_of(trajectories: list[Trajectory]) -> dict[int, list[int]]:
    """group_id -> positions of its trajectories, in order of first appearance."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, traj in enumerate(trajectories):
        groups[traj.group_id].append(i)
    return dict(groups)


class ReplayBuffer:
    """ARPO's per-task FIFO of successful trajectories and its all-negative-group replacement."""

    def __init__(self, size: int = 8, success_threshold: float = 0.1, fail_std: float = 0.05,
                 fail_mean: float = 0.2, seed: int = 0):
        self.size, self.success_threshold = size, success_threshold
        self.fail_std, self.fail_mean = fail_std, fail_mean
        self.buffers: dict[TaskKey, list[Trajectory]] = {}
        self.rng = random.Random(seed)

    def all_failed(self, outcomes: list[float]) -> bool:
        """ARPO: std(rewards) < 0.05 and mean(rewards) < 0.2."""
        return float(np.std(outcomes)) < self.fail_std and float(np.mean(outcomes)) < self.fail_mean

    def apply(self, trajectories: list[Trajectory]) -> tuple[list[Trajectory], dict[str, float]]:
        """Replace slot 0 of every all-negative group with a stored success of its task; then store the batch's successes."""
        out = list(trajectories)
        groups = groups_of(trajectories)
        failed = replayed = 0
        for group_id, positions in groups.items():
            if not self.all_failed([outcome(trajectories[i]) for i in positions]):
                continue
            failed += 1
            stored = self.buffers.get(task_key(trajectories[positions[0]]))
            if stored:
                chosen = self.rng.choices(stored)[0]  # ARPO: random.choices, into the first slot
                out[positions[0]] = dataclasses.replace(
                    chosen, group_id=group_id, metadata={**chosen.metadata, "replayed": True})
                replayed += 1
        self.update(trajectories)
        n = max(len(groups), 1)
        return out, {"all_failed_group_frac": failed / n, "replay_rate": replayed / n,
                     "buffered_tasks": float(len(self.buffers))}

    def update(self, trajectories: list[Trajectory]) -> None:
        """Append each success to its task's FIFO, keeping the newest `size`."""
        for traj in trajectories:
            if outcome(traj) > self.success_threshold:
                stored = self.buffers.setdefault(task_key(traj), [])
                stored.append(traj)
                del stored[: max(len(stored) - self.size, 0)]

    def state_dict(self) -> dict[str, Any]:
        return {"buffers": [[list(key), [t.to_dict() for t in trajs]] for key, trajs in self.buffers.items()],
                "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffers = {(key[0], int(key[1])): [Trajectory.from_dict(t) for t in trajs]
                        for key, trajs in state["buffers"]}
        self.rng.setstate(state["rng"])


class TaskFilter:
    """Skip tasks whose success rate, after `min_attempts` episodes, is <= threshold or >= 1 - threshold."""

    def __init__(self, threshold: float = 0.0, min_attempts: int = 1, success_threshold: float = 0.1):
        self.threshold, self.min_attempts, self.success_threshold = threshold, min_attempts, success_threshold
        self.attempts: dict[TaskKey, int] = {}
        self.successes: dict[TaskKey, int] = {}

    def record(self, trajectories: list[Trajectory]) -> None:
        for traj in trajectories:
            key = task_key(traj)
            self.attempts[key] = self.attempts.get(key, 0) + 1
            self.successes[key] = self.successes.get(key, 0) + int(outcome(traj) > self.success_threshold)

    def keep(self, key: TaskKey) -> bool:
        attempts = self.attempts.get(key, 0)
        if attempts < self.min_attempts:
            return True
        rate = self.successes[key] / attempts
        return self.threshold < rate < 1.0 - self.threshold

    def filtered_tasks(self) -> int:
        return sum(not self.keep(key) for key in self.attempts)

    def state_dict(self) -> dict[str, Any]:
        return {"tasks": [[list(k), self.attempts[k], self.successes[k]] for k in self.attempts]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        rows = [((k[0], int(k[1])), a, s) for k, a, s in state["tasks"]]
        self.attempts = {k: a for k, a, _ in rows}
        self.successes = {k: s for k, _, s in rows}


def select_tasks(position: int, count: int, pool: int | None, keep: Callable[[int], bool]) -> tuple[list[int], int]:
    """`count` data positions from `position` on whose task index (k mod pool) passes `keep`; and the next position.

    At most one pass over the pool is scanned past the first candidate; if
    too few tasks pass, the skipped ones fill the step in order (training
    never stalls on a fully filtered pool).
    """
    chosen, skipped, k = [], [], position
    limit = position + count + (pool or 0)
    while len(chosen) < count and k < limit:
        (chosen if keep(k % pool if pool else k) else skipped).append(k)
        k += 1
    chosen += skipped[: count - len(chosen)]
    return sorted(chosen), k
