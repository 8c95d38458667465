"""`longhorizon report RUN_DIR`: one self-contained HTML page for a run (eval or training).

    path = write_report("runs/eval", viewer_url="http://127.0.0.1:8765", runs_dir="runs")

The page (RUN_DIR/report.html unless told otherwise) shows:
- the headline numbers: per horizon success ± SE, its bootstrap band and
  reward, H_s with its interval (eval runs); first and last training and
  held-out eval metrics (training runs);
- the config (config.yaml as written);
- the curves as inline PNGs: horizon.png (redrawn from metrics.json), training
  curves from metrics.jsonl (reward, success, KL, entropy, the held-out eval),
  the horizon curves of eval runs inside the run directory (e.g. `horizon/`);
- the diagnostics when present (self_conditioning.json / drift.json and their PNGs);
- a table of episodes, each linking to the viewer (`longhorizon view`:
  VIEWER/episode?run=RUN&src=FILE&i=INDEX, RUN relative to the runs directory);
- the worst and best episodes, turn by turn.

Everything a run contains is untrusted text: the template is Jinja2 with
autoescape, images are `data:` URIs drawn here, and the page carries a
Content-Security-Policy that allows no script and no remote resource.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
import yaml

from longhorizon.errors import UserError
from longhorizon.io import atomic_write
from longhorizon.types import Trajectory, load_trajectories

HERE = Path(__file__).parent
VIEWER_URL = "http://127.0.0.1:8765"
MAX_ROWS = 1000  # episodes listed in the table (the rest are counted)
SHOWN = 2  # worst and best episodes rendered in full
STEP_RE = re.compile(r"step_(\d+)\.jsonl$")
# The training curves: panel title -> the metrics.jsonl keys drawn in it (missing keys are skipped).
CURVES: dict[str, tuple[str, ...]] = {
    "reward": ("charts/reward_mean", "eval/reward_mean"),
    "success": ("charts/success_rate", "eval/success_rate"),
    "KL": ("losses/approx_kl", "losses/kl_ref"),
    "entropy": ("losses/entropy",),
}
HEADLINE = ("charts/reward_mean", "charts/success_rate", "eval/reward_mean", "eval/success_rate",
            "losses/approx_kl", "losses/kl_ref", "losses/entropy")


@dataclass
class Episode:
    source: str  # the file, relative to the run directory
    index: int
    traj: Trajectory
    link: str

    @property
    def reward(self) -> float:
        return self.traj.total_reward


@dataclass
class Figure:
    title: str
    data_uri: str
    caption: str = ""


@dataclass
class Report:
    name: str
    kind: str  # "eval" or "training"
    config: str
    headline: list[tuple[str, str]] = field(default_factory=list)
    horizons: list[dict[str, Any]] = field(default_factory=list)
    h_s: str = ""
    figures: list[Figure] = field(default_factory=list)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    total_episodes: int = 0
    extremes: list[tuple[str, Episode]] = field(default_factory=list)


# ------------------------------------------------------------------ reading a run


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read {path}: {err}") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The lines that parse (a torn last line of a live run is skipped)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def run_kind(path: Path) -> str:
    if (path / "metrics.jsonl").is_file():
        return "training"
    if (path / "metrics.json").is_file() or (path / "trajectories.jsonl").is_file():
        return "eval"
    if any((path / f"{d}.json").is_file() for d in ("self_conditioning", "drift")):
        return "eval"
    raise UserError(f"{path} is not a run directory (no metrics.json, metrics.jsonl or trajectories)")


def trajectory_files(path: Path, kind: str) -> list[str]:
    """The run's episode files, relative to it: trajectories.jsonl, or eval/step_* then trajectories/step_*."""
    if kind == "eval":
        return ["trajectories.jsonl"] if (path / "trajectories.jsonl").is_file() else []
    files = sorted(path.glob("eval/step_*.jsonl")) + sorted(path.glob("trajectories/step_*.jsonl"))
    return [f.relative_to(path).as_posix() for f in files]


def load_episodes(path: Path, kind: str, run_name: str, viewer_url: str) -> list[Episode]:
    out = []
    for source in trajectory_files(path, kind):
        for i, traj in enumerate(load_trajectories(path / source)):
            out.append(Episode(source, i, traj, viewer_link(viewer_url, run_name, source, i)))
    return out


def viewer_link(base: str, run: str, src: str, i: int) -> str:
    """The viewer's episode page (see `longhorizon.ui.routes.episode_page`: run, src, i)."""
    return f"{base.rstrip('/')}/episode?{urlencode({'run': run, 'src': src, 'i': i})}"


# ------------------------------------------------------------------ figures


def png_uri(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def file_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def horizon_figure(metrics: dict[str, Any], title: str) -> Figure:
    from longhorizon.eval.report import plot_horizon_curves

    with tempfile.TemporaryDirectory() as tmp:
        return Figure(title, file_uri(plot_horizon_curves(metrics, Path(tmp) / "horizon.png")))


def training_figure(rows: list[dict[str, Any]]) -> Figure | None:
    """One panel per CURVES entry that the run logged, against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {title: [k for k in keys if any(k in r for r in rows)] for title, keys in CURVES.items()}
    panels = {t: ks for t, ks in panels.items() if ks}
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels.items()):
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if key in r and "step" in r]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=key)
        ax.set(title=title, xlabel="step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return Figure("training curves", png_uri(fig), "from metrics.jsonl")


# ------------------------------------------------------------------ the sections


def fmt(x: Any, spec: str = ".3f") -> str:
    return format(x, spec) if isinstance(x, (int, float)) and x == x else "–"


def h_s_text(metrics: dict[str, Any]) -> str:
    h, ci = metrics.get("horizon_length"), metrics.get("horizon_length_ci")
    if not h:
        return ""
    bound = {"above": "≥ ", "below": "< "}.get(h.get("censored") or "", "= ")
    text = f"H_{h['s']:g} {bound}{h['value']:.2f}"
    if ci:
        text += f" ({ci['level']:.0%} bootstrap CI [{ci['low']:.2f}, {ci['high']:.2f}], {ci['resamples']} resamples)"
    return text


def horizon_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"horizon": r["horizon"], "episodes": r["episodes"],
             "success": f"{fmt(r['success_rate'])} ± {fmt(r['success_se'])}",
             "band": "[{}, {}]".format(*(fmt(x) for x in r["success_ci"])) if "success_ci" in r else "",
             "reward": f"{fmt(r['mean_reward'], '.4g')} ± {fmt(r.get('reward_se'), '.4g')}"}
            for r in metrics.get("horizons", [])]


def eval_sections(report: Report, path: Path) -> None:
    if not (path / "metrics.json").is_file():
        return
    metrics = read_json(path / "metrics.json")
    report.horizons, report.h_s = horizon_rows(metrics), h_s_text(metrics)
    report.headline += [("model", str(metrics.get("model"))), ("env", str(metrics.get("env_id")))]
    if not metrics.get("complete", True):
        report.headline.append(("unfinished", f"{metrics['episodes_done']}/{metrics['episodes_total']} episodes"))
    if metrics.get("horizons"):
        report.figures.append(horizon_figure(metrics, "success vs horizon"))


def training_sections(report: Report, path: Path) -> None:
    rows = read_jsonl(path / "metrics.jsonl")
    steps = [r["step"] for r in rows if "step" in r]
    report.headline.append(("steps logged", f"{min(steps)}–{max(steps)}" if steps else "none"))
    for key in HEADLINE:
        values = [(r["step"], r[key]) for r in rows if key in r]
        if values:
            report.headline.append((key, f"{fmt(values[0][1], '.4g')} (step {values[0][0]}) → "
                                         f"{fmt(values[-1][1], '.4g')} (step {values[-1][0]})"))
    figure = training_figure(rows)
    if figure:
        report.figures.append(figure)
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and (p / "metrics.json").is_file()):
        metrics = read_json(sub / "metrics.json")
        if metrics.get("horizons"):
            report.figures.append(horizon_figure(metrics, f"{sub.name}/: success vs horizon"))
            report.figures[-1].caption = h_s_text(metrics)


def diagnostic_sections(report: Report, path: Path) -> None:
    for stem, title in (("self_conditioning", "self-conditioning"), ("drift", "drift")):
        if not (path / f"{stem}.json").is_file():
            continue
        data = read_json(path / f"{stem}.json")
        rows = data.get("rows") or [{"condition": label, **r} for label, rs in data.get("curves", {}).items() for r in rs]
        image = file_uri(path / f"{stem}.png") if (path / f"{stem}.png").is_file() else None
        report.diagnostics.append({"title": title, "about": {k: v for k, v in data.items() if k not in ("rows", "curves")},
                                   "columns": list(rows[0]) if rows else [], "rows": rows, "image": image})


def extremes(episodes: list[Episode], kind: str, shown: int) -> list[tuple[str, Episode]]:
    """The worst and best episodes by total reward, among the final held-out eval (training) or all (eval)."""
    pool = episodes
    if kind == "training":
        last = max((e.source for e in episodes if e.source.startswith("eval/")), default=None)
        last = last or max((e.source for e in episodes), default=None)
        pool = [e for e in episodes if e.source == last]
    ranked = sorted(pool, key=lambda e: (e.reward, bool(e.traj.success)))
    n_worst = min(shown, (len(ranked) + 1) // 2)  # a small pool is split, so no episode is shown twice
    n_best = min(shown, len(ranked) - n_worst)
    return [("worst", e) for e in ranked[:n_worst]] + [("best", e) for e in ranked[::-1][:n_best]]


def build_report(run_dir: str | Path, viewer_url: str = VIEWER_URL, runs_dir: str | Path | None = None,
                 shown: int = SHOWN, max_rows: int = MAX_ROWS) -> Report:
    path = Path(run_dir).resolve()
    if not path.is_dir():
        raise UserError(f"{run_dir} is not a directory")
    kind = run_kind(path)
    root = Path(runs_dir).resolve() if runs_dir is not None else path.parent
    if root != path and root not in path.parents:
        raise UserError(f"--runs-dir {runs_dir} does not contain {run_dir}")
    name = path.relative_to(root).as_posix() if root != path else "."
    config = (path / "config.yaml").read_text(encoding="utf-8") if (path / "config.yaml").is_file() else ""
    report = Report(name=name, kind=kind, config=config)
    (eval_sections if kind == "eval" else training_sections)(report, path)
    if not report.headline and config:  # e.g. a directory with diagnostics only
        given = yaml.safe_load(config) or {}
        report.headline += [(key, str(given[key])) for key in ("model", "env_id") if key in given]
    diagnostic_sections(report, path)
    episodes = load_episodes(path, kind, name, viewer_url)
    report.episodes, report.total_episodes = episodes[:max_rows], len(episodes)
    report.extremes = extremes(episodes, kind, shown)
    return report


def render(report: Report) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.globals.update(fmt=fmt, dump=lambda x: yaml.safe_dump(x, sort_keys=False, allow_unicode=True).strip())
    return env.get_template("report.html").render(r=report)


def write_report(run_dir: str | Path, out: str | Path | None = None, **options: Any) -> Path:
    """Render the run's report to `out` (default RUN_DIR/report.html); return its path."""
    html = render(build_report(run_dir, **options))
    target = Path(out) if out is not None else Path(run_dir) / "report.html"
    return atomic_write(target, html)
