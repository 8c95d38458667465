"""`longhorizon eval`: one `EvalConfig` in, a run directory out; safe to interrupt and resume.

    metrics, plot = run(load_eval_config("recipes/eval/execution.yaml", ["episodes=8"]))
    metrics, plot = run(resume_config("runs/eval"), resume=True)     # longhorizon eval --resume runs/eval

RUN_DIR/config.yaml (the resolved config) is written first. Each episode is
appended to RUN_DIR/trajectories.jsonl (flushed and fsynced) the moment it
finishes. At the end, metrics.json, horizon.png and trajectories.jsonl in
config order (horizon by horizon, episode by episode) replace the partial files.

On Ctrl-C or SIGTERM, metrics.json is written over the episodes that finished
(`"complete": false`, with `episodes_done` and `episodes_total`) and
`Interrupted` is raised (the CLI exits with 130). `--resume RUN` reloads RUN's
config.yaml, keeps the finished episodes, runs only the others, and writes the
same files as an unbroken run. Episodes are independent and each one's draws
depend only on its own seed (scripted policies, greedy decoding), so the
resumed run's metrics equal an unbroken run's; with temperature > 0 the
episodes that were re-run draw new samples. A run that fails before any episode
finished leaves no directory behind (nor any parent it created).
"""

from __future__ import annotations

import json
import signal
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from longhorizon.errors import UserError
from longhorizon.eval.config import EvalConfig, load_eval_config, resolve
from longhorizon.eval.sweep import env_kwargs_at, episode_specs, summarize
from longhorizon.models.settings import require_vllm
from longhorizon.rollout.policies import scripted_policy
from longhorizon.store import RunDir, first_missing
from longhorizon.types import Trajectory, jsonable

TRAJECTORIES = "trajectories.jsonl"


@dataclass
class EvalProgress:
    """Where a run stands: turns (the total shrinks as episodes end early) and finished episodes."""

    turns_done: int
    turns_total: int
    episodes_done: int
    episodes_total: int


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: the finished episodes and their metrics are on disk; resume with `--resume`."""

    def __init__(self, run_dir: Path, done: int, total: int):
        super().__init__(f"interrupted: {done}/{total} episodes saved in {run_dir}; "
                         f"continue with `longhorizon eval --resume {run_dir}`")
        self.run_dir, self.done, self.total = run_dir, done, total


def run(cfg: EvalConfig, on_progress: Callable[[EvalProgress], None] | None = None, *,
        resume: bool = False) -> tuple[dict[str, Any], Path]:
    """Evaluate (or, with `resume`, finish cfg.run_dir's evaluation); return the metrics and the plot."""
    cfg = resolve(cfg)
    check(cfg)
    specs = episode_specs(cfg)
    with run_directory(Path(cfg.run_dir), resume) as run_dir:
        done, wall_before = (finished(run_dir.path, specs), previous_wall(run_dir.path)) if resume else ({}, 0.0)
        if not resume:  # a fresh start: what an earlier, finished run left here goes
            for name in ("metrics.json", "horizon.png"):
                (run_dir.path / name).unlink(missing_ok=True)
            run_dir.write_config(cfg.model_dump())
            (run_dir.path / TRAJECTORIES).write_text("")
        start = time.perf_counter()
        try:
            with sigterm_as_interrupt():
                run_missing(cfg, specs, done, run_dir.path, on_progress)
        except KeyboardInterrupt:
            done = finished(run_dir.path, specs)  # the log on disk is the record (the signal may land mid-callback)
            write_results(cfg, run_dir, specs, done, wall_before + time.perf_counter() - start)
            raise Interrupted(run_dir.path, len(done), len(specs)) from None
        return write_results(cfg, run_dir, specs, done, wall_before + time.perf_counter() - start)


def check(cfg: EvalConfig) -> None:
    """Fail before any model loads: too few episodes, bad knobs or wrappers, vllm not installed."""
    from longhorizon.rollout import make_env

    if cfg.episodes < 1:
        raise UserError(f"episodes must be at least 1, got {cfg.episodes}")
    make_env(cfg.env_id, env_kwargs_at(cfg, max(cfg.horizons)), cfg.wrappers).close()
    if scripted_policy(cfg.model) is None:
        require_vllm(cfg.sampler)


def run_missing(cfg: EvalConfig, specs: list, done: dict[int, Trajectory], path: Path,
                on_progress: Callable[[EvalProgress], None] | None) -> None:
    """Run the specs not in `done`, appending each finished episode to the log and to `done`."""
    from longhorizon.rollout import run_episodes

    todo = [i for i in range(len(specs)) if i not in done]
    budgets = turn_budgets(cfg, specs)
    progress = EvalProgress(0, sum(budgets[i] for i in todo), len(done), len(specs))
    if not todo:
        return
    policy = make_policy(cfg)
    if hasattr(policy, "strategy"):
        policy.strategy.attach(path)  # e.g. the memory strategy keeps its lessons in the run directory
    if on_progress:
        on_progress(progress)  # the bar shows once the model is loaded, before the first tick

    def tick(n: int, _live: int) -> None:
        progress.turns_done += n
        if on_progress:
            on_progress(progress)

    def finish(k: int, trajectory: Trajectory) -> None:
        append_episode(path / TRAJECTORIES, trajectory)
        done[todo[k]] = trajectory
        progress.episodes_done += 1
        progress.turns_total -= max(budgets[todo[k]] - len(trajectory.turns), 0)  # ended early: fewer turns left

    run_episodes([specs[i] for i in todo], policy, on_tick=tick, on_done=finish)


def write_results(cfg: EvalConfig, run_dir: RunDir, specs: list, done: dict[int, Trajectory],
                  wall: float) -> tuple[dict[str, Any], Path]:
    """metrics.json and horizon.png; when every episode finished, the trajectories in config order."""
    from longhorizon.eval.report import plot_horizon_curves

    trajectories = [done[i] for i in sorted(done)]
    complete = len(done) == len(specs)
    metrics = {**summarize(cfg, trajectories), "wall_seconds": wall, "complete": complete,
               "episodes_done": len(done), "episodes_total": len(specs)}
    if complete:
        run_dir.write_trajectories(trajectories)
    run_dir.write_metrics(metrics)
    plot = run_dir.path / "horizon.png"
    return metrics, plot_horizon_curves(metrics, plot) if trajectories else plot


def make_policy(cfg: EvalConfig) -> Any:
    """A scripted policy (oracle, noisy-oracle:p) or the model behind the context strategy."""
    from longhorizon.context import make_strategy
    from longhorizon.models import SamplingParams
    from longhorizon.rollout import model_policy

    scripted = scripted_policy(cfg.model, cfg.seed)
    if scripted is not None and cfg.best_of is not None:
        raise UserError(f"best_of needs a model policy, not {cfg.model!r}")
    if scripted is not None:
        return scripted
    params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                            stop=tuple(cfg.stop), seed=cfg.seed)
    strategy = make_strategy(cfg.context, **cfg.context_options)
    policy = model_policy(cfg.model, strategy, params, dtype=cfg.dtype, prefill=cfg.prefill, sampler=cfg.sampler,
                          vllm=cfg.vllm, kv_cache_mb=cfg.kv_cache_mb)
    if cfg.best_of is not None:  # reward-guided best-of-N at every turn
        from longhorizon.rollout.best_of_n import best_of

        return best_of(policy, cfg.best_of, cfg.dtype)
    return policy


# ------------------------------------------------------------------ the run directory: partial runs, resume


def resume_config(run_dir: str | Path, overrides: list[str] = ()) -> EvalConfig:
    """The config an evaluation in `run_dir` ran with (its config.yaml), for `--resume`."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise UserError(f"--resume {run_dir}: no evaluation there (no config.yaml)")
    return load_eval_config(path, list(overrides), {"run_dir": str(run_dir)})


def run_state(path: Path) -> str:
    """"none", "complete" or "unfinished": what an evaluation directory holds."""
    metrics, log = path / "metrics.json", path / TRAJECTORIES
    if metrics.is_file():
        return "complete" if json.loads(metrics.read_text()).get("complete", True) else "unfinished"
    return "unfinished" if log.is_file() and log.stat().st_size else "none"


@contextmanager
def run_directory(path: Path, resume: bool) -> Iterator[RunDir]:
    """The run directory; refuses to start afresh over an unfinished run; removed on failure if nothing finished."""
    state = run_state(path)
    if not resume and state == "unfinished":
        raise UserError(f"{path} holds an unfinished evaluation: continue it with `longhorizon eval --resume {path}`, "
                        "or choose another --out")
    created = first_missing(path)
    run_dir = RunDir(path)
    try:
        yield run_dir
    except BaseException:
        log = path / TRAJECTORIES
        if created is not None and not (log.is_file() and log.stat().st_size):
            shutil.rmtree(created, ignore_errors=True)  # a failed command leaves no empty run directory
        raise


def finished(path: Path, specs: list) -> dict[int, Trajectory]:
    """The episodes already in RUN_DIR/trajectories.jsonl, by their index in `specs` (a torn last line is dropped)."""
    index = {episode_key(s.seed, s.env_kwargs): i for i, s in enumerate(specs)}
    done: dict[int, Trajectory] = {}
    log = path / TRAJECTORIES
    for line in (log.read_text(encoding="utf-8").splitlines() if log.is_file() else []):
        try:
            trajectory = Trajectory.from_dict(json.loads(line))
        except (json.JSONDecodeError, TypeError):
            continue  # the line being written when the process died
        i = index.get(episode_key(trajectory.seed, trajectory.metadata.get("env_kwargs", {})))
        if i is not None:
            done[i] = trajectory
    return done


def episode_key(seed: int, env_kwargs: dict[str, Any]) -> str:
    return json.dumps([seed, jsonable(env_kwargs)], sort_keys=True)


def previous_wall(path: Path) -> float:
    metrics = path / "metrics.json"
    return float(json.loads(metrics.read_text()).get("wall_seconds", 0.0)) if metrics.is_file() else 0.0


def append_episode(path: Path, trajectory: Trajectory) -> None:
    """One JSON line, flushed and fsynced: a finished episode survives a kill."""
    import os

    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(trajectory.to_dict(), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def turn_budgets(cfg: EvalConfig, specs: list) -> list[int]:
    """Each episode's most turns: the env's own horizon (a tool env's turn limit), else the horizon knob's value."""
    from longhorizon.envs.core.base import agent_spec
    from longhorizon.rollout import make_env

    by_kwargs: dict[str, int] = {}
    for spec in specs:
        key = episode_key(0, spec.env_kwargs)
        if key not in by_kwargs:
            env = make_env(cfg.env_id, spec.env_kwargs, cfg.wrappers)
            env.reset(seed=spec.seed)
            by_kwargs[key] = agent_spec(env).horizon or spec.env_kwargs.get(cfg.horizon_knob or "", 1)
            env.close()
    return [by_kwargs[episode_key(0, s.env_kwargs)] for s in specs]


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT raise KeyboardInterrupt while the rollout runs, so both save what finished; SIGINT too,
    because a library may have replaced Python's Ctrl-C handler in this process (the handlers are put back)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.default_int_handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
