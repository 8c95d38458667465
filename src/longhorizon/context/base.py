"""The context-strategy interface: how the prompt for turn t is built, and how a
finished episode becomes training samples.

A strategy sees an `EpisodeView`: the episode's turns so far, the observation
the agent must now answer, the env's system prompt and tools. It returns the
exact prompt token ids. After the episode, `to_samples` turns the Trajectory
into `Sample`s whose `loss_mask` covers only tokens the model sampled.
Strategies are picked by name from `STRATEGIES` (see `context/__init__.py`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from longhorizon.types import Sample, Trajectory, Turn


@dataclass
class EpisodeView:
    """What a strategy may look at when building the next prompt."""

    turns: list[Turn]
    observation: str
    role: str = "user"
    system_prompt: str | None = None
    tools: list[dict[str, Any]] | None = None
    roles: list[str] = field(default_factory=list)  # role of each past turn's observation


class ContextStrategy(ABC):
    """Builds prompts during rollouts and samples for training."""

    name: str = ""

    @abstractmethod
    def build_prompt(self, episode: EpisodeView, tokenizer: Any) -> list[int]:
        """Token ids of the prompt for the next model call."""

    @abstractmethod
    def to_samples(self, trajectory: Trajectory, turn_advantages: list[float]) -> list[Sample]:
        """Training rows for a finished episode; `turn_advantages[t]` applies to turn t's sampled tokens."""


def render(tokenizer: Any, messages: list[dict[str, str]], tools: list[dict] | None, generation_prompt: bool) -> str:
    """The chat template applied to messages, as text."""
    return tokenizer.apply_chat_template(
        messages, tools=tools, add_generation_prompt=generation_prompt, tokenize=False
    )


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of text that already contains its special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
