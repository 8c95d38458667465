"""The few shared record types every stage reads and writes.

- `Turn`: one agent step: what it saw, what it sampled, what the env said back.
- `Trajectory`: one episode, a list of turns plus how it ended.
- `Sample`: one training row, built from a trajectory by a context strategy.

Trajectories serialise to one JSON object per line (`save_trajectories` /
`load_trajectories`) and load back equal to what was written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np


def jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays and tuples into plain JSON types (recursively)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class Turn:
    """One agent step.

    `prompt_ids` are the exact token ids the model was conditioned on and
    `action_ids` the ids it sampled, with `action_logprobs[i]` the behaviour
    log-prob of `action_ids[i]` at sampling time. Scripted policies (oracle)
    leave the three token lists empty.
    """

    observation: str
    action: str
    reward: float = 0.0
    prompt_ids: list[int] = field(default_factory=list)
    action_ids: list[int] = field(default_factory=list)
    action_logprobs: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Trajectory:
    """One episode. `success` is the env's verdict at the end (None if it gives none)."""

    env_id: str
    seed: int
    turns: list[Turn] = field(default_factory=list)
    group_id: int = 0
    horizon: int | None = None
    terminated: bool = False
    truncated: bool = False
    success: bool | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def total_reward(self) -> float:
        return float(sum(t.reward for t in self.turns))

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Trajectory":
        data = dict(data)
        data["turns"] = [Turn(**t) for t in data.get("turns", [])]
        return cls(**data)


@dataclass
class Sample:
    """One training row (all lists have the same length T).

    `loss_mask[i]` is 1 only where `input_ids[i]` was sampled by the model;
    environment, tool and chat-template tokens are 0. `old_logprobs[i]` is
    the behaviour log-prob of a sampled token (0.0 off the mask) and
    `token_turns[i]` the index of the turn that sampled it (-1 off the mask),
    so the trainer's credit can map any per-turn value onto tokens.
    `metadata` says where the row came from (`{"turn": t}`, plus `"chunk"`
    for Markovian chunks).
    """

    input_ids: list[int]
    loss_mask: list[int]
    old_logprobs: list[float]
    token_turns: list[int]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.input_ids)
        lengths = {len(self.loss_mask), len(self.old_logprobs), len(self.token_turns)}
        if lengths != {n}:
            raise ValueError(f"Sample fields must all have length {n}, got {sorted(lengths)}")


def save_trajectories(path: str | Path, trajectories: Iterable[Trajectory]) -> None:
    """Write trajectories as JSON lines (one episode per line)."""
    with open(path, "w", encoding="utf-8") as f:
        for traj in trajectories:
            f.write(json.dumps(traj.to_dict(), ensure_ascii=False) + "\n")


def load_trajectories(path: str | Path) -> list[Trajectory]:
    """Read back what `save_trajectories` wrote."""
    with open(path, encoding="utf-8") as f:
        return [Trajectory.from_dict(json.loads(line)) for line in f if line.strip()]
