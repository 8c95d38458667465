"""What a runs directory holds: runs, their trajectory files, episodes, and the tokenizer to read their tokens.

A run is a directory with `trajectories.jsonl` (an eval run) or
`trajectories/step_*.jsonl` and `eval/step_*.jsonl` (a training run), found
up to `MAX_DEPTH` levels below the runs directory (the runs directory itself
may be a run, named "."). Every name a request uses is looked up in these
listings, never joined onto a path, so no request can read outside them.
Parsed files are cached by (mtime, size), so a file a live run rewrites is
read again.

Tokenizer ("cheaply available"): a run whose config.yaml names the bundled
model or `tiny-random` uses the bundled tokenizer when its converted copy is
already in the cache (it is never converted here); a run naming a local model
directory uses that directory's `tokenizer.json`. It is read with the
`tokenizers` library alone (a fraction of a second; transformers and torch
would take seconds to import). Otherwise the viewer shows the observation text
instead of the decoded prompt, and token ids instead of token strings, and
says so.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from longhorizon.types import Trajectory, load_trajectories

MAX_DEPTH = 3
CACHE_FILES = 64
RUNS_TTL_S = 2.0  # the runs listing is walked again after this long (new runs appear)
STEP_RE = re.compile(r"step_(\d+)\.jsonl$")
SKIP_DIRS = {"checkpoints", "tb", "trajectories", "eval", "__pycache__"}
BUNDLED_MODELS = ("smollm2-135m", "tiny-random")  # both use the bundled tokenizer (longhorizon.models)


class NotFound(LookupError):
    """A run, file, episode or turn that the runs directory does not have."""


@dataclass(frozen=True)
class Source:
    """One trajectory file of a run."""

    path: str  # relative to the run directory, posix
    split: str  # "eval" or "train"
    step: int | None  # training step, None for an eval run's file


@dataclass(frozen=True)
class Run:
    name: str  # relative to the runs directory, posix ("." for the runs directory itself)
    path: Path
    kind: str  # "eval" or "train"
    sources: tuple[Source, ...]


@dataclass
class EpisodeRow:
    """One line of an episode listing."""

    run: str
    source: Source
    index: int
    traj: Trajectory

    @property
    def task(self) -> tuple[str, int, int | None]:
        return task_key(self.traj)


def task_key(traj: Trajectory) -> tuple[str, int, int | None]:
    """Episodes of the same task: same env, seed and horizon (a GRPO group shares them; so do eval repeats)."""
    return (traj.env_id, traj.seed, traj.horizon)


def run_sources(path: Path) -> tuple[Source, ...]:
    """The trajectory files of a run directory, in order: eval file, then training steps, then eval steps."""
    found = [Source("trajectories.jsonl", "eval", None)] if (path / "trajectories.jsonl").is_file() else []
    for sub, split in (("trajectories", "train"), ("eval", "eval")):
        files = sorted((path / sub).glob("step_*.jsonl")) if (path / sub).is_dir() else []
        found += [Source(f"{sub}/{f.name}", split, int(STEP_RE.search(f.name).group(1))) for f in files
                  if STEP_RE.search(f.name)]
    return tuple(found)


class Catalog:
    """The runs under one directory, with a small cache of parsed trajectory files."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self._cache: OrderedDict[Path, tuple[tuple[int, int], list[Trajectory]]] = OrderedDict()
        self._lock = threading.Lock()
        self._tokenizers: dict[str, Any] = {}
        self._runs: tuple[float, list[Run]] = (-RUNS_TTL_S, [])

    def runs(self) -> list[Run]:
        at, runs = self._runs
        if time.monotonic() - at > RUNS_TTL_S:
            runs = [run for path in self._run_dirs(self.root, 0) if (run := self._run(path))]
            self._runs = (time.monotonic(), runs)
        return runs

    def _run_dirs(self, path: Path, depth: int) -> list[Path]:
        if run_sources(path):
            return [path]
        if depth >= MAX_DEPTH:
            return []
        subdirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in SKIP_DIRS)
        return [run for sub in subdirs for run in self._run_dirs(sub, depth + 1)]

    def _run(self, path: Path) -> Run | None:
        sources = run_sources(path)
        kind = "train" if any(s.split == "train" or s.step is not None for s in sources) else "eval"
        name = path.relative_to(self.root).as_posix()
        return Run(name, path, kind, sources) if sources else None

    def run(self, name: str) -> Run:
        for run in self.runs():
            if run.name == name:
                return run
        raise NotFound(f"no run {name!r}")

    def source(self, run: Run, path: str) -> Source:
        for source in run.sources:
            if source.path == path:
                return source
        raise NotFound(f"run {run.name!r} has no trajectory file {path!r}")

    def trajectories(self, run: Run, source: Source) -> list[Trajectory]:
        """The episodes of one file (parsed once per version of the file)."""
        path = run.path / source.path
        stat = path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            hit = self._cache.get(path)
            if hit and hit[0] == version:
                self._cache.move_to_end(path)
                return hit[1]
        trajs = load_trajectories(path)
        with self._lock:
            self._cache[path] = (version, trajs)
            while len(self._cache) > CACHE_FILES:
                self._cache.popitem(last=False)
        return trajs

    def episode(self, run_name: str, source_path: str, index: int) -> tuple[Run, Source, Trajectory]:
        run = self.run(run_name)
        source = self.source(run, source_path)
        trajs = self.trajectories(run, source)
        if not 0 <= index < len(trajs):
            raise NotFound(f"{run_name}/{source_path} has no episode {index}")
        return run, source, trajs[index]

    def episodes(self, run: Run) -> list[EpisodeRow]:
        return [EpisodeRow(run.name, source, i, traj) for source in run.sources
                for i, traj in enumerate(self.trajectories(run, source))]

    def same_task(self, traj: Trajectory) -> list[EpisodeRow]:
        """Every episode in the runs directory of the same task as `traj`."""
        return [row for run in self.runs() for row in self.episodes(run) if row.task == task_key(traj)]

    # ------------------------------------------------------------ tokenizer
    def tokenizer(self, run: Run) -> Any | None:
        """The run's tokenizer if it is cheaply available (module docstring), else None."""
        where = tokenizer_dir(run.path)
        if where is None:
            return None
        key = str(where)
        if key not in self._tokenizers:
            self._tokenizers[key] = _load_tokenizer(where)
        return self._tokenizers[key]


def run_model(run_path: Path) -> str | None:
    """The `model` a run's config.yaml names, if any."""
    config = run_path / "config.yaml"
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) if config.is_file() else None
    except (OSError, yaml.YAMLError):
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) else None


def bundled_tokenizer_dir() -> Path:
    """`longhorizon.models.bundled.cache_dir() / TOKENIZER_DIR`, without importing torch (a test keeps them equal)."""
    cache = Path(os.environ.get("LONGHORIZON_CACHE") or Path.home() / ".cache" / "longhorizon")
    return cache / "smollm2-135m-instruct-tokenizer"


def tokenizer_dir(run_path: Path) -> Path | None:
    """Where the run's tokenizer.json is on disk, without converting or downloading anything."""
    model = run_model(run_path)
    if model in BUNDLED_MODELS:
        where = bundled_tokenizer_dir()
    elif model:
        where = Path(model)  # a local model directory (other names have no tokenizer on disk)
    else:
        return None
    return where if (where / "tokenizer.json").is_file() else None


def _load_tokenizer(where: Path) -> Any | None:
    try:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(where / "tokenizer.json"))
    except Exception:  # a broken tokenizer file: fall back to showing text
        return None
