"""Env knobs, declared once: one typed model per env (type, default, bounds and a description per knob).

The model validates the constructor's keyword arguments (`gymnasium.make(id, horizon=...)`), with a
one-line `KnobError` that names the knob and the env; an unknown knob is refused with the closest valid
one and the list of valid knobs. `longhorizon envs` prints its fields.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, TypeVar

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict, ValidationError

K = TypeVar("K", bound="Knobs")


def _exact_int(value: Any) -> Any:
    """Integers only: no bools, floats or strings (numpy integers are fine)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError("must be an integer")
    return int(value)


def _real(value: Any) -> Any:
    """Numbers only: no bools or strings."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError("must be a number")
    return float(value)


Int = Annotated[int, BeforeValidator(_exact_int)]
Real = Annotated[float, BeforeValidator(_real)]
Flag = Annotated[bool, Strict()]


class Knobs(BaseModel):
    """Base of each env's knob model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls: type[K], values: dict[str, Any], env: type | None = None) -> K:
        """The validated knobs of `env` (a class, named in errors), or a one-line KnobError on the first bad knob."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise KnobError(_knob_message(cls, exc.errors()[0], env_name(env))) from None

    @classmethod
    def table(cls) -> dict[str, dict[str, Any]]:
        """Each knob's description and default, for `longhorizon envs`."""
        return {name: {"description": f.description, "default": f.default} for name, f in cls.model_fields.items()}


class KnobError(ValueError):
    """A bad or unknown knob: one line naming the knob and the env."""


def _knob_message(model: type[Knobs], err: dict[str, Any], env: str | None) -> str:
    """One line for pydantic's first error: the knob, the env, what is wrong (and, if unknown, the valid knobs)."""
    name = ".".join(str(part) for part in err["loc"][:1])
    if err["type"] == "extra_forbidden":
        valid = list(model.model_fields)
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown knob {name!r}{f' for {env}' if env else ''}{hint}; valid knobs: {', '.join(valid)}"
    msg = err["msg"].removeprefix("Value error, ")
    if not name:  # a check across knobs
        return f"{env}: {msg}" if env else msg
    return f"knob {name!r}{f' of {env}' if env else ''}: {msg} (got {err.get('input')!r})"


def env_name(env: type | None) -> str | None:
    """The registered id of an env class (e.g. longhorizon/Execution-v0), else its class name."""
    if env is None:
        return None
    from longhorizon.envs import ENTRY_POINTS

    target = f"{env.__module__}:{env.__qualname__}"
    return next((env_id for env_id, entry in ENTRY_POINTS.items() if entry == target), env.__name__)


def set_knobs(env: Any, model: type[K], values: dict[str, Any]) -> K:
    """Validate `values` with `model` and set each knob as an attribute of `env`; returns the knobs."""
    knobs = model.parse(values, type(env))
    for name in type(knobs).model_fields:
        setattr(env, name, getattr(knobs, name))
    return knobs
