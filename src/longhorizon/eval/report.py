"""Plots for horizon evaluations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_horizon_curves(metrics: dict[str, Any], path: str | Path) -> Path:
    """Two panels: success vs horizon (with SE bars and H_s), per-step accuracy vs turn."""
    rows = metrics["horizons"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    hs = [r["horizon"] for r in rows]
    ax1.errorbar(hs, [r["success_rate"] for r in rows], yerr=[r["success_se"] for r in rows], marker="o", capsize=3)
    h_s = metrics["horizon_length"] or {"s": 0.5, "censored": "n/a"}
    ax1.axhline(h_s["s"], color="grey", ls="--", lw=0.8)
    if h_s["censored"] is None:
        ax1.axvline(h_s["value"], color="tab:red", ls=":", lw=1, label=f"H_{h_s['s']:g} = {h_s['value']:.2f}")
        ax1.legend()
    ax1.set(xscale="log", xlabel=f"{metrics['horizon_knob'] or 'setting'}", ylabel="task success rate", ylim=(-0.02, 1.02),
            title=f"{metrics['model']} on {metrics['env_id']}")
    ax1.set_xticks(hs, [str(h) for h in hs])
    for r in rows:
        acc = r.get("per_step_accuracy", [])
        turns = [i + 1 for i, a in enumerate(acc) if a is not None]
        ax2.plot(turns, [a for a in acc if a is not None], marker=".", label=f"H={r['horizon']}")
    ax2.set(xlabel="turn", ylabel="per-step accuracy", ylim=(-0.02, 1.02), title="per-step accuracy by turn")
    ax2.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
