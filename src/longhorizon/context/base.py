"""The context-strategy interface: how the prompt for turn t is built, and how a
finished episode becomes training samples.

A strategy sees an `EpisodeView`: the episode's turns so far, the observation
the agent must now answer, the env's system prompt and tools (its `AgentSpec`). It returns the
exact prompt token ids. After the episode, `to_samples` turns the Trajectory
into `Sample`s whose `loss_mask` covers only tokens the model sampled.
Strategies are picked by name from `STRATEGIES` (see `context/__init__.py`).

Besides those two, a strategy may shape the rollout through a few hooks whose
defaults do nothing special (the model policy calls them; `full` keeps them all):

- `response_prefix(env_prefix)`: the text pre-filled at the start of an answer;
- `env_action(text)`: the part of the model's text the env is given;
- `chunk_plan()`: None (one model call per answer), or a `ChunkPlan` saying
  how one answer spans several model calls and what each call sees
  (Delethink's chunks). The strategy only describes the calls; `rollout/`
  makes them (`context/` never samples or scores);
- `end_episode(trajectory)`: called by the runner as each episode ends;
- `attach(run_dir)`: called once with the run directory (persistent stores);
- `state_dict()` / `load_state_dict(state)`: state carried across episodes
  (memory's lessons), saved in training checkpoints so a resumed run is exact;
- `frozen()`: a block in which the strategy learns nothing across episodes
  (the trainer's held-out evaluation: held-out tasks never reach the store).

Samples and traces: every row from one `to_samples` call belongs to one trace,
the episode; the caller assigns trace ids (`train.batch.collate` uses the
episode index as `trace_ids`). Every sampled token carries its turn index
(`Sample.token_turns`); rows carry `metadata["turn"]` (and `"chunk"`).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longhorizon.types import Sample, Trajectory, Turn


@dataclass
class EpisodeView:
    """What a strategy may look at when building the next prompt.

    The runner fills `system_prompt`, `tools` and `task_statement` from the env's `AgentSpec`
    (`envs/base.py`), read through its wrappers, so a wrapper can change them.
    """

    turns: list[Turn]
    observation: str
    role: str = "user"
    system_prompt: str | None = None
    tools: list[dict[str, Any]] | None = None
    roles: list[str] = field(default_factory=list)  # role of each past turn's observation
    env_id: str = ""
    task_statement: str | None = None  # the env's own statement of the task, if it has one
    # The live trajectory's metadata: per-episode strategy state (e.g. the memory
    # lessons shown) is pinned here at turn 0 and saved with the episode.
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        """The first observation of the episode (the question / task)."""
        return self.turns[0].observation if self.turns else self.observation


def chunk_prompt(query: list[int], answer: list[int], head: int, tail: int) -> list[int]:
    """Delethink §8: q, then the first `head` ids of chunk 0 and the last `tail` ids of the answer so far."""
    if not answer:
        return list(query)
    return list(query) + answer[:head] + answer[len(answer) - tail:]


@dataclass(frozen=True)
class ChunkPlan:
    """One answer sampled in chunks of C (`chunk`) tokens with Markovian state m (`carryover`).

    Chunk 0 sees the query q and makes <= C ids; chunk k >= 1 sees
    q + the first `head` ids of the answer + its last m - head ids, and makes
    <= C - m ids. The answer goes on while a chunk ends at its token cap, for
    at most `max_chunks` chunks.
    """

    chunk: int
    carryover: int
    head: int
    max_chunks: int

    def prompt(self, query: list[int], answer_so_far: list[int]) -> list[int]:
        return chunk_prompt(query, answer_so_far, self.head, self.carryover - self.head)

    def budget(self, k: int) -> int:
        """New tokens chunk k may make: C, then C - m."""
        return self.chunk if k == 0 else self.chunk - self.carryover


class ContextStrategy(ABC):
    """Builds prompts during rollouts and samples for training."""

    name: str = ""

    @abstractmethod
    def build_prompt(self, episode: EpisodeView, tokenizer: Any) -> list[int]:
        """Token ids of the prompt for the next model call."""

    @abstractmethod
    def to_samples(self, trajectory: Trajectory) -> list[Sample]:
        """Training rows for a finished episode; each sampled token carries its turn index (`token_turns`)."""

    # -- rollout hooks (defaults: one plain sampler call, the env sees everything) --
    def response_prefix(self, env_prefix: str) -> str:
        """Text forced at the start of each answer (prompt tokens, never loss)."""
        return env_prefix

    def env_action(self, text: str) -> str:
        """The part of the model's answer the env is given."""
        return text

    def chunk_plan(self) -> ChunkPlan | None:
        """How one answer spans several model calls; None: one call, capped by the sampler's max_new_tokens."""
        return None

    def end_episode(self, trajectory: Trajectory) -> None:
        """Called once per finished episode (the runner calls it as each one ends)."""

    def attach(self, run_dir: str | Path) -> None:
        """Called once with the run directory, before any episode."""

    def state_dict(self) -> dict[str, Any]:
        """State carried from episode to episode (JSON-able); stateless strategies have none."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        if state:
            raise ValueError(f"context strategy {self.name!r} keeps no state, got {sorted(state)}")

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Inside this block, episodes leave no trace in the strategy's state."""
        yield


class StrategyWrapper(ContextStrategy):
    """A strategy that edits what another sees (like `gymnasium.Wrapper`); every hook goes to `inner`."""

    def __init__(self, inner: ContextStrategy):
        self.inner = inner
        self.name = inner.name

    def build_prompt(self, episode: EpisodeView, tokenizer: Any) -> list[int]:
        return self.inner.build_prompt(episode, tokenizer)

    def to_samples(self, trajectory: Trajectory) -> list[Sample]:
        return self.inner.to_samples(trajectory)

    def response_prefix(self, env_prefix: str) -> str:
        return self.inner.response_prefix(env_prefix)

    def env_action(self, text: str) -> str:
        return self.inner.env_action(text)

    def chunk_plan(self) -> ChunkPlan | None:
        return self.inner.chunk_plan()

    def end_episode(self, trajectory: Trajectory) -> None:
        self.inner.end_episode(trajectory)

    def attach(self, run_dir: str | Path) -> None:
        self.inner.attach(run_dir)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def frozen(self) -> contextlib.AbstractContextManager[None]:
        return self.inner.frozen()


def render(tokenizer: Any, messages: list[dict[str, str]], tools: list[dict] | None, generation_prompt: bool) -> str:
    """The chat template applied to messages, as text."""
    return tokenizer.apply_chat_template(
        messages, tools=tools, add_generation_prompt=generation_prompt, tokenize=False
    )


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of text that already contains its special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def chat_ids(tokenizer: Any, messages: list[dict[str, str]], tools: list[dict] | None) -> list[int]:
    """Prompt ids of a chat rendered afresh, ending with the generation prompt."""
    return encode(tokenizer, render(tokenizer, messages, tools, True))


def system_messages(episode: EpisodeView) -> list[dict[str, str]]:
    return [{"role": "system", "content": episode.system_prompt}] if episode.system_prompt else []


def role_of(episode: EpisodeView, t: int) -> str:
    """Role of turn t's observation (the current one if t == len(turns))."""
    if t < len(episode.roles):
        return episode.roles[t]
    return episode.role if t == len(episode.turns) else "user"


def turn_sample(prompt_ids: list[int], action_ids: list[int], logprobs: list[float], turn: int,
                **metadata: Any) -> Sample:
    """One row: prompt (mask 0, turn -1) then turn `turn`'s sampled ids (mask 1, their log-probs, turn index)."""
    if len(logprobs) != len(action_ids):
        raise ValueError(f"{len(action_ids)} sampled ids but {len(logprobs)} log-probs")
    n, k = len(prompt_ids), len(action_ids)
    return Sample(input_ids=list(prompt_ids) + list(action_ids), loss_mask=[0] * n + [1] * k,
                  old_logprobs=[0.0] * n + [float(x) for x in logprobs], token_turns=[-1] * n + [turn] * k,
                  metadata={"turn": turn, **metadata})


def per_turn_samples(trajectory: Trajectory) -> list[Sample]:
    """One row per model turn: its exact prompt ids, then its sampled ids (turns without samples are skipped)."""
    return [turn_sample(turn.prompt_ids, turn.action_ids, turn.action_logprobs, t)
            for t, turn in enumerate(trajectory.turns) if turn.action_ids]
