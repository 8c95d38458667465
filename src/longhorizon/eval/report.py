"""Plots for horizon evaluations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_horizon_curves(metrics: dict[str, Any], path: str | Path) -> Path:
    """Two panels: success vs horizon (with SE bars and H_s, marked even when censored), per-step accuracy vs turn."""
    rows = metrics["horizons"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    hs = [r["horizon"] for r in rows]
    knob = metrics["horizon_knob"] or "setting"
    ax1.errorbar(hs, [r["success_rate"] for r in rows], yerr=[r["success_se"] for r in rows], marker="o", capsize=3,
                 label="success ± 1 se")
    if all("success_ci" in r for r in rows):  # bootstrap band (eval/bootstrap.py)
        ci = metrics.get("horizon_length_ci") or {}
        ax1.fill_between(hs, [r["success_ci"][0] for r in rows], [r["success_ci"][1] for r in rows], alpha=0.2,
                         label=f"{ci.get('level', 0.95):.0%} bootstrap band")
    h_s = metrics["horizon_length"]
    if h_s is not None:
        ax1.axhline(h_s["s"], color="grey", ls="--", lw=0.8)
        ax1.axvline(h_s["value"], color="tab:red", ls=":", lw=1)
        if metrics.get("horizon_length_ci"):
            ax1.axvspan(metrics["horizon_length_ci"]["low"], metrics["horizon_length_ci"]["high"], color="tab:red",
                        alpha=0.08, label=h_s_ci_label(metrics["horizon_length_ci"], h_s["s"]))
        ax1.plot([h_s["value"]], [h_s["s"]], marker=H_S_MARKERS[h_s["censored"]], color="tab:red", ms=9, ls="none",
                 label=h_s_label(h_s))
    partial = "" if metrics.get("complete", True) else f" (unfinished: {metrics['episodes_done']}/{metrics['episodes_total']} episodes)"
    ax1.set(xscale="log", xlabel=f"horizon ({knob})", ylabel="task success rate", ylim=(-0.02, 1.02),
            title=f"{metrics['model']} on {metrics['env_id']}{partial}")
    ax1.minorticks_off()  # the horizons themselves are the ticks
    ax1.set_xticks(hs, [str(h) for h in hs])
    ax1.set_xlim(min(hs) / 1.4, max(hs) * 1.4)
    ax1.legend(fontsize=8)
    for r in rows:
        acc = r.get("per_step_accuracy", [])
        turns = [i + 1 for i, a in enumerate(acc) if a is not None]
        ax2.plot(turns, [a for a in acc if a is not None], marker=".", label=f"H={r['horizon']}")
    ax2.set(xlabel="turn", ylabel="per-step accuracy", ylim=(-0.02, 1.02), title="per-step accuracy by turn")
    if ax2.lines:
        ax2.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


# H_s is drawn at (value, s): a dot when interpolated; an arrow-like triangle where it is censored (past the
# largest horizon tried: pointing right; before the smallest: pointing left).
H_S_MARKERS = {None: "o", "above": ">", "below": "<"}


def h_s_label(h_s: dict[str, Any]) -> str:
    bound = {"above": "≥ ", "below": "< "}.get(h_s["censored"] or "", "")
    censored = " (censored)" if h_s["censored"] else ""
    return f"H_{h_s['s']:g} {bound or '= '}{h_s['value']:.2f}{censored}"


def h_s_ci_label(ci: dict[str, Any], s: float) -> str:
    return f"H_{s:g} {ci['level']:.0%} CI [{ci['low']:.2f}, {ci['high']:.2f}]"
