"""The `longhorizon` command: envs, play, eval, train, prefs.

Every user mistake (unknown env or model, bad option value, missing package,
unwritable output directory) prints one line `error: ...` and exits with
code 2, without a traceback.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from longhorizon.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train and evaluate LLM agents on long-horizon tasks.")
console = Console()
err_console = Console(stderr=True)


def user_errors(fn: Callable) -> Callable:
    """Turn user errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
        except ValidationError as err:
            first = err.errors()[0]
            key = ".".join(str(p) for p in first["loc"]) or "config"
            err_console.print(f"[bold red]error:[/] {escape(key)}: {escape(first['msg'])}", highlight=False,
                              soft_wrap=True)
        raise typer.Exit(2)

    return wrapper


# --------------------------------------------------------------------- parsing
def parse_horizons(text: str) -> list[int]:
    """'1,2,4,8' -> [1, 2, 4, 8]."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--horizons must be comma-separated positive integers, like 1,2,4,8; got {text!r}") from None
    if not values or min(values) < 1:
        raise UserError(f"--horizons must be comma-separated positive integers, like 1,2,4,8; got {text!r}")
    return values


def parse_assignments(items: list[str], flag: str) -> dict[str, Any]:
    """['a=1', 'b=true'] -> {'a': 1, 'b': True} (values parsed as YAML scalars)."""
    from longhorizon.config_io import parse_value

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} takes KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value, f"{flag} {key.strip()}")
    return out


def parse_wrappers(items: list[str]) -> list[dict[str, Any]]:
    """['try_again:max_attempts=3,decay=0.5', 'turn_limit:max_turns=5'] -> wrapper specs."""
    specs = []
    for item in items:
        name, _, args = item.partition(":")
        specs.append({"name": name.strip(), **parse_assignments([a for a in args.split(",") if a.strip()], "--wrap")})
    return specs


def progress_bar(unit: str = "turns") -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn(unit), TimeElapsedColumn(), TimeRemainingColumn(), console=err_console)


# --------------------------------------------------------------------- eval
@app.command("eval")
@user_errors
def eval_cmd(
    config: Optional[Path] = typer.Argument(None, help="eval config (YAML), e.g. recipes/eval/execution.yaml; default: the built-in defaults"),
    set_: list[str] = typer.Option([], "--set", help="override a config key, KEY=VALUE (repeatable), e.g. env_kwargs.dict_size=5"),
    model: Optional[str] = typer.Option(None, help="(model) smollm2-135m | tiny-random | oracle | noisy-oracle:P | path to a HF model dir"),
    env: Optional[str] = typer.Option(None, "--env", help="(env_id) registered env id (see `longhorizon envs`)"),
    horizons: Optional[str] = typer.Option(None, help="(horizons) comma-separated horizons, e.g. 1,2,4,8"),
    episodes: Optional[int] = typer.Option(None, help="(episodes) episodes per horizon"),
    turn_complexity: Optional[int] = typer.Option(None, help="(env_kwargs.turn_complexity) keys per turn (Execution's K)"),
    temperature: Optional[float] = typer.Option(None, help="(temperature) sampling temperature (0 = greedy)"),
    top_p: Optional[float] = typer.Option(None, help="(top_p) nucleus sampling threshold"),
    max_new_tokens: Optional[int] = typer.Option(None, help="(max_new_tokens) token cap per model turn"),
    context: Optional[str] = typer.Option(None, help="(context) context strategy: full, window, markovian, workspace, memory"),
    context_opt: list[str] = typer.Option([], "--context-opt", help="(context_options.KEY) context strategy option KEY=VALUE, e.g. k=4 (repeatable)"),
    dtype: Optional[str] = typer.Option(None, help="(dtype) float32 or bfloat16 (about 3x faster on CPUs with AVX512-BF16)"),
    s: Optional[float] = typer.Option(None, "--s", help="(s) success threshold for H_s"),
    seed: Optional[int] = typer.Option(None, help="(seed) base env seed and sampling seed"),
    prefill: Optional[bool] = typer.Option(None, "--prefill/--no-prefill", help="(prefill) pre-fill the env's answer prefix (e.g. <answer>) in model turns"),
    knob: list[str] = typer.Option([], "--knob", help="(env_kwargs.KEY) env knobs as KEY=VALUE (repeatable)"),
    horizon_knob: Optional[str] = typer.Option(None, help="(horizon_knob) env knob that --horizons sets (default: the env's own, e.g. horizon, n_problems, days)"),
    wrap: list[str] = typer.Option([], "--wrap", help="(wrappers) feedback wrapper NAME[:k=v,...], e.g. try_again:max_attempts=3 (repeatable)"),
    out: Optional[Path] = typer.Option(None, help="(run_dir) run directory to write"),
) -> None:
    """Measure success vs horizon, per-step accuracy and the horizon length H_s.

    The config is CONFIG (YAML) over the defaults; each flag sets the config key named in its help;
    --set KEY=VALUE overrides come last (defaults < CONFIG < flags < --set).
    """
    from longhorizon import eval as evaluation

    flags = {"model": model, "env_id": env, "horizons": None if horizons is None else parse_horizons(horizons), "episodes": episodes,
             "env_kwargs.turn_complexity": turn_complexity, "temperature": temperature, "top_p": top_p,
             "max_new_tokens": max_new_tokens, "context": context, "dtype": dtype, "s": s, "seed": seed,
             "prefill": prefill, "horizon_knob": horizon_knob, "wrappers": parse_wrappers(wrap) if wrap else None,
             "run_dir": None if out is None else str(out)}
    shorthands = {k: v for k, v in flags.items() if v is not None}
    shorthands |= {f"env_kwargs.{k}": v for k, v in parse_assignments(knob, "--knob").items()}
    shorthands |= {f"context_options.{k}": v for k, v in parse_assignments(context_opt, "--context-opt").items()}
    cfg = evaluation.load_eval_config(config, set_, shorthands)
    with LazyBar(f"eval {cfg.model}") as bar:  # shown from the first turn on, after every check passed
        metrics, plot = evaluation.run(cfg, on_progress=bar.advance)
    print_summary(metrics, plot)


class LazyBar:
    """A progress bar that appears at the first `advance(n, total)` and completes on exit."""

    def __init__(self, description: str, unit: str = "turns"):
        self.description, self.unit, self.bar, self.task = description, unit, None, None

    def advance(self, n: int, total: int) -> None:
        if self.bar is None:
            self.bar = progress_bar(self.unit)
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=total)
        self.bar.update(self.task, advance=n)

    def __enter__(self) -> "LazyBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=self.bar.tasks[0].total)
            self.bar.stop()


def print_summary(metrics: dict[str, Any], plot: Path) -> None:
    table = Table(title=f"{metrics['model']} on {metrics['env_id']}")
    for col in (metrics["horizon_knob"] or "setting", "episodes", "success", "± se", "reward", "turns survived",
                "step acc (mean)"):
        table.add_column(col, justify="right")
    for r in metrics["horizons"]:
        acc = [a for a in r.get("per_step_accuracy", []) if a is not None]
        survived = f"{r['mean_turns_survived']:.2f}" if "mean_turns_survived" in r else "-"
        table.add_row(_setting(metrics, r), str(r["episodes"]), f"{r['success_rate']:.3f}", f"{r['success_se']:.3f}",
                      f"{r['mean_reward']:.3g}", survived, f"{sum(acc) / len(acc):.3f}" if acc else "-")
    console.print(table)
    for r in metrics["horizons"]:
        if r["env_metrics"]:
            values = ", ".join(f"{k}={v:.3g}" for k, v in r["env_metrics"].items())
            console.print(f"env metrics ({_setting(metrics, r)}): {values}", highlight=False, markup=False)
    if h := metrics["horizon_length"]:
        bound = {"above": ">= ", "below": "< "}.get(h["censored"] or "", "")
        console.print(f"H_{h['s']:g} = {bound}{h['value']:.2f} ({metrics['horizon_knob']})")
    console.print(f"wall time {metrics['wall_seconds']:.0f} s")
    console.print(f"plot: {plot}")


def _setting(metrics: dict[str, Any], row: dict[str, Any]) -> str:
    return f"{metrics['horizon_knob']}={row['horizon']}" if metrics["horizon_knob"] else "default"


@app.command("compare")
@user_errors
def compare_cmd(
    runs: list[Path] = typer.Argument(..., help="eval run directories (as written by `longhorizon eval`)"),
    out: Path = typer.Option(Path("runs/compare"), help="directory for report.md and comparison.png"),
    label: list[str] = typer.Option([], "--label", help="a label per run, in order (default: model / context)"),
    title: str = typer.Option("Context strategies compared", help="report title"),
) -> None:
    """Put several horizon evaluations side by side: a markdown report and a plot."""
    from longhorizon.eval.compare import compare_runs

    report, plot = compare_runs(runs, out, labels=label or None, title=title)
    console.print(f"report: {report}\nplot: {plot}")


# --------------------------------------------------------------------- envs / play
@app.command("envs")
@user_errors
def envs_cmd() -> None:
    """List every registered env with its knobs and their defaults."""
    from longhorizon.envs import env_class, knobs, list_envs

    table = Table(title="longhorizon environments", show_lines=True)
    table.add_column("id", style="bold", no_wrap=True)
    table.add_column("what it tests")
    table.add_column("knobs (default)")
    for env_id in list_envs():
        doc = (env_class(env_id).__doc__ or "").strip().splitlines()
        knob_text = "\n".join(f"{k} ({v['default']!r}): {v['description']}" for k, v in knobs(env_id).items())
        table.add_row(env_id, doc[0] if doc else "", knob_text)
    console.print(table)


@app.command("play")
@user_errors
def play_cmd(
    env: str = typer.Argument(..., help="env id, e.g. longhorizon/Execution-v0"),
    seed: int = typer.Option(0, help="episode seed"),
    knob: list[str] = typer.Option([], "--knob", help="env knobs as KEY=VALUE (repeatable)"),
    wrap: list[str] = typer.Option([], "--wrap", help="feedback wrapper NAME[:k=v,...] (repeatable, innermost first)"),
) -> None:
    """Play an env yourself in the terminal. Type your action; `:oracle` shows the oracle's move, `:quit` ends."""
    from longhorizon.rollout import make_env

    game = make_env(env, parse_assignments(knob, "--knob"), parse_wrappers(wrap))
    obs, _ = game.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        console.print(f"\n[cyan]{obs}[/]", highlight=False)
        action = _read_action(game)
        if action is None:
            return
        obs, reward, terminated, truncated, info = game.step(action)
        total += reward
        done = terminated or truncated
        console.print(f"[dim]reward {reward:g}  total {total:g}  correct={info.get('correct')}[/]")
    console.print(f"\n[cyan]{obs}[/]", highlight=False)
    console.print(f"[bold]episode over[/]: success={info.get('success')}  metrics={info.get('metrics')}")


def _read_action(game: Any) -> str | None:
    """Read one action; handles :oracle and :quit. None means quit."""
    from longhorizon.rollout import oracle_action

    while True:
        try:
            line = input("> ")
        except EOFError:
            return None
        if line.strip() == ":quit":
            return None
        if line.strip() == ":oracle":
            console.print(f"[yellow]oracle:[/] {oracle_action(game)}", highlight=False)
            continue
        return line.replace("\\n", "\n")


# --------------------------------------------------------------------- train
@app.command("train")
@user_errors
def train_cmd(
    config: Optional[Path] = typer.Argument(None, help="training recipe (YAML), e.g. recipes/quickstart.yaml"),
    set_: list[str] = typer.Option([], "--set", help="override a config key, KEY=VALUE (repeatable), e.g. algorithm.kl_coef=0.02"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the run in this directory from its latest checkpoint"),
    out: Optional[Path] = typer.Option(None, "--out", help="run directory (default: the config's run_dir)"),
) -> None:
    """Train with RL (grpo, rloo, loop, reinforce++, ppo) or on preference pairs (dpo, ipo); print the held-out eval before and after."""
    from longhorizon.train import train
    from longhorizon.train.config import run_config
    from longhorizon.train.loop import check_setup

    cfg = run_config(config, set_, resume, out)
    check_setup(cfg)
    with progress_bar("steps") as bar:
        task = bar.add_task(f"train {cfg.algorithm.name}", total=cfg.steps)

        def on_log(step: int, metrics: dict[str, float]) -> None:
            if "eval/reward_mean" in metrics:
                bar.console.print(f"held-out eval at step {step}: {_eval_text(metrics)}", highlight=False)
            elif "charts/reward_mean" in metrics:
                bar.update(task, completed=step,
                           description=f"train {cfg.algorithm.name} (reward {metrics['charts/reward_mean']:.3g})")
            else:  # dpo, ipo: no rollouts while training
                bar.update(task, completed=step, description=f"train {cfg.algorithm.name} "
                           f"(pair accuracy {metrics.get('losses/pref_accuracy', float('nan')):.2f})")

        result = train(cfg, resume=resume is not None, on_log=on_log)
    print_train_summary(result)


def _eval_text(m: dict[str, float]) -> str:
    return (f"reward {m['eval/reward_mean']:.3f} ± {m['eval/reward_se']:.3f}, "
            f"success {m['eval/success_rate']:.3f} ± {m['eval/success_se']:.3f} (n={m['eval/episodes']:.0f})")


def print_train_summary(result: Any) -> None:
    before, after = result.eval_before, result.eval_after
    if before and after:
        table = Table(title="held-out evaluation (± standard error)")
        for col in ("", "step", "reward", "± se", "success", "± se"):
            table.add_column(col, justify="right")
        for name, m in (("before", before), ("after", after)):
            table.add_row(name, str(m["step"]), f"{m['eval/reward_mean']:.3f}", f"{m['eval/reward_se']:.3f}",
                          f"{m['eval/success_rate']:.3f}", f"{m['eval/success_se']:.3f}")
        console.print(table)
        gain = after["eval/reward_mean"] - before["eval/reward_mean"]
        se = (after["eval/reward_se"] ** 2 + before["eval/reward_se"] ** 2) ** 0.5
        console.print(f"reward gain {gain:+.3f} ({gain / se:+.1f} se)" if se > 0 else f"reward gain {gain:+.3f}")
    console.print(f"run: {result.run_dir}   curves: {result.plot}")


# --------------------------------------------------------------------- prefs
prefs_app = typer.Typer(no_args_is_help=True, help="Preference pairs: build them from a model on an env.")
app.add_typer(prefs_app, name="prefs")


@prefs_app.command("build")
@user_errors
def prefs_build_cmd(
    config: Optional[Path] = typer.Argument(None, help="prefs build config (YAML); default: the built-in defaults"),
    set_: list[str] = typer.Option([], "--set", help="override a config key, KEY=VALUE (repeatable), e.g. samples=8"),
    model: Optional[str] = typer.Option(None, help="(model) smollm2-135m | tiny-random | noisy-oracle:P | path to a HF model dir"),
    env: Optional[str] = typer.Option(None, "--env", help="(env_id) registered env id"),
    tasks: Optional[int] = typer.Option(None, help="(tasks) distinct tasks (env seeds)"),
    samples: Optional[int] = typer.Option(None, help="(samples) episodes, or branches per turn, per task"),
    level: Optional[str] = typer.Option(None, help="(level) episode | turn (branches from a shared prefix)"),
    ties: Optional[str] = typer.Option(None, help="(ties) drop | keep pairs with equal returns"),
    knob: list[str] = typer.Option([], "--knob", help="(env_kwargs.KEY) env knobs as KEY=VALUE (repeatable)"),
    out: Optional[Path] = typer.Option(None, help="(out) output directory"),
) -> None:
    """Sample episodes from a model on an env and pair them, labelled by the env's verifier (higher return wins).

    Writes OUT/feedback/preferences.jsonl, OUT/trajectories.jsonl, OUT/config.yaml and OUT/summary.json.
    """
    from longhorizon.config_io import apply_overrides, read_yaml, set_key
    from longhorizon.feedback.build import PrefsBuildConfig, build_pairs

    data = read_yaml(config) if config is not None else {}
    flags = {"model": model, "env_id": env, "tasks": tasks, "samples": samples, "level": level, "ties": ties,
             "out": None if out is None else str(out)}
    for key, value in {k: v for k, v in flags.items() if v is not None}.items():
        set_key(data, key, value)
    for key, value in parse_assignments(knob, "--knob").items():
        set_key(data, f"env_kwargs.{key}", value)
    cfg = PrefsBuildConfig.model_validate(apply_overrides(data, set_))
    pairs, summary = build_pairs(cfg)
    console.print(f"{summary['pairs']} pairs ({summary['ties_kept']} ties kept, {summary.get('ties_dropped', 0)} dropped, "
                  f"{summary.get('identical', 0)} identical skipped) from {summary['episodes']} episodes, "
                  f"mean return {summary['mean_return']:.3f}", highlight=False)
    console.print(f"pairs: {Path(cfg.out) / 'feedback' / 'preferences.jsonl'}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
