"""train/memory.py: glibc's thresholds are pinned, and free heap pages go back to the system."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from longhorizon.train import memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or memory._glibc() is None,
                                reason="glibc and /proc only")


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def rss_mib() -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


MMAPPED_AFTER_FREE = """
import ctypes, sys
from longhorizon.train import memory
from tests.test_memory import MallInfo2
libc = memory._glibc()
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    assert memory.tune_malloc()
libc.free(libc.malloc(16 << 20))  # untuned, this free raises the mmap threshold to 16 MiB
before = libc.mallinfo2().hblkhd
block = libc.malloc(1 << 20)
print(libc.mallinfo2().hblkhd - before)
"""


@pytest.mark.parametrize("mode, mmapped", [("tuned", True), ("untuned", False)])
def test_tune_malloc_keeps_large_blocks_out_of_the_heap(mode, mmapped):
    """In a fresh process (a clean heap), a 1 MiB block is its own mapping only with the thresholds pinned."""
    env = {k: v for k, v in os.environ.items() if k not in memory.USER_SETTINGS}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])
    out = subprocess.run([sys.executable, "-c", MMAPPED_AFTER_FREE, mode], env=env, capture_output=True, text=True, check=True)
    assert (int(out.stdout) >= 1 << 20) is mmapped


def test_tune_malloc_leaves_user_settings_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert memory.tune_malloc() is False


def test_release_memory_returns_free_heap_pages():
    libc = memory._glibc()
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(64 << 10) for _ in range(1600)]  # 100 MiB of heap chunks (below the threshold)
    for block in blocks:
        ctypes.memset(block, 1, 64 << 10)  # make them resident
    for block in blocks[:-1]:  # the last one pins the heap's top: free() alone cannot shrink it
        libc.free(block)
    held = rss_mib()
    memory.release_memory()
    assert held - rss_mib() > 80
    libc.free(blocks[-1])
