"""Offline preference training (dpo, ipo) through `longhorizon train` on the tiny random model:
every method moves every trainable tensor with finite metrics, accumulation is exact, and resume is exact."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.errors import UserError
from longhorizon.feedback.build import PrefsBuildConfig, build_pairs
from longhorizon.models import load_model
from longhorizon.train import load_config, train
from longhorizon.train.checkpoint import latest_checkpoint, load_weights
from longhorizon.train.metrics import read_records
from longhorizon.train.model import build_models
from longhorizon.feedback.tokens import continuation_tokens
from longhorizon.train.offline import data_rows, decided_pairs, pad, pairs_backward, reference_logps
from longhorizon.train.optim import trainable
from tests.test_train import assert_same_weights, crash_then_resume

ENV = "longhorizon/Execution-v0"
runner = CliRunner()


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> Path:
    """Verifier-labelled pairs of a noisy oracle on a 2-turn Execution task (no model needed)."""
    out = tmp_path_factory.mktemp("prefs")
    pairs, _ = build_pairs(PrefsBuildConfig(model="noisy-oracle:0.6", env_id=ENV, tasks=8, samples=3,
                                            env_kwargs={"horizon": 2, "dict_size": 3}, out=str(out)))
    assert len(pairs) >= 4
    return out


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def offline_cfg(tmp_path: Path, pairs_dir: Path, *sets: str):
    base = ["model=tiny-random", f"env_id={ENV}", "env_kwargs={horizon: 2, dict_size: 3}", "max_new_tokens=4",
            "algorithm.name=dpo", f"preferences={pairs_dir}", "steps=2", "tasks_per_step=3", "micro_batch_size=2",
            "eval.episodes=0", "torch_threads=1", f"run_dir={tmp_path / 'run'}", "save_final_model=false",
            "checkpoint_every=1", "optim.lr=0.01"]
    return load_config(None, base + list(sets))


CASES = {"dpo": [], "ipo": ["algorithm.name=ipo", "algorithm.beta=0.5"], "dpo_lora": ["lora.enabled=true", "lora.r=4"]}


@pytest.mark.parametrize("case", list(CASES))
def test_every_offline_method_trains_two_steps(tmp_path, pairs_dir, case):
    cfg = offline_cfg(tmp_path, pairs_dir, "eval.episodes=2", "save_final_model=true", *CASES[case])
    result = train(cfg)
    records = read_records(result.run_dir)
    assert all(math.isfinite(v) for r in records for v in r.values()), records
    steps = [r for r in records if "losses/pref_loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for key in ("losses/pref_loss", "losses/reward_margin", "losses/chosen_logratio", "losses/rejected_logratio",
                "losses/pref_accuracy", "losses/grad_norm", "charts/learning_rate"):
        assert key in steps[-1], key
    assert result.eval_before is not None and result.eval_after is not None
    start = dict(build_models(cfg, needs_ref=False, value_head=False).model.named_parameters())
    weights = load_weights(latest_checkpoint(result.run_dir))["policy"]
    moved = {name: (w - start[name].detach()).abs().max().item() for name, w in weights.items()}
    assert moved and all(m > 0 for m in moved.values()), moved  # every trainable tensor changed
    if cfg.lora.enabled:
        assert all("lora_" in n for n in weights)
    load_model(str(result.run_dir / "model"))


def test_first_dpo_loss_is_log_2(tmp_path, pairs_dir):
    result = train(offline_cfg(tmp_path, pairs_dir, "steps=1"))  # policy == reference before the first update
    (first,) = [r for r in read_records(result.run_dir) if "losses/pref_loss" in r]
    assert first["losses/pref_loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert first["losses/reward_margin"] == pytest.approx(0.0, abs=1e-6)


def test_grad_accumulation_1x6_equals_6x1(tmp_path, pairs_dir):
    cfg = offline_cfg(tmp_path, pairs_dir, "tasks_per_step=6")
    models = build_models(cfg, needs_ref=True, value_head=False)
    pairs = [(continuation_tokens(models.tokenizer, p.context, p.chosen),
              continuation_tokens(models.tokenizer, p.context, p.rejected)) for p in decided_pairs(str(pairs_dir))[:6]]
    sides = tuple(pad([pair[s] for pair in pairs], models.tokenizer.pad_token_id) for s in (0, 1))
    refs = reference_logps(models, sides, cfg)
    with torch.no_grad():  # move the policy off the reference, so the loss is not at its symmetric point
        for p in trainable(models):
            p.add_(0.01 * torch.randn_like(p))
    models.model.train()
    grads = {}
    for size in (6, 1):
        for p in trainable(models):
            p.grad = None
        pairs_backward(models, sides, refs, torch.arange(6), cfg.model_copy(update={"micro_batch_size": size}))
        grads[size] = [p.grad.clone() for p in trainable(models) if p.grad is not None]
    assert len(grads[6]) == len(grads[1]) > 0 and any(g.abs().sum() > 0 for g in grads[6])
    for g6, g1 in zip(grads[6], grads[1]):
        torch.testing.assert_close(g6, g1, atol=1e-5, rtol=0)  # shared prefixes differ: float rounding


@pytest.mark.parametrize("case", ["dpo", "dpo_lora"])
def test_two_steps_resume_two_more_equals_four_straight(tmp_path, pairs_dir, case):
    sets = ["steps=4", "checkpoint_every=2", "epochs=2", "num_minibatches=2", *CASES[case]]
    straight = train(offline_cfg(tmp_path / "straight", pairs_dir, *sets))
    broken_cfg = offline_cfg(tmp_path / "broken", pairs_dir, *sets)

    resumed = crash_then_resume(broken_cfg)
    assert_same_weights(straight, resumed)
    losses = [[r["losses/pref_loss"] for r in read_records(run.run_dir)] for run in (straight, resumed)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-6) and len(losses[1]) == 4


def test_data_rows_visit_every_pair_once_per_pass():
    first_pass = data_rows(5, 0, 5, seed=3)
    assert sorted(first_pass) == [0, 1, 2, 3, 4]
    assert data_rows(5, 2, 6, seed=3) == first_pass[2:] + data_rows(5, 5, 3, seed=3)
    assert data_rows(5, 5, 5, seed=3) == data_rows(5, 0, 5, seed=4)


def test_dpo_without_pairs_is_a_config_error(tmp_path, pairs_dir):
    with pytest.raises(Exception, match="preference pairs"):
        offline_cfg(tmp_path, pairs_dir, "preferences=null")
    with pytest.raises(UserError, match="no preference pairs at"):
        train(offline_cfg(tmp_path, pairs_dir, f"preferences={tmp_path / 'nope'}"))


def test_cli_bad_preferences_path_exits_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: tiny-random\nalgorithm: {{name: dpo}}\npreferences: {tmp_path / 'x'}\n")
    result = runner.invoke(app, ["train", str(cfg), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "no preference pairs" in result.output
    assert len(result.output.strip().splitlines()) == 1
