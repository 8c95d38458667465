"""Env knobs, declared once: one typed model per env (type, default, bounds and a description per knob).

The model validates the constructor's keyword arguments (`gymnasium.make(id, horizon=...)`), with a
one-line error that names the knob; unknown knobs are refused. `longhorizon envs` prints its fields.
"""

from __future__ import annotations

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
    def parse(cls: type[K], values: dict[str, Any]) -> K:
        """The validated knobs, or a one-line ValueError naming the first bad knob."""
        try:
            return cls(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = ".".join(str(part) for part in err["loc"][:1])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                raise ValueError(f"unknown knob {name!r}; known: {', '.join(cls.model_fields)}") from None
            where = f"knob {name!r}: " if name else ""
            raise ValueError(f"{where}{msg} (got {err.get('input')!r})" if name else msg) from None

    @classmethod
    def table(cls) -> dict[str, dict[str, Any]]:
        """Each knob's description and default, for `longhorizon envs`."""
        return {name: {"description": f.description, "default": f.default} for name, f in cls.model_fields.items()}


def set_knobs(env: Any, model: type[K], values: dict[str, Any]) -> K:
    """Validate `values` with `model` and set each knob as an attribute of `env`; returns the knobs."""
    knobs = model.parse(values)
    for name in type(knobs).model_fields:
        setattr(env, name, getattr(knobs, name))
    return knobs
