"""Peak resident memory of the quickstart, per phase and per step.

    python benchmarks/quickstart_memory.py [--set steps=4 --set eval.episodes=0 ...] [--trim] [--json OUT]

Runs `recipes/quickstart.yaml` (with the `--set` overrides) in a child process
whose loop phases are wrapped (the loop itself is not edited): load, eval,
rollout, collate, score, backward, clip, optimizer, checkpoint, export. After
each phase it records, from /proc/self/status and glibc's `mallinfo2`:

- `peak`: the highest RSS during the phase (VmHWM, reset before the phase
  through /proc/self/clear_refs);
- `rss`: RSS when the phase ends;
- `heap_used` / `heap_free`: bytes malloc has handed out (heap and mmap) and
  bytes it holds free in its heaps (what fragmentation costs: RSS that no
  tensor uses, kept because glibc cannot give it back).

`--trim` calls gc.collect() and malloc_trim(0) after every phase, which
separates live memory from memory glibc merely keeps. The child's peak RSS
over the whole run (phases and what runs between them) is printed last: what
`/usr/bin/time -v` would report, which cannot itself be used here because
resetting VmHWM resets the kernel's maximum too.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import json
import subprocess
import sys
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def heap_mb(libc: ctypes.CDLL) -> tuple[float, float]:
    """(bytes in use, bytes free inside malloc's heaps), in MiB."""
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return (info.uordblks + info.hblkhd) / 2**20, info.fordblks / 2**20


class PhaseLog:
    """Wraps callables so each call becomes a logged phase."""

    def __init__(self, trim: bool):
        self.libc, self.trim, self.step, self.rows, self.between = ctypes.CDLL("libc.so.6"), trim, 0, [], 0.0

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        def phase(*args, **kwargs):
            self.step += name == "rollout"  # each training step starts with its rollout
            self.between = max(self.between, status_mb("VmHWM"))  # the peak since the last phase ended
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
            result = fn(*args, **kwargs)
            self.record(name)
            return result
        return phase

    def record(self, name: str) -> None:
        used, free = heap_mb(self.libc)
        row = {"step": self.step, "phase": name, "peak": status_mb("VmHWM"), "rss": status_mb("VmRSS"),
               "heap_used": used, "heap_free": free}
        if self.trim:
            gc.collect()
            self.libc.malloc_trim(0)
            row["rss_trimmed"] = status_mb("VmRSS")
        self.rows.append(row)
        print(json.dumps(row), flush=True)


def child(sets: list[str], trim: bool) -> None:
    """Train with every phase wrapped; print one JSON line per phase."""
    from longhorizon.train import load_config, loop

    log = PhaseLog(trim)
    build_optimizer = loop.build_optimizer

    def build_and_wrap(cfg, models):
        optimizer, scheduler = build_optimizer(cfg, models)
        optimizer.step = log.wrap("optimizer", optimizer.step)
        return optimizer, scheduler

    loop.build_optimizer = build_and_wrap
    for attr, name in [("build_models", "load"), ("held_out_eval", "eval"), ("run_episodes", "rollout"),
                       ("collate", "collate"), ("score", "score"), ("minibatch_backward", "backward"),
                       ("clip_gradients", "clip"), ("save_checkpoint", "checkpoint"), ("export_model", "export")]:
        setattr(loop, attr, log.wrap(name, getattr(loop, attr)))
    loop.train(load_config(QUICKSTART, sets))
    print(json.dumps({"between_phases_peak": max(log.between, status_mb("VmHWM"))}), flush=True)


def summarise(rows: list[dict], peak_mb: float) -> None:
    phases = list(dict.fromkeys(r["phase"] for r in rows))
    steps = sorted({r["step"] for r in rows})
    print(f"\npeak RSS (MiB) per phase (columns) and step (rows); '*' = the run's highest phase")
    print("step " + "".join(f"{p:>11}" for p in phases) + "   rss_end  heap_free")
    top = max(r["peak"] for r in rows)
    for s in steps:
        cells = {r["phase"]: r for r in rows if r["step"] == s}  # the last call of a phase in the step
        peaks = {p: max(r["peak"] for r in rows if r["step"] == s and r["phase"] == p) for p in cells}
        line = "".join(f"{peaks[p]:>10.0f}{'*' if peaks[p] == top else ' '}" if p in peaks else f"{'':>11}" for p in phases)
        last = [r for r in rows if r["step"] == s][-1]
        print(f"{s:>4} {line}{last['rss']:>10.0f}{last['heap_free']:>11.0f}")
    print(f"\nwhole run: peak RSS {peak_mb:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", dest="sets", action="append", default=[], help="quickstart override KEY=VALUE")
    parser.add_argument("--trim", action="store_true", help="gc.collect() + malloc_trim(0) after every phase")
    parser.add_argument("--json", type=Path, help="also write every phase record to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.sets, args.trim)
    cmd = [sys.executable, __file__, "--child", *(a for s in args.sets for a in ("--set", s))] + (["--trim"] if args.trim else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"step"')]
    between = [json.loads(line)["between_phases_peak"] for line in proc.stdout.splitlines() if "between_phases" in line]
    peak = max([r["peak"] for r in rows] + between)  # clear_refs resets the kernel's own maximum (ru_maxrss)
    if args.json:
        args.json.write_text(json.dumps({"sets": args.sets, "trim": args.trim, "peak_mb": peak, "phases": rows}, indent=1))
    summarise(rows, peak)


if __name__ == "__main__":
    main()
