"""SIGKILL a training process in the middle of writing a checkpoint, then resume it.

The debug hook LONGHORIZON_DEBUG_CHECKPOINT_SLEEP=STEP:SECONDS makes the
process sleep halfway through writing checkpoint STEP (weights written,
optimizer and state not yet), after touching SLEEPING in the temporary
directory, so the kill lands there every time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.train.checkpoint import SLEEP_ENV, latest_checkpoint
from longhorizon.train.metrics import read_records

CONFIG = {
    "model": "tiny-random", "env_id": "longhorizon/Execution-v0",
    "env_kwargs": {"horizon": 1, "dict_size": 2, "value_range": 3}, "max_new_tokens": 4, "steps": 3,
    "tasks_per_step": 2, "checkpoint_every": 1, "torch_threads": 1, "save_final_model": False,
    "algorithm": {"name": "grpo", "group_size": 2}, "eval": {"episodes": 0},
}


def wait_for(pattern: str, root: Path, proc: subprocess.Popen, timeout: float = 180) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(root.glob(pattern))
        if found:
            return found[0]
        if proc.poll() is not None:
            raise AssertionError(f"training exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no {pattern} under {root} after {timeout} s")


def test_sigkill_during_checkpoint_write_then_resume(tmp_path):
    run = tmp_path / "run"
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "run_dir": str(run)}))
    env = {**os.environ, SLEEP_ENV: "2:300"}
    proc = subprocess.Popen([sys.executable, "-m", "longhorizon.cli", "train", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = wait_for("checkpoints/.tmp-step_000002-*/SLEEPING", run, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # The half-written checkpoint is there, but `latest` still names the complete one.
    assert (marker.parent / "policy.safetensors").exists() and not (marker.parent / "state.pt").exists()
    assert latest_checkpoint(run).name == "step_000001"
    assert [r["step"] for r in read_records(run)] == [1, 2]  # step 2 was logged, not checkpointed

    threads = torch.get_num_threads()
    result = CliRunner().invoke(app, ["train", "--resume", str(run)])
    torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert latest_checkpoint(run).name == "step_000003"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step_000003"]  # keep_checkpoints: 1
    assert [r["step"] for r in read_records(run)] == [1, 2, 3]  # step 2 redone, logged once
