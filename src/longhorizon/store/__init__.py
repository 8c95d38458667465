"""The run directory: one folder holding a run's config, metrics, trajectories and plots."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from longhorizon.errors import UserError
from longhorizon.io import atomic_write
from longhorizon.types import Trajectory, jsonable, save_trajectories


class RunDir:
    """`runs/NAME/`: config.yaml, metrics.json, trajectories.jsonl, plots."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create output directory {self.path}: {err.strerror}") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise UserError(f"output directory {self.path} is not writable")

    def write_config(self, config: dict[str, Any]) -> Path:
        return self._write("config.yaml", yaml.safe_dump(jsonable(config), sort_keys=False))

    def write_metrics(self, metrics: dict[str, Any], name: str = "metrics.json") -> Path:
        return self._write(name, json.dumps(jsonable(metrics), indent=2))

    def write_trajectories(self, trajectories: list[Trajectory], name: str = "trajectories.jsonl") -> Path:
        return atomic_write(self.path / name, lambda tmp: save_trajectories(tmp, trajectories))

    def _write(self, name: str, text: str) -> Path:
        """Write through a temporary file and rename, so a crash never leaves half a file."""
        return atomic_write(self.path / name, text)


def first_missing(path: str | Path) -> Path | None:
    """The outermost directory of `path` that does not exist yet (None if `path` exists): what to remove
    if a command that would have created `path` fails before writing anything worth keeping."""
    missing = None
    for p in [Path(path), *Path(path).parents]:
        if p.exists():
            return missing
        missing = p
    return missing
