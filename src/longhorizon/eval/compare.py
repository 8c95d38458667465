"""Side-by-side report of several horizon evaluations (e.g. one per context strategy).

`compare_runs(run_dirs, out)` reads each run's `config.yaml` and `metrics.json`
(as `longhorizon eval` writes them) and writes `out/report.md` (one table per
env: success ± SE, mean reward ± SE, mean per-step accuracy, turns survived,
prompt tokens and the env's own metrics at every horizon) and `out/comparison.png` (one row of panels per
env: success vs horizon, reward vs horizon, prompt tokens by turn at the
longest horizon). Runs are labelled by model and context strategy (with its
options) unless labels are given. `longhorizon compare RUN... --out DIR` is the
command-line form.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from longhorizon.errors import UserError  # noqa: E402
from longhorizon.io import atomic_write  # noqa: E402


@dataclass
class EvalRun:
    path: Path
    label: str
    config: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def env_id(self) -> str:
        return self.metrics["env_id"]


def load_run(path: str | Path, label: str | None = None) -> EvalRun:
    """One evaluation run directory; a missing or unreadable file is a user error."""
    path = Path(path)
    files = {name: path / name for name in ("config.yaml", "metrics.json")}
    for name, file in files.items():
        if not file.is_file():
            raise UserError(f"{path} is not a finished eval run: {name} is missing")
    try:
        config = yaml.safe_load(files["config.yaml"].read_text(encoding="utf-8")) or {}
        metrics = json.loads(files["metrics.json"].read_text(encoding="utf-8"))
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: cannot read its config or metrics ({err})") from None
    if "horizons" not in metrics or "env_id" not in metrics:
        raise UserError(f"{path}/metrics.json is not a horizon evaluation (no 'horizons' or 'env_id')")
    return EvalRun(path, label or default_label(config, metrics), config, metrics)


def default_label(config: dict[str, Any], metrics: dict[str, Any]) -> str:
    """`model / context k=v,...` (model as named in the config; a path is shortened to its last parts)."""
    model = str(config.get("model", metrics.get("model", "?")))
    if "/" in model:
        model = "/".join(Path(model).parts[-2:])
    context = config.get("context", "full")
    options = ",".join(f"{k}={v}" for k, v in (config.get("context_options") or {}).items())
    return f"{model} / {context}" + (f" {options}" if options else "")


def compare_runs(run_dirs: list[str | Path], out: str | Path, labels: list[str] | None = None,
                 title: str = "Evaluations compared") -> tuple[Path, Path]:
    """Write `report.md` and `comparison.png` into `out`; return their paths."""
    if not run_dirs:
        raise UserError("give at least one eval run directory")
    if labels is not None and len(labels) != len(run_dirs):
        raise UserError(f"{len(labels)} labels for {len(run_dirs)} runs")
    runs = [load_run(p, labels[i] if labels else None) for i, p in enumerate(run_dirs)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot = plot_comparison(runs, out / "comparison.png", title)
    report = out / "report.md"
    atomic_write(report, markdown(runs, title, plot.name))
    return report, plot


# ---------------------------------------------------------------- the table
def by_env(runs: list[EvalRun]) -> dict[str, list[EvalRun]]:
    groups: dict[str, list[EvalRun]] = {}
    for run in runs:
        groups.setdefault(run.env_id, []).append(run)
    return groups


def mean_step_accuracy(row: dict[str, Any]) -> float | None:
    acc = [a for a in row.get("per_step_accuracy", []) if a is not None]
    return sum(acc) / len(acc) if acc else None


def _fmt(x: float | None, spec: str = ".3f") -> str:
    """x formatted, or a dash when it is missing or NaN."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _env_metrics(row: dict[str, Any]) -> str:
    return ", ".join(f"{k} {_fmt(v, '.4g')}" for k, v in (row.get("env_metrics") or {}).items())


def markdown(runs: list[EvalRun], title: str, plot_name: str) -> str:
    lines = [f"# {title}", "", f"![comparison]({plot_name})", ""]
    for env_id, group in by_env(runs).items():
        knob = group[0].metrics.get("horizon_knob") or "setting"
        lines += [f"## {env_id}", "",
                  f"| run | {knob} | episodes | success ± SE | reward ± SE | step acc | turns survived | turns "
                  "| prompt tokens (mean / max per turn) | env metrics |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for run in group:
            prompt = run.metrics.get("prompt_tokens_by_turn") or []
            longest = max(r["horizon"] for r in run.metrics["horizons"])
            for row in run.metrics["horizons"]:
                tokens = (f"{sum(prompt) / len(prompt):.0f} / {max(prompt):.0f}"
                          if prompt and row["horizon"] == longest else "")
                lines.append(
                    f"| {run.label} | {row['horizon']} | {row['episodes']} "
                    f"| {_fmt(row['success_rate'])} ± {_fmt(row['success_se'])} "
                    f"| {_fmt(row['mean_reward'], '.4g')} ± {_fmt(row.get('reward_se'), '.4g')} "
                    f"| {_fmt(mean_step_accuracy(row))} | {_fmt(row.get('mean_turns_survived'), '.2f')} "
                    f"| {_fmt(row.get('mean_turns'), '.1f')} | {tokens} "
                    f"| {_env_metrics(row)} |")
        lines.append("")
        lines.append("H_s and wall time: " + "; ".join(f"{run.label}: {h_text(run.metrics)}"
                                                        + (f", {run.metrics['wall_seconds']:.0f} s"
                                                           if "wall_seconds" in run.metrics else "")
                                                        for run in group))
        lines.append("")
    lines += ["Prompt tokens are the mean prompt length at each turn of the longest horizon "
              "(for chunked answers, the longest chunk prompt of the turn); the table gives their mean and "
              "maximum over turns. Runs: " + ", ".join(f"`{run.path}`" for run in runs), ""]
    return "\n".join(lines)


def h_text(metrics: dict[str, Any]) -> str:
    h = metrics.get("horizon_length")
    if not h:
        return "H_s n/a"
    bound = {"above": ">= ", "below": "< "}.get(h.get("censored") or "", "")
    return f"H_{h['s']:g} {bound}{h['value']:.2f}"


# ---------------------------------------------------------------- the plot
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
DASHES = ("-", "--", ":", "-.")


def plot_comparison(runs: list[EvalRun], path: str | Path, title: str | None = None) -> Path:
    groups = by_env(runs)
    fig, axes = plt.subplots(len(groups), 3, figsize=(15, 4.2 * len(groups)), squeeze=False)
    for (env_id, group), (ax_s, ax_r, ax_p) in zip(groups.items(), axes):
        knob = group[0].metrics.get("horizon_knob") or "setting"
        for i, run in enumerate(group):
            rows = run.metrics["horizons"]
            hs = [r["horizon"] for r in rows]
            # equal curves would hide each other: each run gets its own marker, dash and a small sideways shift
            style = {"marker": MARKERS[i % len(MARKERS)], "ls": DASHES[i % len(DASHES)], "label": run.label}
            shifted = [h * (1 + 0.03 * (i - (len(group) - 1) / 2)) for h in hs]
            ax_s.errorbar(shifted, [r["success_rate"] for r in rows], yerr=[r["success_se"] for r in rows],
                          capsize=3, **style)
            ax_r.errorbar(shifted, [r["mean_reward"] for r in rows], yerr=[r.get("reward_se") or 0.0 for r in rows],
                          capsize=3, **style)
            prompt = run.metrics.get("prompt_tokens_by_turn") or []
            ax_p.plot(range(1, len(prompt) + 1), prompt, **style)
        short = env_id.split("/")[-1]
        every_h = sorted({r["horizon"] for run in group for r in run.metrics["horizons"]})
        for ax in (ax_s, ax_r):
            ax.set_xscale("log")
            ax.minorticks_off()
            ax.set_xticks(every_h, [str(h) for h in every_h])
            ax.set_xlim(min(every_h) / 1.3, max(every_h) * 1.3)
            ax.set_xlabel(knob)
        ax_s.set(ylabel="task success rate", ylim=(-0.02, 1.02), title=f"{short}: success")
        ax_r.set(ylabel="mean episode reward", title=f"{short}: reward")
        ax_p.set(xlabel="turn (longest horizon)", ylabel="prompt tokens", title=f"{short}: prompt length per turn")
        ax_s.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
