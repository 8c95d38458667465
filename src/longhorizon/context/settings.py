"""The `context` / `context_options` config fields, shared by the eval and training configs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator


CONTEXT_HELP = ("context strategy (see longhorizon.context.STRATEGIES); "
                "or a mapping with its options, {name: markovian, mode: chunked, chunk: 256}")
CONTEXT_OPTIONS_HELP = "options of the context strategy, e.g. {k: 4} for window"


class ContextSettings(BaseModel):
    """A pydantic mixin that checks a config's `context` and `context_options` when it is read.

    The two fields are declared by each config (`context_field()`,
    `context_options_field()`), so they keep their place in its written form.
    `context: {name: markovian, carryover: 8}` is read as `context: markovian`
    plus `context_options: {carryover: 8}` (giving both spellings is an error).
    Option names are checked against the strategy constructor's signature
    (`strategy_options`), without building it; their values are checked once,
    when the run builds the strategy (`make_strategy`, a one-line user error).
    """

    @model_validator(mode="before")
    @classmethod
    def _context_mapping(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("context"), dict):
            return data
        options = dict(data["context"])
        if "name" not in options:
            raise ValueError("context needs a name, e.g. context: {name: markovian, mode: chunked, chunk: 256}")
        if data.get("context_options"):
            raise ValueError("give the context options either inside context: {name: ..., ...} or as "
                             "context_options, not both")
        return {**data, "context": options.pop("name"), "context_options": options}

    @field_validator("context", check_fields=False)
    @classmethod
    def _known_context(cls, v: str) -> str:
        from longhorizon.context import STRATEGIES

        if v not in STRATEGIES:
            raise ValueError(f"unknown context strategy {v!r}; choose from {', '.join(STRATEGIES)}")
        return v

    @field_validator("context_options", check_fields=False)
    @classmethod
    def _known_context_options(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Option names are checked against the strategy's signature; values when the strategy is built."""
        from longhorizon.context import strategy_options

        if "context" not in info.data:  # the context name itself was rejected
            return v
        name, known = info.data["context"], strategy_options(info.data["context"])
        for key in v:
            if key not in known:
                raise ValueError(f"unknown option {key!r} for context strategy {name!r}; "
                                 f"options: {', '.join(known) or 'none'}")
        return v


def context_field() -> Any:
    return Field("full", description=CONTEXT_HELP)


def context_options_field() -> Any:
    return Field(default_factory=dict, description=CONTEXT_OPTIONS_HELP)
