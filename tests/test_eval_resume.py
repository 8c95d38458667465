"""Evaluations survive Ctrl-C and SIGTERM: finished episodes stay on disk, `--resume` completes the run to the
same metrics as an unbroken one, and a command that fails leaves no directory behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.eval import EvalConfig
from longhorizon.eval import evaluate as evaluate_mod
from longhorizon.eval.evaluate import Interrupted, resume_config, run
from longhorizon.types import load_trajectories

runner = CliRunner()


def noisy_cfg(run_dir: Path, **kw) -> EvalConfig:
    return EvalConfig(model="noisy-oracle:0.8", horizons=[1, 2, 4], episodes=10, seed=5, run_dir=str(run_dir), **kw)


def interrupt_after(monkeypatch, k: int, sig: int = signal.SIGINT) -> None:
    """Send the process a real signal once `k` episodes have been written."""
    append = evaluate_mod.append_episode
    count = {"n": 0}

    def append_then_signal(path, trajectory):
        append(path, trajectory)
        count["n"] += 1
        if count["n"] == k:
            os.kill(os.getpid(), sig)

    monkeypatch.setattr(evaluate_mod, "append_episode", append_then_signal)


def strip_wall(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "wall_seconds"}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_keeps_finished_episodes_and_resume_equals_an_unbroken_run(tmp_path, monkeypatch, sig):
    straight, _ = run(noisy_cfg(tmp_path / "straight"))
    interrupt_after(monkeypatch, 7, sig)
    with pytest.raises(Interrupted) as stop:
        run(noisy_cfg(tmp_path / "broken"))
    assert stop.value.done == 7 and stop.value.total == 30
    partial = json.loads((tmp_path / "broken" / "metrics.json").read_text())
    assert partial["complete"] is False and partial["episodes_done"] == 7 and partial["episodes_total"] == 30
    assert len(load_trajectories(tmp_path / "broken" / "trajectories.jsonl")) == 7
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back

    monkeypatch.undo()
    resumed, plot = run(resume_config(tmp_path / "broken"), resume=True)
    assert strip_wall(resumed) == strip_wall(straight)
    assert resumed["complete"] is True and plot.exists()
    a = [t.to_dict() for t in load_trajectories(tmp_path / "straight" / "trajectories.jsonl")]
    b = [t.to_dict() for t in load_trajectories(tmp_path / "broken" / "trajectories.jsonl")]
    assert a == b  # the same episodes, in config order


def test_ctrl_c_interrupts_even_after_a_library_replaced_the_sigint_handler(tmp_path, monkeypatch):
    seen = []
    other = lambda signum, frame: seen.append(signum)  # noqa: E731 (a handler that swallows Ctrl-C)
    previous = signal.signal(signal.SIGINT, other)
    try:
        interrupt_after(monkeypatch, 4)
        with pytest.raises(Interrupted) as stop:
            run(noisy_cfg(tmp_path / "r"))
        assert stop.value.done == 4 and seen == []
        assert signal.getsignal(signal.SIGINT) is other  # put back
    finally:
        signal.signal(signal.SIGINT, previous)


def test_resume_skips_the_finished_episodes(tmp_path, monkeypatch):
    interrupt_after(monkeypatch, 12)
    with pytest.raises(Interrupted):
        run(noisy_cfg(tmp_path / "r"))
    monkeypatch.undo()
    seen = []
    run(resume_config(tmp_path / "r"), on_progress=lambda p: seen.append((p.episodes_done, p.episodes_total)), resume=True)
    assert seen[0] == (12, 30) and seen[-1] == (30, 30)


def test_a_torn_last_line_is_dropped_on_resume(tmp_path, monkeypatch):
    interrupt_after(monkeypatch, 5)
    with pytest.raises(Interrupted):
        run(noisy_cfg(tmp_path / "t"))
    monkeypatch.undo()
    with open(tmp_path / "t" / "trajectories.jsonl", "a") as f:
        f.write('{"env_id": "longhorizon/Execution-v0", "seed"')  # killed mid-write
    metrics, _ = run(resume_config(tmp_path / "t"), resume=True)
    assert metrics["episodes_done"] == 30
    assert len(load_trajectories(tmp_path / "t" / "trajectories.jsonl")) == 30


def test_a_fresh_run_refuses_to_overwrite_an_unfinished_one(tmp_path, monkeypatch):
    interrupt_after(monkeypatch, 3)
    with pytest.raises(Interrupted):
        run(noisy_cfg(tmp_path / "u"))
    monkeypatch.undo()
    result = runner.invoke(app, ["eval", "--model", "oracle", "--horizons", "1", "--out", str(tmp_path / "u")])
    assert result.exit_code == 2 and "--resume" in result.output
    assert len(load_trajectories(tmp_path / "u" / "trajectories.jsonl")) == 3  # nothing lost


def test_resume_of_a_finished_run_runs_nothing(tmp_path, monkeypatch):
    first, _ = run(noisy_cfg(tmp_path / "f"))
    monkeypatch.setattr(evaluate_mod, "make_policy", lambda cfg: pytest.fail("no episode should run"))
    again, _ = run(resume_config(tmp_path / "f"), resume=True)
    assert strip_wall(again) == strip_wall(first)


def test_cli_resume_refuses_other_options_and_needs_a_run(tmp_path):
    result = runner.invoke(app, ["eval", "--resume", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no evaluation there" in result.output
    result = runner.invoke(app, ["eval", "--resume", str(tmp_path), "--episodes", "3"])
    assert result.exit_code == 2 and "no other config" in result.output


@pytest.mark.parametrize("args", [
    ["--model", "no-such-model", "--horizons", "1"],
    ["--env", "longhorizon/Execution-v0", "--knob", "dict_size=-3"],
    ["--model", "oracle", "--wrap", "nope"],
])
def test_a_failed_eval_leaves_no_directory(tmp_path, args):
    out = tmp_path / "runs" / "new"
    result = runner.invoke(app, ["eval", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "runs").exists()  # neither the run directory nor the parent it would have made


def test_an_interrupt_before_any_episode_leaves_no_directory(tmp_path, monkeypatch):
    def interrupted_load(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_mod, "make_policy", interrupted_load)
    with pytest.raises(Interrupted) as stop:
        run(noisy_cfg(tmp_path / "runs" / "x"))
    assert stop.value.done == 0 and not (tmp_path / "runs").exists()


def test_ctrl_c_on_the_command_line_exits_130_and_resume_finishes(tmp_path):
    """The real thing: `longhorizon eval` on the tiny model in a subprocess, SIGINT once an episode is on disk."""
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "longhorizon.cli", "eval", "--model", "tiny-random", "--horizons", "1,2,4,8",
           "--episodes", "3", "--max-new-tokens", "8", "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "trajectories.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.read_text().count("\n") >= 1):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the evaluation finished before the signal arrived")
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr
    partial = json.loads((out / "metrics.json").read_text())
    assert partial["complete"] is False and partial["episodes_total"] == 12
    assert partial["episodes_done"] == len(load_trajectories(log))  # the metrics cover exactly the saved episodes
    result = subprocess.run([sys.executable, "-m", "longhorizon.cli", "eval", "--resume", str(out)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] and metrics["episodes_done"] == 12
    assert len(load_trajectories(log)) == 12
