"""atomic_write / atomic_dir: the file or directory appears whole, or the old one stays."""

import pytest

from longhorizon.io import atomic_dir, atomic_write


def test_atomic_write_text_bytes_and_writer(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write(path, "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"
    atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    atomic_write(path, lambda tmp: tmp.write_text("from a writer"))
    assert path.read_text() == "from a writer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # no temporary left


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write(path, "old")

    def half(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, half)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_atomic_dir_replaces_or_refuses(tmp_path):
    target = tmp_path / "d"
    atomic_dir(target, lambda tmp: (tmp / "x").write_text("1"))
    atomic_dir(target, lambda tmp: (tmp / "y").write_text("2"))
    assert [p.name for p in target.iterdir()] == ["y"]
    with pytest.raises(OSError):
        atomic_dir(target, lambda tmp: (tmp / "z").write_text("3"), replace=False)
    assert [p.name for p in target.iterdir()] == ["y"] and sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_atomic_dir_failure_keeps_the_old_directory(tmp_path):
    target = tmp_path / "d"
    atomic_dir(target, lambda tmp: (tmp / "x").write_text("1"))

    def fail(tmp):
        (tmp / "partial").write_text("?")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_dir(target, fail)
    assert [p.name for p in target.iterdir()] == ["x"] and sorted(p.name for p in tmp_path.iterdir()) == ["d"]
