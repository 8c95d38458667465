"""`window`: the system prompt and the task, plus the last k turns.

The prompt for turn t is re-rendered from text each turn:

    [system] (o_0, a_0) (o_{t-k}, a_{t-k}) ... (o_{t-1}, a_{t-1}) o_t

Turn 0 (the task o_0 and the agent's first answer a_0) is always kept whole,
so user and assistant messages keep alternating; then the last k of the
turns 1..t-1, then the current observation. With t <= k + 1 this is the same
chat as `full`. The prompt stays O(k) however long the episode runs.

Training: one row per turn, that turn's exact prompt ids (as recorded at
sampling time) then its sampled ids; the mask is 1 on the sampled ids only
and they carry that turn's advantage. Earlier actions appear in later prompts
as re-rendered text, i.e. as prompt tokens (mask 0), never as loss.
"""

from __future__ import annotations

from typing import Any

from longhorizon.context.base import (ContextStrategy, EpisodeView, chat_ids, per_turn_samples, role_of,
                                      system_messages)
from longhorizon.types import Sample, Trajectory


def window_turns(t: int, k: int) -> list[int]:
    """Indices of the past turns shown at turn t: turn 0, then the last k of 1..t-1."""
    if t == 0:
        return []
    return [0] + list(range(max(1, t - k), t))


def window_messages(episode: EpisodeView, k: int) -> list[dict[str, str]]:
    """The chat for the next turn (see module docstring)."""
    msgs = system_messages(episode)
    for i in window_turns(len(episode.turns), k):
        turn = episode.turns[i]
        msgs += [{"role": role_of(episode, i), "content": turn.observation},
                 {"role": "assistant", "content": turn.action}]
    msgs.append({"role": role_of(episode, len(episode.turns)), "content": episode.observation})
    return msgs


class Window(ContextStrategy):
    """Sliding window over turns; `k` past turns besides the task turn."""

    name = "window"

    def __init__(self, k: int = 4):
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise ValueError(f"option k must be an integer >= 0, got {k!r}")
        self.k = k

    def build_prompt(self, episode: EpisodeView, tokenizer: Any) -> list[int]:
        return chat_ids(tokenizer, window_messages(episode, self.k), episode.tools)

    def to_samples(self, trajectory: Trajectory) -> list[Sample]:
        """One row per turn (exact prompt ids + sampled ids, mask on the sampled ids only)."""
        return per_turn_samples(trajectory)
