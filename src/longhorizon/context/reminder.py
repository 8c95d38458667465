"""Reminder injection for any strategy (option `reminder_every` of every strategy).

From "Drift No More? Context Equilibria in Multi-Turn LLM Interactions"
(Dongre et al., arXiv 2510.07777): re-stating the original goal at chosen
turns lowers the equilibrium drift. Before turn t (0-based; t turns done),
when t >= 1 and t % every == 0, the current observation is shown as

    {observation}\\n\\nReminder of your task:\\n{task}

where the task is the env's `task_statement` if it has one, else the first
observation. The task statement comes from the env's `AgentSpec` through its
wrappers, so a wrapper that overrides `agent_spec` changes what is restated.
The reminder is applied to the prompt, so it works with every strategy, in
evaluation and in training alike, and costs no env change (it is the one
reminder: there is no env-wrapper version). It is prompt tokens (mask 0) of
that turn only; the stored `Turn.observation` stays the env's. `full` keeps it
in later prompts (they extend earlier prompts token by token); strategies that
re-render from text show it only at the turns where it is due.

Departures: the paper's turn choice is not known to us (every k turns here).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from longhorizon.context.base import ContextStrategy, EpisodeView, StrategyWrapper

HEADER = "Reminder of your task:"


class Reminder(StrategyWrapper):
    """Re-inject the task statement into the prompt every `every` turns."""

    def __init__(self, inner: ContextStrategy, every: int, header: str = HEADER):
        super().__init__(inner)
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"option reminder_every must be an integer >= 1, got {every!r}")
        self.every, self.header = every, header

    def due(self, t: int) -> bool:
        return t >= 1 and t % self.every == 0

    def build_prompt(self, episode: EpisodeView, tokenizer: Any) -> list[int]:
        return self.inner.build_prompt(self.remind(episode), tokenizer)

    def remind(self, episode: EpisodeView) -> EpisodeView:
        """The view with the reminder appended to the current observation when it is due."""
        if not self.due(len(episode.turns)):
            return episode
        task = episode.task_statement or episode.task
        return replace(episode, observation=f"{episode.observation}\n\n{self.header}\n{task}")
