"""Metrics: one JSON line per record in RUN_DIR/metrics.jsonl, the same scalars in TensorBoard, a PNG at the end.

Names are namespaced like CleanRL: `charts/` (rewards, success, learning
rate), `losses/` (policy, value, KL, entropy, clip fraction, grad norm),
`credit/` (advantage statistics), `perf/` (times, tokens/s, peak memory),
`eval/` (held-out evaluation).

On resume, records after the checkpoint's step are dropped from the JSONL
and TensorBoard purges them (`purge_step`), so redone steps are not logged twice.
"""

from __future__ import annotations

import json
import math
import resource
import shutil
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from longhorizon.io import atomic_write  # noqa: E402


class MetricsLog:
    """Append-only metric records, mirrored to TensorBoard."""

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.path, tb = Path(run_dir) / "metrics.jsonl", Path(run_dir) / "tb"
        if resume_step is None:  # a fresh run: forget whatever an earlier attempt logged
            self.path.unlink(missing_ok=True)
            shutil.rmtree(tb, ignore_errors=True)
        else:
            _truncate_after(self.path, resume_step)
        self.writer = SummaryWriter(str(tb), purge_step=None if resume_step is None else resume_step + 1)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _truncate_after(path: Path, step: int) -> None:
    if not path.exists():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and json.loads(line)["step"] <= step]
    atomic_write(path, "".join(line + "\n" for line in kept))


def peak_memory_mb(device: str) -> float:
    """Peak GPU memory allocated on CUDA, else the process's peak resident set size."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def all_finite(metrics: dict[str, float]) -> bool:
    return all(math.isfinite(v) for v in metrics.values())


def plot_curves(run_dir: Path, path: Path) -> Path:
    """Training reward and success per step (left); held-out reward with standard errors (right)."""
    records = read_records(run_dir)
    train = [r for r in records if "charts/reward_mean" in r]
    evals = [r for r in records if "eval/reward_mean" in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot([r["step"] for r in train], [r["charts/reward_mean"] for r in train], marker=".", label="reward")
    ax1.plot([r["step"] for r in train], [r["charts/success_rate"] for r in train], marker=".", label="success")
    ax1.set(xlabel="step", ylabel="training episodes", title="training rollouts")
    ax1.legend()
    ax2.errorbar([r["step"] for r in evals], [r["eval/reward_mean"] for r in evals],
                 yerr=[r["eval/reward_se"] for r in evals], marker="o", capsize=3, label="reward")
    ax2.errorbar([r["step"] for r in evals], [r["eval/success_rate"] for r in evals],
                 yerr=[r["eval/success_se"] for r in evals], marker="s", capsize=3, label="success")
    ax2.set(xlabel="step", ylabel="held-out episodes", title="held-out evaluation (± 1 se)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
