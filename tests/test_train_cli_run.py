"""What a training run leaves and says: one checkpoint by default, the model exported once in bf16 when
trained in bf16, the run directory's size, the command for the trained model's horizon curve, `--resume` on a
finished run, no transformers deprecation warning from LoRA, and no directory left by a failed command."""

from __future__ import annotations

import json

import torch
from safetensors import safe_open
from typer.testing import CliRunner

from longhorizon.cli import app

runner = CliRunner()
TINY = ["--set", "model=tiny-random", "--set", "steps=2", "--set", "checkpoint_every=1", "--set", "tasks_per_step=1",
        "--set", "algorithm.group_size=2", "--set", "eval.episodes=2", "--set", "micro_batch_size=2"]


def test_a_lora_run_in_bf16_keeps_one_checkpoint_exports_bf16_and_says_its_size(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "recipes/quickstart.yaml", *TINY, "--set", "lora.enabled=true",
                                 "--out", str(out)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "is_gradient_checkpointing" not in result.output
    steps = sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("step_"))
    assert steps == ["step_000002"]  # keep_checkpoints defaults to 1
    weights = next((out / "model").glob("*.safetensors"))
    with safe_open(weights, "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert dtypes == {torch.bfloat16}  # autocast_bf16 in the recipe: the model is exported in bf16
    assert f"run: {out} (" in result.output and "on disk: " in result.output
    assert f"longhorizon eval --model {out / 'model'} --env longhorizon/Execution-v0" in result.output
    assert "--horizons 1,2,4,8" in result.output and "--knob stop_on_error=true" in result.output

    again = runner.invoke(app, ["train", "--resume", str(out)], env={"COLUMNS": "300"})
    assert again.exit_code == 0, again.output
    assert "already finished its 2 steps" in again.output and f"--resume {out} --set steps=4" in again.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) == 2  # nothing was trained again


def test_fp32_training_exports_fp32(tmp_path):
    out = tmp_path / "run32"
    result = runner.invoke(app, ["train", "recipes/quickstart.yaml", *TINY, "--set", "autocast_bf16=false",
                                 "--set", "steps=1", "--set", "eval.episodes=0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with safe_open(next((out / "model").glob("*.safetensors")), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}


def test_a_failed_training_command_leaves_no_directory(tmp_path):
    out = tmp_path / "runs" / "bad"
    for args in (["--set", "model=no-such-model"], ["--set", "env_kwargs.horizn=3"], ["--set", "optim.lrr=1"]):
        result = runner.invoke(app, ["train", "recipes/quickstart.yaml", *args, "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert not (tmp_path / "runs").exists()


def test_a_model_that_fails_to_load_leaves_no_directory(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')  # passes the set-up check, fails to load
    out = tmp_path / "runs" / "x"
    result = runner.invoke(app, ["train", "recipes/quickstart.yaml", "--set", f"model={broken}", "--out", str(out)])
    assert result.exit_code != 0
    assert not (tmp_path / "runs").exists()
