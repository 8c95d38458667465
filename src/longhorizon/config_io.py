"""Reading typed configs: a YAML file, then `--set KEY=VALUE` overrides (the train and eval configs alike).

    data = apply_overrides(read_yaml("recipes/eval/execution.yaml"), ["episodes=8", "env_kwargs.dict_size=5"])
    cfg = EvalConfig.model_validate(data)

A missing file, malformed YAML or a malformed `--set` raises `UserError`;
unknown keys and bad values are left to the config's own validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from longhorizon.errors import UserError

Config = TypeVar("Config", bound=BaseModel)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise UserError(f"cannot read config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
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
    return cls.model_validate(apply_overrides(data, list(overrides)))
