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
    """Training rollouts per step (left) and held-out evaluations as points with ± 1 se bars (right).

    Reward (left axis of each panel) and success rate (right axis, 0 to 1) have their own scales; the
    title names the run, the algorithm and the env (from RUN_DIR/config.yaml).
    """
    records = read_records(run_dir)
    train = [r for r in records if "charts/reward_mean" in r]
    evals = [r for r in records if "eval/reward_mean" in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    steps = [r["step"] for r in train]
    reward_axes(ax1, steps, [r["charts/reward_mean"] for r in train], [r["charts/success_rate"] for r in train],
                line=True)
    ax1.set_title("training rollouts (mean over the step's episodes)", fontsize=10)
    reward_axes(ax2, [r["step"] for r in evals], [r["eval/reward_mean"] for r in evals],
                [r["eval/success_rate"] for r in evals], [r["eval/reward_se"] for r in evals],
                [r["eval/success_se"] for r in evals], line=False)
    n = f", {evals[-1]['eval/episodes']:.0f} episodes each" if evals else ""
    ax2.set_title(f"held-out evaluation (± 1 se{n})", fontsize=10)
    fig.suptitle(run_title(run_dir))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def reward_axes(ax, steps: list, reward: list, success: list, reward_se: list | None = None,
                success_se: list | None = None, line: bool = True) -> None:
    """Reward on `ax`, success rate on a twin axis; lines for per-step series, points with error bars otherwise."""
    style = {"ls": "-" if line else "none", "capsize": 0 if line else 4}
    ax.errorbar(steps, reward, yerr=reward_se, marker="." if line else "o", color="tab:blue", label="reward", **style)
    ax.set_xlabel("training step")
    ax.set_ylabel("mean episode reward", color="tab:blue")
    twin = ax.twinx()
    twin.errorbar(steps, success, yerr=success_se, marker="." if line else "s", color="tab:orange",
                  label="success rate", **style)
    twin.set_ylabel("success rate (every turn right)", color="tab:orange")
    twin.set_ylim(-0.02, 1.02)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, ["reward", "success rate"], fontsize=8, loc="upper left")
    if steps:
        ax.set_xlim(min(steps) - 0.5, max(steps) + 0.5)


def run_title(run_dir: Path) -> str:
    """'quickstart: grpo on longhorizon/Execution-v0 (horizon=2, ...)' from the run's config.yaml."""
    import yaml

    try:
        cfg = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return Path(run_dir).name
    knobs = ", ".join(f"{k}={v}" for k, v in (cfg.get("env_kwargs") or {}).items())
    return f"{Path(run_dir).name}: {cfg['algorithm']['name']} on {cfg['env_id']}" + (f" ({knobs})" if knobs else "")
