"""Data-parallel training over 2 processes on gloo (train/distributed.py, `longhorizon train --launcher accelerate`):
the same weights as 1 process with the same global batch, across a checkpoint and resume too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from longhorizon.errors import UserError
from longhorizon.models import load_model
from longhorizon.train import load_config, train
from longhorizon.train.checkpoint import latest_checkpoint, load_weights
from longhorizon.train.loop import check_data_parallel
from longhorizon.train.metrics import read_records

pytest.importorskip("accelerate")

RECIPE = """\
model: tiny-random
env_id: longhorizon/Apps-v0
env_kwargs: {max_steps: 1}
max_new_tokens: 5
steps: 2
tasks_per_step: 4
num_minibatches: 2
micro_batch_size: 2
torch_threads: 1
checkpoint_every: 1
keep_checkpoints: 2
save_final_model: false
algorithm: {name: grpo, group_size: 2, entropy: {method: epo}}
optim: {lr: 0.01}
eval: {episodes: 4}
"""


def two_processes(*args: str) -> subprocess.CompletedProcess:
    """`longhorizon train ARGS --launcher accelerate --num-processes 2` (accelerate launch, torchrun, gloo)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "longhorizon.cli", "train", *args, "--launcher", "accelerate", "--num-processes", "2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def close(a: dict, b: dict, atol: float) -> None:
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=0)


def test_two_gloo_processes_train_as_one(tmp_path: Path):
    """Two ranks, each with half of every minibatch's rows, sum their gradients: after 2 steps (2 updates each)
    the weights are one process's within 1e-5; rank 0 alone wrote the run (metrics, held-out evals)."""
    torch.set_num_threads(1)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    one = train(load_config(recipe, [f"run_dir={tmp_path / 'one'}"]))
    done = two_processes(str(recipe), "--out", str(tmp_path / "two"))
    assert "held-out eval" in done.stdout  # rank 0 reports; the other rank prints nothing of its own
    a, b = (load_weights(latest_checkpoint(p))["policy"] for p in (one.run_dir, tmp_path / "two"))
    close(a, b, atol=1e-5)
    initial = load_model("tiny-random").model.state_dict()
    assert any(not torch.equal(v, initial[k]) for k, v in a.items())  # the weights moved
    rows = {p.name: [r["charts/rows_with_gradient"] for r in read_records(p) if "charts/rows_with_gradient" in r]
            for p in (one.run_dir, tmp_path / "two")}
    assert rows["one"] == [4.0, 4.0] and rows["two"] == [2.0, 2.0]  # 8 rows in 2 minibatches; rank 0's half
    grads = [[r["losses/grad_norm"] for r in read_records(p) if "losses/grad_norm" in r] for p in (one.run_dir, tmp_path / "two")]
    assert grads[0] == pytest.approx(grads[1], rel=1e-4)  # the summed gradient is the whole minibatch's
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len({json.loads(x)["step"] for x in lines}) == 3  # steps 0, 1, 2, written once each


def test_two_processes_resume_exactly(tmp_path: Path):
    """One step on 2 processes, then --resume for the second: the weights of 2 straight steps in 1 process."""
    torch.set_num_threads(1)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.replace("eval: {episodes: 4}", "eval: {episodes: 0}"))
    straight = train(load_config(recipe, [f"run_dir={tmp_path / 'straight'}"]))
    two_processes(str(recipe), "--out", str(tmp_path / "two"), "--set", "steps=1")
    two_processes("--resume", str(tmp_path / "two"), "--set", "steps=2")
    a, b = (load_weights(latest_checkpoint(p))["policy"] for p in (straight.run_dir, tmp_path / "two"))
    close(a, b, atol=1e-5)


def test_what_several_processes_cannot_do_is_refused():
    with pytest.raises(UserError, match="RL algorithms only"):
        check_data_parallel(load_config(None, ["algorithm.name=sft", "demonstrations=x.jsonl"]))
    with pytest.raises(UserError, match="sampler: vllm"):
        check_data_parallel(load_config(None, ["sampler=vllm"]))
    with pytest.raises(UserError, match="Ray rollout workers"):
        check_data_parallel(load_config(None, ["rollout.workers=2"]))
    with pytest.raises(UserError, match="context without cross-episode state"):
        check_data_parallel(load_config(None, ["context=memory"]))
    check_data_parallel(load_config(None, ["algorithm.name=ppo"]))  # RL on transformers: fine
