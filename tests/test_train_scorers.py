"""Training reward and preference models through `longhorizon train` on the tiny random model: every trainable
tensor moves, metrics are finite, the held-out pair eval is logged, accumulation and resume are exact, the exported
model gives the trainer's scores, and bad input is one line with exit code 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.config_io import ConfigError
from longhorizon.errors import UserError
from longhorizon.feedback import make_pair, read_preferences, write_pairs
from longhorizon.feedback.build import PrefsBuildConfig, build_pairs
from longhorizon.feedback.reward_model import load_preference_model, load_reward_model
from longhorizon.train import load_config, train
from longhorizon.train.checkpoint import latest_checkpoint, load_trainable_state, load_weights
from longhorizon.train.metrics import read_records
from longhorizon.train.offline import decided_pairs
from longhorizon.train.optim import trainable
from longhorizon.train.scorers import build_scorer, heldout_log_odds, pair_rows, scorer_backward, split_pairs
from tests.test_train import assert_same_weights, crash_then_resume

ENV = "longhorizon/Execution-v0"
runner = CliRunner()


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> Path:
    """Verifier-labelled pairs of a noisy oracle on a 2-turn Execution task (no model needed)."""
    out = tmp_path_factory.mktemp("prefs")
    pairs, _ = build_pairs(PrefsBuildConfig(model="noisy-oracle:0.6", env_id=ENV, tasks=8, samples=3,
                                            env_kwargs={"horizon": 2, "dict_size": 3}, out=str(out)))
    assert len(pairs) >= 8 and len({p.metadata["seed"] for p in pairs}) >= 4
    return out


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def scorer_cfg(tmp_path: Path, pairs_dir: Path, *sets: str):
    base = ["model=tiny-random", "algorithm.name=reward_model", f"preferences={pairs_dir}", "steps=2",
            "tasks_per_step=3", "micro_batch_size=2", "torch_threads=1", f"run_dir={tmp_path / 'run'}",
            "save_final_model=false", "checkpoint_every=1", "optim.lr=0.01"]
    return load_config(None, base + list(sets))


CASES = {"rm": [], "rm_lora": ["lora.enabled=true", "lora.r=4"],
         "pm": ["algorithm.name=preference_model"], "pm_lora": ["algorithm.name=preference_model", "lora.enabled=true", "lora.r=4"]}


@pytest.mark.parametrize("case", list(CASES))
def test_every_scorer_trains_two_steps(tmp_path, pairs_dir, case):
    cfg = scorer_cfg(tmp_path, pairs_dir, *CASES[case])
    result = train(cfg)
    records = read_records(result.run_dir)
    assert all(math.isfinite(v) for r in records for v in r.values()), records
    steps = [r for r in records if "losses/pair_loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for key in ("losses/pair_loss", "losses/pref_accuracy", "losses/reward_margin", "losses/grad_norm",
                "charts/learning_rate"):
        assert key in steps[-1], key
    assert ("losses/chosen_reward" if case.startswith("rm") else "losses/order_bias") in steps[-1]
    evals = [r for r in records if "eval/pair_accuracy" in r]
    assert [r["step"] for r in evals] == [0, 2] and result.eval_before["step"] == 0 and result.eval_after["step"] == 2
    assert {"eval/pair_ece", "eval/pair_log_loss", "eval/pairs"} <= evals[0].keys() and evals[0]["eval/pairs"] > 0
    start = dict(build_scorer(cfg).model.named_parameters())
    weights = load_weights(latest_checkpoint(result.run_dir))["policy"]
    moved = {name: (w - start[name].detach()).abs().max().item() for name, w in weights.items()}
    assert moved and all(m > 0 for m in moved.values()), moved  # every trainable tensor changed
    assert any("score" in n for n in weights)  # the head is trained (with LoRA: peft's modules_to_save copy)
    if cfg.lora.enabled:
        assert all("lora_" in n or "score" in n for n in weights)


@pytest.mark.parametrize("case", ["rm", "rm_lora", "pm"])
def test_exported_model_gives_the_trainers_scores(tmp_path, pairs_dir, case):
    cfg = scorer_cfg(tmp_path, pairs_dir, "save_final_model=true", *CASES[case])
    result = train(cfg)
    models = build_scorer(cfg)  # the trainer's model, restored from its last checkpoint
    load_trainable_state(models, load_weights(latest_checkpoint(result.run_dir)))
    pairs = decided_pairs(str(pairs_dir))[:4]
    expected = heldout_log_odds(models, pair_rows(models.tokenizer, pairs, cfg.algorithm.name), cfg)
    if case.startswith("rm"):
        rm = load_reward_model(result.run_dir / "model")
        scores = torch.tensor(rm.score([(p.context, side) for p in pairs for side in (p.chosen, p.rejected)]),
                              dtype=torch.float64)
        got = scores[0::2] - scores[1::2]
    else:
        got = torch.tensor(load_preference_model(result.run_dir / "model").log_odds(
            [(p.context, p.chosen, p.rejected) for p in pairs]), dtype=torch.float64)
    # full fine-tune: the same tensors; LoRA: merged into the weights, equal up to float rounding
    torch.testing.assert_close(got, expected.double(), atol=1e-6 if case != "rm_lora" else 1e-5, rtol=0)
    config = json.loads((result.run_dir / "model" / "config.json").read_text())
    assert config["longhorizon_scorer"] == cfg.algorithm.name and config["architectures"] == ["LlamaForSequenceClassification"]


def test_grad_accumulation_1x4_equals_4x1(tmp_path, pairs_dir):
    cfg = scorer_cfg(tmp_path, pairs_dir)
    models = build_scorer(cfg)
    batch = pair_rows(models.tokenizer, decided_pairs(str(pairs_dir))[:4], "reward_model")
    assert_accumulation_invariant(scorer_backward, models, batch, cfg)


def assert_accumulation_invariant(backward, models, batch, cfg) -> None:
    """The gradient of 4 rows in one micro-batch equals that of 4 micro-batches of 1 (and is not 0)."""
    models.model.train()
    grads = {}
    for size in (4, 1):
        for p in trainable(models):
            p.grad = None
        backward(models, batch, torch.arange(4), cfg.model_copy(update={"micro_batch_size": size}))
        grads[size] = [p.grad.clone() for p in trainable(models)]
    assert any(g.abs().sum() > 0 for g in grads[4])
    for g4, g1 in zip(grads[4], grads[1]):
        torch.testing.assert_close(g4, g1, atol=1e-6, rtol=0)


@pytest.mark.parametrize("case", ["rm", "rm_lora", "pm"])
def test_two_steps_resume_two_more_equals_four_straight(tmp_path, pairs_dir, case):
    sets = ["steps=4", "checkpoint_every=2", "epochs=2", "num_minibatches=2", "eval.every=1", *CASES[case]]
    straight = train(scorer_cfg(tmp_path / "straight", pairs_dir, *sets))
    broken_cfg = scorer_cfg(tmp_path / "broken", pairs_dir, *sets)

    resumed = crash_then_resume(broken_cfg)
    assert_same_weights(straight, resumed)
    for key in ("losses/pair_loss", "eval/pair_log_loss"):
        runs = [[r[key] for r in read_records(run.run_dir) if key in r] for run in (straight, resumed)]
        assert runs[0] == pytest.approx(runs[1], abs=1e-6) and len(runs[1]) == (4 if key.startswith("losses") else 5)


def test_learns_a_separable_pair_set(tmp_path):
    """Tiny-random learns that continuations ending in "yes" beat those ending in "no" (held-out contexts)."""
    pairs = [make_pair(f"Question {i}: is it {w}?", f"Answer: {i % 7} yes", f"Answer: {i % 7} no", "a", "human")
             for i, w in enumerate(["red", "big", "old", "new", "hot"] * 8)]
    write_pairs(tmp_path / "pairs.jsonl", pairs)
    cfg = load_config(None, ["model=tiny-random", "algorithm.name=reward_model", f"preferences={tmp_path / 'pairs.jsonl'}",
                             "steps=12", "tasks_per_step=8", "micro_batch_size=8", "torch_threads=1", "optim.lr=0.003",
                             "pairs_heldout=0.25", "checkpoint_every=0", "save_final_model=false",
                             f"run_dir={tmp_path / 'run'}"])
    result = train(cfg)
    before, after = result.eval_before, result.eval_after
    assert after["eval/pairs"] == 10
    assert after["eval/pair_accuracy"] == 1.0 > before["eval/pair_accuracy"]
    assert after["eval/pair_log_loss"] < before["eval/pair_log_loss"]


# ------------------------------------------------------------------ the held-out split


def test_split_holds_out_whole_tasks_deterministically(pairs_dir):
    pairs = decided_pairs(str(pairs_dir))
    train_pairs, held = split_pairs(pairs, 0.3, seed=5)
    assert (train_pairs, held) == split_pairs(pairs, 0.3, seed=5)
    assert len(held) >= 0.3 * len(pairs) and len(train_pairs) + len(held) == len(pairs)
    assert not {p.metadata["seed"] for p in held} & {p.metadata["seed"] for p in train_pairs}
    assert split_pairs(pairs, 0.0, seed=5) == (pairs, [])
    one_task = [p for p in pairs if p.metadata["seed"] == pairs[0].metadata["seed"]]
    with pytest.raises(UserError, match="pairs_heldout: .*leaves none to train on"):
        split_pairs(one_task, 0.2, seed=0)


# ------------------------------------------------------------------ config and bad input


def test_config_evaluates_on_pairs_not_episodes(tmp_path, pairs_dir):
    cfg = scorer_cfg(tmp_path, pairs_dir)
    assert cfg.eval.episodes == 0 and cfg.pairs_heldout == 0.2
    with pytest.raises(ConfigError, match="held-out pairs"):
        scorer_cfg(tmp_path, pairs_dir, "eval.episodes=8")
    with pytest.raises(ConfigError, match="preference pairs"):
        scorer_cfg(tmp_path, pairs_dir, "preferences=null")
    with pytest.raises(ConfigError, match="rollout.workers"):
        scorer_cfg(tmp_path, pairs_dir, "rollout.workers=2")


def run_cli(tmp_path: Path, preferences: Path, kind: str = "reward_model"):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: tiny-random\nalgorithm: {{name: {kind}}}\npreferences: {preferences}\n")
    return runner.invoke(app, ["train", str(cfg), "--out", str(tmp_path / "run")])


def one_line_exit_2(result, match: str) -> None:
    assert result.exit_code == 2 and match in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_cli_bad_pairs_are_one_line_exit_2(tmp_path, pairs_dir):
    good = json.loads((pairs_dir / "feedback" / "preferences.jsonl").read_text().splitlines()[0])
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps({k: v for k, v in good.items() if k != "b"}) + "\n")
    one_line_exit_2(run_cli(tmp_path, missing), "missing.jsonl:1: bad preference pair: b: Field required")
    same = tmp_path / "same.jsonl"
    same.write_text(json.dumps({**good, "b": good["a"]}) + "\n")
    one_line_exit_2(run_cli(tmp_path, same, "preference_model"), "the two sides of the pair are identical")
    import datasets

    datasets.Dataset.from_list([{"prompt": "x", "answer": "y"}]).save_to_disk(str(tmp_path / "ds"))
    one_line_exit_2(run_cli(tmp_path, tmp_path / "ds"), "dataset lacks the 'chosen' and 'rejected' column(s)")
    one_line_exit_2(run_cli(tmp_path, tmp_path / "nowhere"), "no preference pairs at")
    assert not (tmp_path / "run").exists()


def test_trl_dataset_trains_a_reward_model(tmp_path):
    """A TRL preference dataset (conversational, with TRL's `margin` column) trains through `longhorizon train`."""
    import datasets

    rows = [{"prompt": [{"role": "user", "content": f"Colour of the sky, try {i}?"}],
             "chosen": [{"role": "assistant", "content": "Blue."}],
             "rejected": [{"role": "assistant", "content": "Green." if i % 2 else "Red."}], "margin": 0.5 * i}
            for i in range(6)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    assert read_preferences(tmp_path / "ds")[3].metadata["margin"] == 1.5
    result = run_cli(tmp_path, tmp_path / "ds")
    assert result.exit_code == 0, result.output
    assert "held-out pairs after (step 10)" in result.output and (tmp_path / "run" / "model" / "config.json").exists()
