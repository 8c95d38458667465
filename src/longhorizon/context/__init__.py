"""Context strategies, chosen by name: `STRATEGIES[name](**options)`."""

from __future__ import annotations

from typing import Any

from longhorizon.context.base import ContextStrategy, EpisodeView
from longhorizon.context.full import FullHistory
from longhorizon.errors import UserError

STRATEGIES: dict[str, type[ContextStrategy]] = {
    "full": FullHistory,
}


def make_strategy(name: str, **options: Any) -> ContextStrategy:
    """Build a strategy by name; unknown names and options are user errors."""
    if name not in STRATEGIES:
        raise UserError(f"unknown context strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    try:
        return STRATEGIES[name](**options)
    except TypeError as err:
        raise UserError(f"bad options for context strategy {name!r}: {err}") from None


__all__ = ["ContextStrategy", "EpisodeView", "STRATEGIES", "make_strategy"]
