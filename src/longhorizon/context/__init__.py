"""Context strategies, chosen by name: `make_strategy(name, **options)`.

    make_strategy("window", k=4)
    make_strategy("markovian", mode="chunked", chunk=256, carryover=128, head=16)
    make_strategy("workspace", reminder_every=8)
    make_strategy("memory", base="window", base_options={"k": 2}, top_k=3)

Every strategy also takes `reminder_every: int | None` (the task statement
re-injected into the prompt every k turns, `context/reminder.py`).
Unknown names and options are user errors that name them.
"""

from __future__ import annotations

import inspect
from typing import Any

from longhorizon.context.base import ChunkPlan, ContextStrategy, EpisodeView, StrategyWrapper
from longhorizon.context.full import FullHistory
from longhorizon.context.markovian import Markovian
from longhorizon.context.memory import Memory
from longhorizon.context.reminder import Reminder
from longhorizon.context.window import Window
from longhorizon.context.workspace import Workspace
from longhorizon.errors import UserError

STRATEGIES: dict[str, type[ContextStrategy]] = {
    "full": FullHistory,
    "window": Window,
    "markovian": Markovian,
    "workspace": Workspace,
    "memory": Memory,
}
COMMON_OPTIONS = ("reminder_every",)


def strategy_options(name: str) -> list[str]:
    """The options a strategy takes (its constructor's keyword arguments, plus the common ones)."""
    params = inspect.signature(STRATEGIES[name].__init__).parameters.values()
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.name != "self" and p.kind in named] + list(COMMON_OPTIONS)


def make_strategy(name: str, **options: Any) -> ContextStrategy:
    """Build a strategy by name; unknown names and options, and bad values, are user errors."""
    if name not in STRATEGIES:
        raise UserError(f"unknown context strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    known = strategy_options(name)
    for key in options:
        if key not in known:
            raise UserError(f"unknown option {key!r} for context strategy {name!r}; "
                            f"options: {', '.join(known) or 'none'}")
    every = options.pop("reminder_every", None)
    try:
        strategy = STRATEGIES[name](**options)
        return strategy if every is None else Reminder(strategy, every)
    except (TypeError, ValueError) as err:
        raise UserError(f"context strategy {name!r}: {err}") from None


__all__ = ["ChunkPlan", "ContextStrategy", "EpisodeView", "STRATEGIES", "StrategyWrapper", "make_strategy",
           "strategy_options"]
