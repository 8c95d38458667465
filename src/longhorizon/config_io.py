"""Reading typed configs: a YAML file, then `--set KEY=VALUE` overrides (the train and eval configs alike).

    data = apply_overrides(read_yaml("recipes/eval/execution.yaml"), ["episodes=8", "env_kwargs.dict_size=5"])
    cfg = EvalConfig.model_validate(data)

A missing file, malformed YAML (with its line and column) or a malformed
`--set` raises `UserError`; so does `validate` for an unknown key (with the
closest valid key) or a bad value (naming the key).
"""

from __future__ import annotations

from pathlib import Path
import difflib
import types
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from longhorizon.errors import ConfigError, UserError

Config = TypeVar("Config", bound=BaseModel)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise UserError(f"cannot read config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise UserError(yaml_error(path, err)) from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of config keys")
    return data


def set_key(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """data["a"]["b"] = value for key "a.b" (sections are created as needed)."""
    *parents, leaf = key.strip().split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"--set {key}: {part} is not a section")
    node[leaf] = value
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`["algorithm.kl_coef=0.02"]` sets data["algorithm"]["kl_coef"] = 0.02 (values parsed as YAML)."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set takes KEY=VALUE, like algorithm.kl_coef=0.02; got {item!r}")
        set_key(data, key, parse_value(value, f"--set {key}"))
    return data


def parse_value(text: str, where: str) -> Any:
    """A command-line value read as a YAML scalar or flow collection ('' stays '')."""
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as err:
        raise UserError(f"{where}: {text!r} is not a YAML value ({str(err).splitlines()[0]})") from None


def load(cls: type[Config], path: str | Path | None, overrides: list[str] = ()) -> Config:
    """A validated `cls` from a YAML file (or the defaults) plus `--set` overrides."""
    data = read_yaml(path) if path is not None else {}
    return validate(cls, apply_overrides(data, list(overrides)))


def yaml_error(path: str | Path, err: yaml.YAMLError) -> str:
    """`recipe.yaml:3:2: not valid YAML: expected ',' or ']', but got ':'` (line and column 1-based)."""
    mark = getattr(err, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{where}: not valid YAML: {problem}"


def validate(cls: type[Config], data: dict[str, Any]) -> Config:
    """`cls.model_validate(data)`; its first error as one `ConfigError` line naming the key."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(explain(err, cls), tuple(err.errors()[0]["loc"])) from None


def explain(err: ValidationError, cls: type[BaseModel]) -> str:
    """One line for a config's first validation error; an unknown key gets the closest valid one."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    key = ".".join(loc) or "config"
    if first["type"] != "extra_forbidden":
        return f"{key}: {first['msg']}"
    valid = section_keys(cls, loc[:-1])
    close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.6)
    hint = f"did you mean {'.'.join([*loc[:-1], close[0]])!r}?" if close else f"valid keys here: {', '.join(valid)}"
    return f"unknown key {key!r}: {hint} (`longhorizon config` lists every key)"


def section_keys(cls: type[BaseModel], path: list[str]) -> list[str]:
    """The field names of the (nested) config section at `path` ([] = the top level)."""
    for part in path:
        field = cls.model_fields.get(part)
        sub = config_class(field.annotation) if field is not None else None
        if sub is None:
            return []
        cls = sub
    return list(cls.model_fields)


def config_class(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model in an annotation (`X`, `X | None`, `Optional[X]`), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        return next((c for a in get_args(annotation) if (c := config_class(a)) is not None), None)
    return None


def describe(cls: type[BaseModel], values: dict[str, Any] | None = None, prefix: str = "") -> list[dict[str, str]]:
    """Every key of a config, nested sections flattened (`algorithm.kl_coef`): type, default, description,
    and the value in `values` (a resolved config's `model_dump()`) when given."""
    rows = []
    for name, field in cls.model_fields.items():
        key, sub = f"{prefix}{name}", config_class(field.annotation)
        value = (values or {}).get(name) if values is not None else None
        if sub is not None:
            rows += describe(sub, value if isinstance(value, dict) else ({} if values is not None else None), f"{key}.")
            continue
        default = field.get_default(call_default_factory=True)
        row = {"key": key, "type": type_name(field.annotation), "default": yaml_text(default),
               "description": field.description or ""}
        if values is not None:
            row["value"] = yaml_text(value)
        rows.append(row)
    return rows


def type_name(annotation: Any) -> str:
    """`int | None`, `grpo | rloo | ...` (a Literal's values), `list[int]`: readable, without `typing.`."""
    if get_origin(annotation) is Literal:
        return " | ".join(str(a) for a in get_args(annotation))
    if get_origin(annotation) in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(annotation))
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type) and not get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def yaml_text(value: Any) -> str:
    """A value as it would be written in YAML (one line)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()
