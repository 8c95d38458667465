"""Crash-safe writes: a file or a directory appears whole under its name, or not at all.

`atomic_write(path, data)` writes to a temporary file in the same directory,
fsyncs it, `os.replace`s it onto `path` and fsyncs the directory. `data` is
text, bytes, or a callable that writes the temporary path itself (e.g.
`save_trajectories`). `atomic_dir(path, write)` does the same for a directory:
`write(tmp_dir)` fills it, then it is fsynced and renamed onto `path`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

Data = str | bytes | Callable[[Path], object]


def atomic_write(path: str | Path, data: Data) -> Path:
    """Write `data` to `path` through a fsynced temporary file and one `os.replace`."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            if not callable(data):
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
        if callable(data):
            data(tmp)
        fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync(path.parent)
    return path


def atomic_dir(path: str | Path, write: Callable[[Path], object], tmp: Path | None = None, replace: bool = True) -> Path:
    """Fill a temporary directory with `write(tmp)`, fsync it and rename it to `path`.

    `tmp` names the temporary directory (default: a fresh one beside `path`). With
    `replace`, an existing `path` is removed just before the rename; without, the
    rename fails with OSError if `path` exists.
    """
    path = Path(path)
    tmp = Path(tmp) if tmp is not None else Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        tmp.mkdir(exist_ok=True)
        write(tmp)
        for file in (p for p in tmp.rglob("*") if p.is_file()):
            fsync(file)
        fsync(tmp)
        if replace and path.exists():
            shutil.rmtree(path)
        os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fsync(path.parent)
    return path


def fsync(path: Path) -> None:
    """Flush a file's or a directory's contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
