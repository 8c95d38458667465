"""The `longhorizon` command: envs, play, eval, train, view, feedback, prefs, demos.

Every user mistake (unknown env or model, bad option value, missing package,
unwritable output directory) prints one line `error: ...` and exits with
code 2, without a traceback.
"""

from __future__ import annotations

import functools
import os
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
    resume: Optional[Path] = typer.Option(None, "--resume", help="finish the interrupted evaluation in this run directory (its config.yaml; other options are refused)"),
    diagnose: Optional[str] = typer.Option(None, "--diagnose", help="run a diagnostic instead: self-conditioning | drift (JSON and PNG in the run directory)"),
    error_rates: Optional[str] = typer.Option(None, "--error-rates", help="self-conditioning: comma-separated error rates injected in the history (default 0,0.25,0.5,0.75,1)"),
    env_follows: Optional[str] = typer.Option(None, "--env-follows", help="self-conditioning: the env gets the answers the history shows (history, default) or the correct ones (truth)"),
    reference: Optional[str] = typer.Option(None, "--reference", help="drift: reference model (name, HF dir, checkpoint, tiny-random:SEED)"),
    reminder_every: Optional[int] = typer.Option(None, "--reminder-every", help="drift: the reminder intervention's period in turns (default 4)"),
) -> None:
    """Measure success vs horizon, per-step accuracy and the horizon length H_s.

    The config is CONFIG (YAML) over the defaults; each flag sets the config key named in its help;
    --set KEY=VALUE overrides come last (defaults < CONFIG < flags < --set). Each episode is written
    to RUN_DIR/trajectories.jsonl as it finishes; Ctrl-C saves the metrics of what finished, and
    `--resume RUN_DIR` runs only the rest.
    """
    from longhorizon import eval as evaluation
    from longhorizon.eval.evaluate import Interrupted, resume_config

    flags = {"model": model, "env_id": env, "horizons": None if horizons is None else parse_horizons(horizons), "episodes": episodes,
             "env_kwargs.turn_complexity": turn_complexity, "temperature": temperature, "top_p": top_p,
             "max_new_tokens": max_new_tokens, "context": context, "dtype": dtype, "s": s, "seed": seed,
             "prefill": prefill, "horizon_knob": horizon_knob, "wrappers": parse_wrappers(wrap) if wrap else None,
             "run_dir": None if out is None else str(out)}
    shorthands = {k: v for k, v in flags.items() if v is not None}
    shorthands |= {f"env_kwargs.{k}": v for k, v in parse_assignments(knob, "--knob").items()}
    shorthands |= {f"context_options.{k}": v for k, v in parse_assignments(context_opt, "--context-opt").items()}
    if resume is not None:
        if config is not None or set_ or shorthands:
            raise UserError("--resume continues a run with the config it started with; give no other config or options")
        cfg = resume_config(resume)
    else:
        cfg = evaluation.load_eval_config(config, set_, shorthands)
    if diagnose is not None:
        if resume is not None:
            raise UserError("--diagnose runs a diagnostic afresh; it cannot --resume")
        run_diagnostic(diagnose, cfg, error_rates, env_follows, reference, reminder_every)
        return
    if any(v is not None for v in (error_rates, env_follows, reference, reminder_every)):
        raise UserError("--error-rates, --env-follows, --reference and --reminder-every go with --diagnose")
    try:
        with EvalBar(f"eval {cfg.model}") as bar:
            metrics, plot = evaluation.run(cfg, on_progress=bar.update, resume=resume is not None)
    except Interrupted as stop:
        err_console.print(f"[bold yellow]{escape(str(stop))}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    print_summary(metrics, plot)


def run_diagnostic(name: str, cfg: Any, error_rates: str | None, env_follows: str | None, reference: str | None,
                   reminder_every: int | None) -> None:
    """`eval --diagnose NAME`: eval/diagnose.py with the options given (the others at their defaults)."""
    from longhorizon.config_io import validate
    from longhorizon.eval.diagnose import DiagnoseOptions, diagnose

    given = {"error_rates": None if error_rates is None else parse_rates(error_rates), "env_follows": env_follows,
             "reference": reference, "reminder_every": reminder_every}
    options = validate(DiagnoseOptions, {k: v for k, v in given.items() if v is not None})
    with console.status(f"{name}: {cfg.model} on {cfg.env_id}"):
        data, plot = diagnose(name, cfg, options)
    console.print(f"{name}: {data}\nplot: {plot}")


def parse_rates(text: str) -> list[float]:
    """'0,0.5,1' -> [0.0, 0.5, 1.0]."""
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--error-rates must be comma-separated numbers, got {text!r}") from None


class EvalBar:
    """Turns done (with an ETA) and episodes finished, shown from the rollout's start."""

    def __init__(self, description: str):
        self.description, self.bar, self.task = description, None, None

    def update(self, p: Any) -> None:
        if self.bar is None:
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("turns · {task.fields[episodes]} episodes"), TimeElapsedColumn(),
                                TextColumn("eta"), TimeRemainingColumn(), console=err_console)
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=p.turns_total, episodes="")
        self.bar.update(self.task, completed=p.turns_done, total=max(p.turns_total, p.turns_done),
                        episodes=f"{p.episodes_done}/{p.episodes_total}")

    def __enter__(self) -> "EvalBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def print_summary(metrics: dict[str, Any], plot: Path) -> None:
    table = Table(title=f"{metrics['model']} on {metrics['env_id']}")
    corrected = any("per_step_accuracy_chance_corrected" in r for r in metrics["horizons"])
    for col in (metrics["horizon_knob"] or "setting", "episodes", "success", "± se", "reward", "turns survived",
                "step acc (mean)", *(["step acc, chance-corrected"] if corrected else [])):
        table.add_column(col, justify="right")
    for r in metrics["horizons"]:
        survived = f"{r['mean_turns_survived']:.2f}" if "mean_turns_survived" in r else "-"
        cells = [_mean_text(r.get("per_step_accuracy", []))]
        if corrected:
            cells.append(_mean_text(r.get("per_step_accuracy_chance_corrected", [])))
        table.add_row(_setting(metrics, r), str(r["episodes"]), f"{r['success_rate']:.3f}", f"{r['success_se']:.3f}",
                      f"{r['mean_reward']:.3g}", survived, *cells)
    console.print(table)
    if corrected:
        console.print("chance-corrected step accuracy: (acc - chance) / (1 - chance); 0 = no better than an answer "
                      "that ignores the turn's keys, 1 = always right", highlight=False)
    for r in metrics["horizons"]:
        if r["env_metrics"]:
            values = ", ".join(f"{k}={v:.3g}" for k, v in r["env_metrics"].items())
            console.print(f"env metrics ({_setting(metrics, r)}): {values}", highlight=False, markup=False)
    if h := metrics["horizon_length"]:
        relation = {"above": ">=", "below": "<"}.get(h["censored"] or "", "=")
        censored = " (censored: the curve never crosses the threshold in the horizons tried)" if h["censored"] else ""
        console.print(f"H_{h['s']:g} {relation} {h['value']:.2f} ({metrics['horizon_knob']}){censored}")
    console.print(f"wall time {metrics['wall_seconds']:.0f} s")
    console.print(f"plot: {plot}")


def _mean_text(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{sum(known) / len(known):.3f}" if known else "-"


def _setting(metrics: dict[str, Any], row: dict[str, Any]) -> str:
    return f"{metrics['horizon_knob']}={row['horizon']}" if metrics["horizon_knob"] else "default"


@app.command("report")
@user_errors
def report_cmd(
    run_dir: Path = typer.Argument(..., help="a run directory (eval or training)"),
    out: Optional[Path] = typer.Option(None, help="HTML file to write (default RUN_DIR/report.html)"),
    viewer_url: str = typer.Option("http://127.0.0.1:8765", "--viewer-url", help="base URL of `longhorizon view` for the episode links"),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="the runs directory the viewer serves (run names in links are relative to it; default: RUN_DIR's parent)"),
) -> None:
    """One self-contained HTML page for a run: numbers, config, curves, diagnostics, episodes."""
    from longhorizon.eval.report_html import write_report

    console.print(f"report: {write_report(run_dir, out, viewer_url=viewer_url, runs_dir=runs_dir)}")


@app.command("compare")
@user_errors
def compare_cmd(
    runs: list[Path] = typer.Argument(..., help="eval run directories (as written by `longhorizon eval`)"),
    out: Path = typer.Option(Path("runs/compare"), help="directory for report.md and comparison.png"),
    label: list[str] = typer.Option([], "--label", help="a label per run, in order (default: model / context)"),
    title: str = typer.Option("Evaluations compared", "--title", help="title of the report and of the plot"),
) -> None:
    """Put several horizon evaluations side by side: a markdown report and a plot."""
    from longhorizon.eval.compare import compare_runs

    report, plot = compare_runs(runs, out, labels=label or None, title=title)
    console.print(f"report: {report}\nplot: {plot}")


# --------------------------------------------------------------------- envs / play
@app.command("envs")
@user_errors
def envs_cmd() -> None:
    """List every registered env with its reward scale, knobs and their defaults."""
    from longhorizon.envs import env_class, knobs, list_envs

    table = Table(title="longhorizon environments", show_lines=True)
    table.add_column("id", style="bold", no_wrap=True)
    table.add_column("what it tests")
    table.add_column("reward")
    table.add_column("knobs (default)")
    for env_id in list_envs():
        cls = env_class(env_id)
        doc = (cls.__doc__ or "").strip().splitlines()
        knob_text = "\n".join(f"{k} ({v['default']!r}): {v['description']}" for k, v in knobs(env_id).items())
        table.add_row(env_id, doc[0] if doc else "", getattr(cls, "REWARD", None) or "?", knob_text)
    console.print(table)


PLAY_HELP = """Commands (none of them uses up a turn; neither does an empty line):
  :help    this list
  :task    the task (the first observation) again
  :tools   the tools and their arguments (tool envs; `?` marks an optional one)
  :dict    the dictionary again (Execution)
  :oracle  the oracle's next move
  :quit    stop playing
Anything else is sent as your action; type \\n for a line break. Tool envs take
<tool_call>{"name": ..., "arguments": {...}}</tool_call> or the bare {"name": ..., "arguments": {...}}."""


@app.command("play")
@user_errors
def play_cmd(
    env: str = typer.Argument(..., help="env id, e.g. longhorizon/Execution-v0"),
    seed: int = typer.Option(0, help="episode seed"),
    knob: list[str] = typer.Option([], "--knob", help="env knobs as KEY=VALUE (repeatable)"),
    wrap: list[str] = typer.Option([], "--wrap", help="feedback wrapper NAME[:k=v,...] (repeatable, innermost first)"),
) -> None:
    """Play an env yourself in the terminal. Type your action; `:help` lists the commands (:tools, :dict, :oracle, :quit)."""
    from longhorizon.rollout import make_env

    game = make_env(env, parse_assignments(knob, "--knob"), parse_wrappers(wrap))
    obs, _ = game.reset(seed=seed)
    _play_header(env, seed, game)
    _show_task(game, obs)
    episode_reward, done, task = 0.0, False, obs
    while not done:
        action = _read_action(game, task)
        if action is None:
            return
        obs, reward, terminated, truncated, info = game.step(action)
        episode_reward += reward
        done = terminated or truncated
        verdict = f"  correct={info['correct']}" if "correct" in info else ""
        console.print(f"[dim]reward {reward:g}  episode reward so far {episode_reward:g}{verdict}[/]")
        console.print(f"\n[cyan]{escape(obs)}[/]", highlight=False)
    console.print(f"[bold]episode over[/]: success={info.get('success')}  episode reward {episode_reward:g}  "
                  f"metrics={escape(str(info.get('metrics')))}", highlight=False)


def _play_header(env_id: str, seed: int, game: Any) -> None:
    """The env, its reward scale and its tools, then how to get help."""
    reward = getattr(game.unwrapped, "REWARD", None)
    console.print(f"[bold]{escape(env_id)}[/] (seed {seed})" + (f"  reward: {escape(reward)}" if reward else ""),
                  highlight=False)
    _show_tools(game)
    console.print("[dim]:help lists the commands (:task, :tools, :dict, :oracle, :quit)[/]")


def _show_tools(game: Any) -> bool:
    """Each tool as a compact signature and its description's first sentence; False if the env has no tools."""
    from longhorizon.envs.core.base import agent_spec
    from longhorizon.envs.core.tools import compact_signature

    tools = agent_spec(game).tools
    for schema in tools or []:
        about = schema["function"].get("description", "").split(". ")[0].rstrip(".")
        console.print(f"  [green]{escape(compact_signature(schema))}[/]  {escape(about)}", highlight=False)
    return bool(tools)


def _show_task(game: Any, obs: str) -> None:
    """The first observation; a dictionary in it (Execution) is laid out in columns."""
    table = getattr(game.unwrapped, "dictionary_text", None)
    text = table() if table else ""
    if not text or text not in obs:
        console.print(f"\n[cyan]{escape(obs)}[/]", highlight=False)
        return
    before, after = obs.split(text, 1)
    console.print(f"\n[cyan]{escape(before.rstrip())}[/]", highlight=False)
    _show_dictionary(text)
    console.print(f"\n[cyan]{escape(after.strip())}[/]", highlight=False)


def _show_dictionary(text: str) -> None:
    """`word: value` lines in alphabetical order, down the columns, as wide as the terminal."""
    from rich.columns import Columns

    entries = sorted(escape(line) for line in text.splitlines())
    console.print(Columns(entries, column_first=True, padding=(0, 3)), highlight=False)


def _read_action(game: Any, task: str) -> str | None:
    """Read one action; commands (see PLAY_HELP) and empty lines are handled here. None means quit."""
    while True:
        try:
            line = input("> ")
        except EOFError:
            return None
        command = line.strip()
        if command == ":quit":
            return None
        if command.startswith(":") and " " not in command:
            _play_command(game, command, task)
        elif command:
            return line.replace("\\n", "\n")


def _play_command(game: Any, command: str, task: str) -> None:
    """Run one `:command`; none of them steps the env."""
    from longhorizon.rollout import oracle_action

    if command == ":oracle":
        console.print(f"[yellow]oracle:[/] {escape(oracle_action(game))}", highlight=False)
    elif command == ":help":
        console.print(escape(PLAY_HELP), highlight=False)
    elif command == ":task":
        _show_task(game, task)
    elif command == ":tools":
        _show_tools(game) or console.print("this env has no tools; answer in text")
    elif command == ":dict":
        table = getattr(game.unwrapped, "dictionary_text", None)
        _show_dictionary(table()) if table else console.print("this env has no dictionary")
    else:
        console.print(f"unknown command {escape(command)}; :help lists them", highlight=False)


# --------------------------------------------------------------------- config
@app.command("config")
@user_errors
def config_cmd(
    recipe: Optional[Path] = typer.Argument(None, help="a training recipe (or, with --eval, an eval config) to show the values of"),
    set_: list[str] = typer.Option([], "--set", help="override a key first, KEY=VALUE (repeatable)"),
    eval_: bool = typer.Option(False, "--eval", help="the eval config (`longhorizon eval`) instead of the training recipe"),
    resolved: bool = typer.Option(False, "--resolved", help="print the resolved config as YAML (what config.yaml of the run will hold)"),
) -> None:
    """Every config key with its type, default and description; with RECIPE, the value each key takes.

    `longhorizon config` lists the training recipe's keys; `longhorizon config RECIPE --resolved` prints the
    recipe with every default filled in and resolved, as the run will write it.
    """
    import yaml

    from longhorizon.config_io import describe
    from longhorizon.eval.config import EvalConfig, load_eval_config
    from longhorizon.train.config import TrainConfig, load_config
    from longhorizon.types import jsonable

    cls = EvalConfig if eval_ else TrainConfig
    cfg = None
    if recipe is not None or set_ or resolved:
        cfg = load_eval_config(recipe, set_) if eval_ else load_config(recipe, set_)
    if resolved:
        console.print(yaml.safe_dump(jsonable(cfg.model_dump()), sort_keys=False), highlight=False, markup=False, end="")
        return
    rows = describe(cls, None if cfg is None else jsonable(cfg.model_dump()))
    table = Table(title=f"{'eval config (longhorizon eval)' if eval_ else 'training recipe (longhorizon train)'} keys",
                  show_lines=False)
    widths = {"key": None, "type": 22, "default": 14, "value": 14, "description": None}
    for col in ("key", "type", "default", *(["value"] if cfg is not None else []), "description"):
        table.add_column(col, overflow="fold", no_wrap=col == "key", max_width=widths[col], ratio=3 if col == "description" else None)
    for r in rows:
        table.add_row(*(escape(r[c]) for c in ("key", "type", "default", *(["value"] if cfg is not None else []),
                                               "description")))
    console.print(table)
    if not eval_:
        console.print("eval.*: keys the held-out section leaves out come from the recipe (model, env, context, ...) "
                      "and from held-out defaults (seed 1000000, 32 episodes, greedy, the training horizon).",
                      highlight=False)


# --------------------------------------------------------------------- train
@app.command("train")
@user_errors
def train_cmd(
    config: Optional[Path] = typer.Argument(None, help="training recipe (YAML), e.g. recipes/quickstart.yaml"),
    set_: list[str] = typer.Option([], "--set", help="override a config key, KEY=VALUE (repeatable), e.g. algorithm.kl_coef=0.02"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the run in this directory from its latest checkpoint"),
    out: Optional[Path] = typer.Option(None, "--out", help="run directory (default: the config's run_dir)"),
    launcher: Optional[str] = typer.Option(None, "--launcher", help="accelerate: data-parallel training in several processes (accelerate launch; train/distributed.py)"),
    accelerate_config: Optional[Path] = typer.Option(None, "--accelerate-config", help="with --launcher accelerate: an accelerate config file (accelerate config); default: accelerate's own"),
    num_processes: Optional[int] = typer.Option(None, "--num-processes", min=1, help="with --launcher accelerate: training processes (overrides the config file's)"),
) -> None:
    """Train with RL (grpo, rloo, loop, reinforce++, ppo, ...) or on preference pairs (dpo, ipo offline;
    online_dpo, dno, inpo, p3o_v1, p3o_v2 online; reward_model, preference_model; reaction_model on `reactions`);
    print the held-out eval before and after. `--launcher accelerate` runs the RL algorithms data-parallel in
    several processes.

    Every recipe key, with its type, default and description: `longhorizon config` (with a RECIPE, the value
    each key takes; `longhorizon config RECIPE --resolved` prints the resolved recipe as the run writes it).
    """
    from longhorizon.train import train
    from longhorizon.train.config import run_config
    from longhorizon.train.checkpoint import checkpoint_step
    from longhorizon.train.session import check_setup

    cfg = run_config(config, set_, resume, out)
    check_setup(cfg)
    if launcher is not None:
        if launcher != "accelerate":
            raise UserError(f"--launcher: unknown launcher {launcher!r}; the one there is: accelerate")
        _launch_with_accelerate(accelerate_config, num_processes)
    if int(os.environ.get("RANK", "0")) != 0:  # another rank of a data-parallel run: rank 0 reports
        train(cfg, resume=resume is not None)
        return
    done = checkpoint_step(cfg.run_dir) if resume is not None else None
    if done is not None and done >= cfg.steps:
        console.print(f"{resume} already finished its {done} steps; to train it further, extend it: "
                      f"longhorizon train --resume {resume} --set steps={done + cfg.steps}", highlight=False)
        return
    with progress_bar("steps") as bar:
        task = bar.add_task(f"train {cfg.algorithm.name}", total=cfg.steps)

        def on_log(step: int, metrics: dict[str, float]) -> None:
            if "eval/reward_mean" in metrics:
                bar.console.print(f"held-out eval at step {step}: {_eval_text(metrics)}", highlight=False)
            elif "eval/pair_accuracy" in metrics:  # reward_model, preference_model
                bar.console.print(f"held-out pairs at step {step}: {_pair_eval_text(metrics)}", highlight=False)
            elif "eval/reaction_accuracy" in metrics:  # reaction_model
                bar.console.print(f"held-out reactions at step {step}: {_reaction_eval_text(metrics)}", highlight=False)
            elif "losses/reaction_loss" in metrics:
                bar.update(task, completed=step, description=f"train {cfg.algorithm.name} "
                           f"(accuracy {metrics['losses/reaction_accuracy']:.2f})")
            elif "charts/reward_mean" in metrics:
                bar.update(task, completed=step,
                           description=f"train {cfg.algorithm.name} (reward {metrics['charts/reward_mean']:.3g})")
            else:  # dpo, ipo, reward_model, preference_model: no rollouts while training
                bar.update(task, completed=step, description=f"train {cfg.algorithm.name} "
                           f"(pair accuracy {metrics.get('losses/pref_accuracy', float('nan')):.2f})")

        result = train(cfg, resume=resume is not None, on_log=on_log)
    print_train_summary(result, cfg)


def _launch_with_accelerate(config_file: Optional[Path], num_processes: Optional[int]) -> None:
    """Replace this process by `accelerate launch [...] -m longhorizon.cli train ...` (the same arguments, less the
    launcher's)."""
    import shutil

    accelerate = shutil.which("accelerate")
    if accelerate is None:
        raise UserError("--launcher accelerate needs accelerate: pip install accelerate")
    args, skip = [], False
    for arg in sys.argv[2:]:  # after `longhorizon train`
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in ("--launcher", "--accelerate-config", "--num-processes"):
            skip = "=" not in arg
            continue
        args.append(arg)
    launch = [accelerate, "launch"]
    if config_file is not None:
        if not config_file.exists():
            raise UserError(f"--accelerate-config: no such file {config_file}")
        launch += ["--config_file", str(config_file)]
    else:  # torchrun on this machine (accelerate's multi-CPU launcher needs mpirun); each rank picks its device
        launch += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    if num_processes is not None:
        launch += ["--num_processes", str(num_processes)]
    elif config_file is None:
        raise UserError("--launcher accelerate without --accelerate-config needs --num-processes N")
    os.execv(accelerate, [*launch, "-m", "longhorizon.cli", "train", *args])


def _eval_text(m: dict[str, float]) -> str:
    return (f"reward {m['eval/reward_mean']:.3f} ± {m['eval/reward_se']:.3f}, "
            f"success {m['eval/success_rate']:.3f} ± {m['eval/success_se']:.3f} (n={m['eval/episodes']:.0f})")


def _pair_eval_text(m: dict[str, float]) -> str:
    return (f"accuracy {m['eval/pair_accuracy']:.3f}, ECE {m['eval/pair_ece']:.3f}, "
            f"log-loss {m['eval/pair_log_loss']:.3f} (n={m['eval/pairs']:.0f})")


def _reaction_eval_text(m: dict[str, float]) -> str:
    return (f"AUROC {m['eval/reaction_auroc']:.3f}, accuracy {m['eval/reaction_accuracy']:.3f}, "
            f"ECE {m['eval/reaction_ece']:.3f}, log-loss {m['eval/reaction_log_loss']:.3f} (n={m['eval/reactions']:.0f})")


def print_train_summary(result: Any, cfg: Any = None) -> None:
    before, after = result.eval_before, result.eval_after
    if after and "eval/reaction_accuracy" in after:  # reaction_model: held-out reaction labels
        for name, m in (("before", before), ("after", after)):
            if m:
                console.print(f"held-out reactions {name} (step {m['step']}): {_reaction_eval_text(m)}", highlight=False)
        console.print(f"run: {result.run_dir} ({disk_use(result.run_dir)})", highlight=False)
        if (Path(result.run_dir) / "model").is_dir():
            console.print(f"trained model: {Path(result.run_dir) / 'model'} (feedback.reaction.load_reaction_model)",
                          highlight=False)
        return
    if after and "eval/pair_accuracy" in after:  # reward_model, preference_model: held-out pairs
        for name, m in (("before", before), ("after", after)):
            if m:
                console.print(f"held-out pairs {name} (step {m['step']}): {_pair_eval_text(m)}", highlight=False)
        console.print(f"run: {result.run_dir} ({disk_use(result.run_dir)})", highlight=False)
        if (Path(result.run_dir) / "model").is_dir():
            console.print(f"trained model: {Path(result.run_dir) / 'model'} (feedback.reward_model."
                          f"load_{cfg.algorithm.name if cfg is not None else 'reward_model'})", highlight=False)
        return
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
    console.print(f"run: {result.run_dir} ({disk_use(result.run_dir)})   curves: {result.plot}", highlight=False)
    model = Path(result.run_dir) / "model"
    if model.is_dir() and cfg is not None:
        console.print(f"trained model: {model}\nits horizon curve: {horizon_command(cfg, model)}", highlight=False,
                      soft_wrap=True)


def horizon_command(cfg: Any, model: Path) -> str:
    """The `longhorizon eval` that measures the trained model's horizon curve on the training task family:
    the training knobs, with the horizon knob swept over powers of 2 up to 4x the training horizon, on the
    held-out seeds (training tasks and demonstrations use seeds from 0)."""
    from longhorizon.eval.config import horizon_knob

    knob = horizon_knob(cfg.env_id)
    trained = int(cfg.env_kwargs.get(knob, 1)) if knob else 1
    horizons = ",".join(str(2**i) for i in range(0, (4 * trained).bit_length()))
    from longhorizon.config_io import yaml_text

    knobs = " ".join(f"--knob {k}={yaml_text(v)}" for k, v in cfg.env_kwargs.items() if k != knob)
    parts = [f"longhorizon eval --model {model} --env {cfg.env_id}", knobs, f"--horizons {horizons}" if knob else "",
             f"--context {cfg.context}" if cfg.context != "full" else "", f"--max-new-tokens {cfg.max_new_tokens}",
             f"--dtype {'bfloat16' if cfg.dtype == 'bfloat16' or cfg.autocast_bf16 else 'float32'}",
             f"--seed {cfg.eval.seed}", f"--out {Path(cfg.run_dir) / 'horizon'}"]  # held-out seeds, as the run's eval
    return " ".join(p for p in parts if p)


def disk_use(run_dir: Path) -> str:
    """'1.9 GB on disk: checkpoints 1.6 GB, model 0.27 GB, ...' (the largest parts first)."""
    def size(path: Path) -> int:
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size

    parts = sorted(((size(p), p.name) for p in Path(run_dir).iterdir()), reverse=True)
    gb = lambda n: f"{n / 1e9:.2g} GB" if n >= 1e8 else f"{n / 1e6:.2g} MB"  # noqa: E731
    return f"{gb(sum(n for n, _ in parts))} on disk: " + ", ".join(f"{name} {gb(n)}" for n, name in parts[:3])


# --------------------------------------------------------------------- view / feedback
@app.command("view")
@user_errors
def view_cmd(
    runs_dir: Path = typer.Argument(..., help="directory holding run directories (eval or training runs)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (loopback by default)"),
    port: int = typer.Option(8765, "--port", help="port to listen on"),
    open_reads: bool = typer.Option(False, "--open-reads", help="let anyone who reaches the server read runs without the token (writes still need it)"),
    token: Optional[str] = typer.Option(None, "--token", envvar="LONGHORIZON_VIEW_TOKEN",
                                        help="the write token (default: a fresh random one, printed)"),
) -> None:
    """Browse runs and episodes in a local web app, and label them (labels go to RUNS_DIR/feedback.sqlite)."""
    from longhorizon.ui import serve
    from longhorizon.ui.auth import new_token

    if not runs_dir.is_dir():
        raise UserError(f"runs directory {runs_dir} does not exist")
    if token is not None and len(token) < 16:
        raise UserError("--token must be at least 16 characters")
    token = token or new_token()
    shown = f"[{host}]" if ":" in host else host
    console.print(f"longhorizon view: {runs_dir.resolve()}\n  open   http://{shown}:{port}/?token={token}\n"
                  f"  token  {token}   (every write needs it{'' if open_reads else '; reads too'})", highlight=False,
                  soft_wrap=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print("[yellow]warning:[/] listening beyond loopback; the token travels in clear text over http")
    serve(runs_dir, token, host=host, port=port, open_reads=open_reads)


feedback_app = typer.Typer(no_args_is_help=True, help="Labels collected by `longhorizon view`: export, simulate.")
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export")
@user_errors
def feedback_export_cmd(
    runs_dir: Path = typer.Argument(..., help="the runs directory `longhorizon view` served"),
    out: Path = typer.Option(..., "--out", help="output directory: OUT/preferences and OUT/critiques (datasets.load_from_disk)"),
) -> None:
    """Write the labels as Hugging Face datasets: TRL preference pairs and critiques / ratings."""
    from longhorizon.store.feedback import FEEDBACK_DB
    from longhorizon.store.feedback_export import export_feedback

    if not (runs_dir / FEEDBACK_DB).is_file():
        raise UserError(f"no labels in {runs_dir}: {FEEDBACK_DB} not found (start `longhorizon view {runs_dir}`)")
    counts = export_feedback(runs_dir, out)
    console.print(f"wrote {counts['preferences']} preference pairs to {out / 'preferences'} and "
                  f"{counts['critiques']} critiques / ratings to {out / 'critiques'}", highlight=False, soft_wrap=True)


@feedback_app.command("shadow-user")
@user_errors
def shadow_user_cmd(
    url: str = typer.Option("http://127.0.0.1:8765", "--url", help="the running viewer"),
    token: str = typer.Option(..., "--token", envvar="LONGHORIZON_VIEW_TOKEN", help="the viewer's token"),
    run: list[str] = typer.Option([], "--run", help="label only this run (repeatable; default: every run)"),
    max_episodes: Optional[int] = typer.Option(None, "--max-episodes", help="at most this many episodes per run"),
) -> None:
    """Label episodes with the rule-based simulated annotator, through the viewer's HTTP API."""
    import httpx2

    from longhorizon.ui.shadow import run_shadow_user

    try:
        with httpx2.Client(base_url=url, timeout=30) as client:
            counts = run_shadow_user(client, token, run or None, max_episodes)
    except (httpx2.HTTPError, RuntimeError) as err:
        raise UserError(f"shadow user: {err}") from None
    console.print(f"shadow user: {counts['created']} labels stored, {counts['already_stored']} already there", highlight=False)


@feedback_app.command("simulate-reactions")
@user_errors
def simulate_reactions_cmd(
    trajectories: Path = typer.Argument(..., help="a trajectories JSONL file (a run's trajectories.jsonl, `longhorizon prefs build`'s, an eval's)"),
    out: Path = typer.Option(..., "--out", help="reaction labels JSONL to write (the `reactions` of algorithm: reaction_model)"),
    noise: float = typer.Option(0.1, "--noise", min=0.0, max=1.0, help="probability that the simulated user's reaction is flipped"),
    per: str = typer.Option("episode", "--per", help="episode (positive iff the episode succeeded) | turn (the shadow user's turn ratings)"),
    seed: int = typer.Option(0, "--seed", help="seed of the flips"),
) -> None:
    """RLUF's reaction labels from a rule-based simulated user that reads the env's verifier (feedback/reaction.py)."""
    from longhorizon.feedback.reaction import simulated_reactions, write_reactions
    from longhorizon.types import load_trajectories

    if not trajectories.is_file():
        raise UserError(f"no trajectories file at {trajectories}")
    try:
        episodes = load_trajectories(trajectories)
    except (ValueError, TypeError, KeyError) as err:
        raise UserError(f"{trajectories}: not a trajectories file: {str(err).splitlines()[0]}") from None
    reactions = simulated_reactions(episodes, noise, seed, per)
    if not reactions:
        raise UserError(f"no reaction to write: the {len(episodes)} episodes of {trajectories} gave no rated episode or turn")
    write_reactions(out, reactions)
    positive = sum(r.label for r in reactions)
    console.print(f"{len(reactions)} reactions ({positive} positive, {sum(r.metadata['flipped'] for r in reactions)} "
                  f"flipped) from {len(episodes)} episodes: {out}", highlight=False, soft_wrap=True)


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
    label: Optional[str] = typer.Option(None, help="(label) verifier | reward_model | preference_model | judge | judge_hindsight"),
    label_model: Optional[str] = typer.Option(None, "--label-model", help="(label_model) the labeller's model: a reward / preference model directory, or a judge model"),
    knob: list[str] = typer.Option([], "--knob", help="(env_kwargs.KEY) env knobs as KEY=VALUE (repeatable)"),
    out: Optional[Path] = typer.Option(None, help="(out) output directory"),
) -> None:
    """Sample episodes from a model on an env and pair them, labelled by the env's verifier (higher return wins),
    a reward model, a preference model or a judge (`--label`, `--label-model`).

    Writes OUT/feedback/preferences.jsonl, OUT/trajectories.jsonl, OUT/config.yaml and OUT/summary.json.
    """
    from longhorizon.config_io import apply_overrides, read_yaml, set_key
    from longhorizon.feedback.build import PrefsBuildConfig, build_pairs

    data = read_yaml(config) if config is not None else {}
    flags = {"model": model, "env_id": env, "tasks": tasks, "samples": samples, "level": level, "ties": ties,
             "label": label, "label_model": label_model, "out": None if out is None else str(out)}
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


# --------------------------------------------------------------------- rm-eval
@app.command("rm-eval")
@user_errors
def rm_eval_cmd(
    model: str = typer.Argument(..., help="the scorer: a reward / preference model directory, or a judge model"),
    kind: str = typer.Option("reward_model", "--kind", help="reward_model | preference_model | judge"),
    env: str = typer.Option("longhorizon/Execution-v0", "--env", help="env whose oracle episodes make the contexts"),
    knob: list[str] = typer.Option([], "--knob", help="env knob KEY=VALUE (repeatable); the default horizon is 4096"),
    lengths: str = typer.Option("4000,8000,16000,32000", "--lengths", help="context lengths in tokens, comma-separated"),
    items: int = typer.Option(16, "--items", min=1, help="items per length"),
    n: int = typer.Option(4, "--n", min=2, help="options of a best-of-N item (1 better, N - 1 worse)"),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="left-truncate contexts to this many tokens (default: the model's window)"),
    seed: int = typer.Option(0, "--seed", help="env seed of the first item"),
    dtype: str = typer.Option("float32", help="float32 | bfloat16"),
    out: Path = typer.Option(Path("runs/rm-eval"), "--out", help="directory for rm_eval.json and rm_eval.png"),
) -> None:
    """Accuracy of a reward model, preference model or judge against context length (Long-RewardBench style)."""
    import json

    from longhorizon.eval.rm_eval import build_items, plot_rm_eval, run_rm_eval, scorer_for, token_counter

    if kind not in ("reward_model", "preference_model", "judge"):
        raise UserError(f"--kind must be reward_model, preference_model or judge, got {kind!r}")
    targets = [int(x) for x in lengths.split(",") if x.strip()]
    labeller, rank, tokenizer, window = scorer_for(kind, model, dtype)
    count = token_counter(tokenizer)
    knobs = {"horizon": 4096, **parse_assignments(knob, "--knob")} if env == "longhorizon/Execution-v0" else parse_assignments(knob, "--knob")
    try:
        built = build_items(env, knobs, targets, items, n, count, seed)
    except ValueError as err:
        raise UserError(str(err)) from None
    rows = run_rm_eval(built, labeller, rank, count, max_tokens if max_tokens is not None else window, seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rm_eval.json").write_text(json.dumps({"model": model, "kind": kind, "env": env, "rows": rows}, indent=1))
    table = Table(title=f"{kind} {model} on {env}")
    for col in ("length", "items", "pairwise acc", "best-of-N acc"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["length"]), str(r["items"]), f"{r['pairwise_acc']:.3f} ± {r['pairwise_se']:.3f}",
                      f"{r['best_of_n_acc']:.3f} ± {r['best_of_n_se']:.3f}")
    console.print(table)
    console.print(f"plot: {plot_rm_eval(rows, out / 'rm_eval.png', f'{kind}: {Path(model).name}', n)}")


# --------------------------------------------------------------------- demos
@app.command("demos")
@user_errors
def demos_cmd(
    env_id: str = typer.Argument(..., help="registered env id, e.g. longhorizon/Execution-v0 (see `longhorizon envs`)"),
    episodes: int = typer.Option(..., "--episodes", min=1, help="oracle episodes (env seeds SEED .. SEED + N - 1)"),
    out: Path = typer.Option(..., "--out", help="trajectories JSONL file to write"),
    set_: list[str] = typer.Option([], "--set", help="env knob KEY=VALUE (repeatable), e.g. dict_size=10"),
    seed: int = typer.Option(0, "--seed", help="env seed of the first episode (keep clear of the held-out eval seeds, 1000000 on)"),
    wrap: list[str] = typer.Option([], "--wrap", help="feedback wrapper NAME[:k=v,...] (repeatable)"),
) -> None:
    """Write the env's oracle episodes as demonstrations for `algorithm: {name: sft}` (`demonstrations: OUT`)."""
    from longhorizon.rollout.demos import oracle_demonstrations
    from longhorizon.rollout.runner import make_env
    from longhorizon.train.session import write_trajectories

    knobs, wrappers = parse_assignments(set_, "--set"), parse_wrappers(wrap)
    make_env(env_id, knobs, wrappers).close()  # unknown env, bad knobs or wrappers: one line
    trajectories = oracle_demonstrations(env_id, episodes, knobs, seed, wrappers)
    write_trajectories(out, trajectories)
    turns = sum(len(t.turns) for t in trajectories)
    success = sum(bool(t.success) for t in trajectories)
    console.print(f"{len(trajectories)} oracle episodes ({turns} turns, {success} solved) of {env_id}: {out}",
                  highlight=False, soft_wrap=True)


@app.command("early-experience")
@user_errors
def early_experience_cmd(
    env_id: str = typer.Argument(..., help="registered env id, e.g. longhorizon/Execution-v0 (see `longhorizon envs`)"),
    episodes: int = typer.Option(..., "--episodes", min=1, help="expert (oracle) episodes, env seeds SEED .. SEED + N - 1"),
    out: Path = typer.Option(..., "--out", help="conversations JSONL file to write (the `demonstrations` of algorithm: sft)"),
    k: Optional[int] = typer.Option(None, "--k", min=1, help="alternative actions sampled per expert state (default: 4 for iwm, 3 for reflection, the paper's ALFWorld and WebShop K)"),
    model: str = typer.Option("smollm2-135m", "--model", help="the policy proposing alternatives: smollm2-135m | tiny-random | noisy-oracle:P | a HF model dir"),
    objective: str = typer.Option("iwm", "--objective", help="iwm (predict the next observation) | reflection (a rationale contrasting the expert action with an alternative, then the expert action: train and eval with prefill: false)"),
    rationale_model: Optional[str] = typer.Option(None, "--rationale-model", help="(reflection) the model writing the rationales, greedy: a registered name or a HF model dir (default: a rule-based template)"),
    rationale_tokens: int = typer.Option(256, "--rationale-tokens", min=1, help="(reflection) token cap of a model rationale; unfinished ones are dropped"),
    expert: bool = typer.Option(True, "--expert/--no-expert", help="(reflection) write the expert episodes after the reflections, to train on together as the paper does"),
    set_: list[str] = typer.Option([], "--set", help="env knob KEY=VALUE (repeatable), e.g. dict_size=10"),
    seed: int = typer.Option(0, "--seed", help="env seed of the first episode (keep clear of the held-out eval seeds, 1000000 on)"),
    wrap: list[str] = typer.Option([], "--wrap", help="feedback wrapper NAME[:k=v,...] (repeatable)"),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0, help="sampling temperature of the alternatives"),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1, help="tokens per alternative action"),
    context: str = typer.Option("full", "--context", help="the policy's context strategy"),
) -> None:
    """Early Experience: world-modelling or self-reflection data from K policy actions branched off every
    expert state.

    `--objective iwm` writes one conversation per transition (the transcript up to the state and the action ->
    the next observation), the expert's own transitions included. Train on it with `algorithm: {name: sft}` and
    `demonstrations: OUT`, then on the oracle demonstrations (`longhorizon demos`), as the paper does.
    `--objective reflection` writes one conversation per (state, alternative): the state -> a rationale that
    contrasts the two outcomes, then the expert action (rationales from `--rationale-model`, else a template;
    filtered), then the expert episodes. Train on it with `algorithm: {name: sft}` and `prefill: false`, then
    GRPO from that model (recipes/early-experience-reflection.yaml).
    """
    from longhorizon.context import make_strategy
    from longhorizon.feedback.hindsight import write_conversations
    from longhorizon.models import SamplingParams
    from longhorizon.rollout.demos import oracle_demonstrations
    from longhorizon.rollout.early_experience import (ModelRationales, branch_transitions, drop_summary,
                                                      reflection_rows, world_model_rows)
    from longhorizon.rollout.policies import model_policy, scripted_policy
    from longhorizon.rollout.runner import make_env

    if objective not in ("iwm", "reflection"):
        raise UserError(f"--objective: unknown objective {objective!r}; choose iwm or reflection")
    if rationale_model is not None and objective != "reflection":
        raise UserError("--rationale-model is for --objective reflection")
    knobs, wrappers = parse_assignments(set_, "--set"), parse_wrappers(wrap)
    make_env(env_id, knobs, wrappers).close()  # unknown env, bad knobs or wrappers: one line
    writer = ModelRationales(rationale_model, rationale_tokens) if rationale_model else None  # not a model: one line
    demos = oracle_demonstrations(env_id, episodes, knobs, seed, wrappers)
    params = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    policy = scripted_policy(model, seed) or model_policy(model, make_strategy(context), params)
    transitions, counts = branch_transitions(demos, policy, k or (3 if objective == "reflection" else 4), wrappers)
    if objective == "reflection":
        rows, kept = reflection_rows(demos, transitions, writer)
        if not rows:
            raise UserError(f"no reflection to write: of {kept['pairs']} (state, alternative) pairs, the filters "
                            f"dropped all ({drop_summary(kept)})")
        write_conversations(out, rows + ([d.to_dict() for d in demos] if expert else []))
        console.print(f"{counts['states']} expert states of {env_id}, {kept['pairs']} alternatives: {kept['kept']} "
                      f"reflections kept (dropped: {drop_summary(kept)}), {len(demos) if expert else 0} expert "
                      f"episodes: {out}", highlight=False, soft_wrap=True)
        return
    write_conversations(out, world_model_rows(transitions), empty="no transition to write")
    console.print(f"{counts['states']} expert states of {env_id}: {counts['kept']} alternatives kept "
                  f"({counts['dropped']} equal to the expert's action or to another), {counts['states']} expert "
                  f"transitions: {out}", highlight=False, soft_wrap=True)


@app.command("corrections")
@user_errors
def corrections_cmd(
    env_id: str = typer.Argument(..., help="registered env id, e.g. longhorizon/Execution-v0 (see `longhorizon envs`)"),
    episodes: int = typer.Option(..., "--episodes", min=1, help="episodes of the policy, env seeds SEED .. SEED + N - 1"),
    out: Path = typer.Option(..., "--out", help="directory for corrected_turns.jsonl, corrections.jsonl and trajectories.jsonl"),
    model: str = typer.Option("smollm2-135m", "--model", help="the policy: smollm2-135m | tiny-random | noisy-oracle:P | a HF model dir"),
    teacher: str = typer.Option("rule", "--teacher", help="who writes the corrections: rule | a model (smollm2-135m, tiny-random, a HF model dir)"),
    judge: str = typer.Option("auto", "--judge", help="when a turn is off course: auto | verifier | oracle"),
    set_: list[str] = typer.Option([], "--set", help="env knob KEY=VALUE (repeatable), e.g. dict_size=10"),
    seed: int = typer.Option(0, "--seed", help="env seed of the first episode (keep clear of the held-out eval seeds, 1000000 on)"),
    wrap: list[str] = typer.Option([], "--wrap", help="feedback wrapper NAME[:k=v,...] (repeatable), inside the corrections wrapper"),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0, help="the policy's sampling temperature"),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1, help="tokens per policy turn"),
    context: str = typer.Option("full", "--context", help="the policy's context strategy"),
) -> None:
    """Mid-episode corrections (YAY Robot): run a policy with a teacher that corrects its off-course turns.

    Writes OUT/corrected_turns.jsonl (the right turns taken right after a correction: train the policy on
    them), OUT/corrections.jsonl (transcript up to the off-course action -> the correction: train an
    instruction generator, then use its RUN_DIR/model as --teacher) and OUT/trajectories.jsonl. Both
    conversation files are `demonstrations` for `algorithm: {name: sft}`.
    """
    from longhorizon.context import make_strategy
    from longhorizon.feedback.hindsight import write_conversations
    from longhorizon.models import SamplingParams
    from longhorizon.rollout.corrections import (collect_corrections, corrected_turn_rows, instruction_rows, summary,
                                                 with_corrections)
    from longhorizon.rollout.policies import model_policy, scripted_policy
    from longhorizon.rollout.runner import make_env
    from longhorizon.train.session import write_trajectories

    knobs, wrappers = parse_assignments(set_, "--set"), parse_wrappers(wrap)
    make_env(env_id, knobs, with_corrections(wrappers, teacher, judge)).close()  # bad env, knobs, teacher: one line
    params = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    policy = scripted_policy(model, seed) or model_policy(model, make_strategy(context), params)
    trajectories = collect_corrections(env_id, episodes, policy, knobs, seed, wrappers, teacher, judge)
    write_trajectories(out / "trajectories.jsonl", trajectories)
    counts = summary(trajectories)
    console.print(f"{counts['episodes']} episodes of {env_id} ({counts['turns']} turns): {counts['off_course']} off "
                  f"course, {counts['corrections']} corrected, {counts['heeded']} right after a correction",
                  highlight=False, soft_wrap=True)
    for name, rows in (("corrected_turns.jsonl", corrected_turn_rows(trajectories)),
                       ("corrections.jsonl", instruction_rows(trajectories))):
        if rows:
            console.print(f"{len(rows)} conversations: {write_conversations(out / name, rows)}", highlight=False,
                          soft_wrap=True)
        else:
            console.print(f"no conversation for {out / name}: not written", highlight=False, soft_wrap=True)


@app.command("faft")
@user_errors
def faft_cmd(
    env_id: str = typer.Argument("longhorizon/Travel-v0", help="an env with a constraint verifier (check_plan): longhorizon/Travel-v0"),
    episodes: int = typer.Option(..., "--episodes", min=1, help="planning tasks (oracle episodes, env seeds SEED .. SEED + N - 1)"),
    out: Path = typer.Option(..., "--out", help="conversations JSONL file to write (the `demonstrations` of algorithm: sft)"),
    model: str = typer.Option("smollm2-135m", "--model", help="the model drafting (and revising) plans: smollm2-135m | tiny-random | a HF model dir | none"),
    perturb: int = typer.Option(2, "--perturb", min=0, help="perturbed oracle plans per task (negative samples)"),
    formats: str = typer.Option("revise", "--formats", help="comma-separated: revise (draft + feedback -> revision), condition (feedback -> plan)"),
    set_: list[str] = typer.Option([], "--set", help="env knob KEY=VALUE (repeatable), e.g. days=5"),
    seed: int = typer.Option(0, "--seed", help="env seed of the first task (keep clear of the held-out eval seeds, 1000000 on)"),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0, help="sampling temperature of the model's plans"),
    max_new_tokens: int = typer.Option(768, "--max-new-tokens", min=1, help="tokens per plan"),
) -> None:
    """Feedback-aware fine-tuning data: plans checked by the env's constraint verifier, its messages as feedback.

    Drafts are the oracle's plan, perturbed oracle plans and the model's plan; each is checked and followed by
    the verifier's feedback and the revision (the draft if it passes, else the model's own passing revision or
    the oracle's plan). Train on OUT with `algorithm: {name: sft}` and `demonstrations: OUT`.
    """
    from longhorizon.feedback.faft import (check_drafts, check_formats, counts, faft_conversations, model_drafter,
                                           plan_tasks)
    from longhorizon.feedback.hindsight import write_conversations
    from longhorizon.models import SamplingParams, make_sampler

    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    check_formats(fmts)  # unknown formats: one line, before any work
    tasks = plan_tasks(env_id, episodes, parse_assignments(set_, "--set"), seed)
    params = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, stop=("</tool_call>",), seed=seed)
    drafter = None if model == "none" else model_drafter(make_sampler("transformers", model, params), params)
    checked = check_drafts(tasks, drafter, perturb, seed)
    rows = faft_conversations(tasks, checked, fmts)
    write_conversations(out, rows, empty="no FAFT conversation to write")
    n = counts(checked)
    model_part = (f", {n['model']} from the model ({n['model_pass']} pass; {n['revised_by_model']} failing drafts "
                  "revised by the model so that they pass)") if drafter else ""
    console.print(f"{len(tasks)} tasks of {env_id}: {n['positive']} positive and {n['negative']} negative samples "
                  f"(drafts: {len(tasks)} oracle, {n['perturbed']} perturbed{model_part}); {len(rows)} conversations: "
                  f"{out}", highlight=False, soft_wrap=True)


@prefs_app.command("coh")
@user_errors
def prefs_coh_cmd(
    preferences: Path = typer.Argument(..., help="pairs: a JSONL file, a `prefs build` directory, or a TRL datasets directory"),
    out: Path = typer.Option(..., "--out", help="conversations JSONL file to write (the `demonstrations` of algorithm: sft)"),
    formats: str = typer.Option("p,n,pn,np", "--formats", help="comma-separated: p (chosen), n (rejected), pn, np"),
    aux: bool = typer.Option(False, "--aux", help="the 12 auxiliary marker phrasings instead of 'A helpful answer:' / 'An unhelpful answer:'"),
) -> None:
    """Chain of Hindsight: turn preference pairs into feedback-conditioned conversations to fine-tune on.

    Train with `algorithm: {name: sft}` and `demonstrations: OUT`; evaluate with `--wrap feedback_marker`
    (the positive marker after every observation).
    """
    from longhorizon.feedback.hindsight import hindsight_conversations, write_conversations
    from longhorizon.feedback.preferences import read_preferences

    pairs = read_preferences(preferences)
    rows = hindsight_conversations(pairs, [f.strip() for f in formats.split(",") if f.strip()], aux=aux)
    write_conversations(out, rows)
    ties = sum(p.preferred == "tie" for p in pairs)
    console.print(f"{len(rows)} Chain-of-Hindsight conversations from {len(pairs) - ties} pairs ({ties} ties skipped): "
                  f"{out}", highlight=False, soft_wrap=True)


@prefs_app.command("eval")
@user_errors
def prefs_eval_cmd(
    model: Path = typer.Argument(..., help="a reward or preference model directory (RUN_DIR/model of its training run)"),
    preferences: Path = typer.Argument(..., help="pairs: a JSONL file, a `prefs build` directory, or a TRL datasets directory"),
    dtype: str = typer.Option("float32", help="float32 | bfloat16"),
    batch_size: int = typer.Option(16, "--batch-size", help="rows per forward pass"),
) -> None:
    """Pair accuracy, calibration (ECE, 10 bins) and log-loss of a reward or preference model on pairs (ties dropped)."""
    from longhorizon.feedback.pair_metrics import pair_metrics
    from longhorizon.feedback.reward_model import load_pair_model
    from longhorizon.train.offline import decided_pairs

    pairs = decided_pairs(str(preferences))
    scorer = load_pair_model(model, dtype=dtype, batch_size=batch_size)
    m = {f"eval/{k}": v for k, v in pair_metrics(scorer.pair_log_odds(pairs)).items()}
    console.print(f"{scorer.kind.replace('_', ' ')} on {preferences}: {_pair_eval_text(m)}", highlight=False)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
