"""Training on the tiny random model: the first ratio is 1, grad accumulation is invariant,
every algorithm moves the weights with finite metrics, and a resumed run equals an unbroken one.

The env is a toy registered here whose reward (distinct characters in the
answer / 20) varies between random samples, so every algorithm gets a signal.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import pytest
import torch
import yaml
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.context import make_strategy
from longhorizon.envs.core.base import TextEnv
from longhorizon.errors import UserError
from longhorizon.models import SamplingParams, TransformersSampler, load_model
from longhorizon.rollout import ModelPolicy, run_episodes
from longhorizon.train import ALGORITHMS, load_config, train
from longhorizon.train.batch import collate, with_credit
from longhorizon.train.checkpoint import latest_checkpoint, load_weights
from longhorizon.train.loop import score, task_specs
from longhorizon.train.metrics import read_records
from longhorizon.train.model import build_models, reference, token_forward
from longhorizon.train.optim import trainable
from longhorizon.train import update
from longhorizon.train.update import minibatch_backward

TEST_ENV = "longhorizon-test/Chars-v0"


class CharsEnv(TextEnv):
    """Each turn pays (distinct characters in the answer) / 20."""

    KNOBS = {"horizon": "turns per episode"}

    def __init__(self, horizon: int = 2, render_mode: str | None = None):
        super().__init__(render_mode)
        self.horizon = horizon

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.turn = 0
        return f"Task {seed}: say anything.", {}

    def step(self, action):
        self.turn += 1
        reward = len(set(action)) / 20
        done = self.turn >= self.horizon
        info = {"correct": reward > 0.3, **({"success": reward > 0.3} if done else {})}
        return ("Done." if done else f"Turn {self.turn + 1}: again."), reward, done, False, info


if TEST_ENV not in gym.registry:
    gym.register(TEST_ENV, entry_point=CharsEnv, disable_env_checker=True)


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def tiny_cfg(tmp_path: Path, *sets: str):
    base = ["model=tiny-random", f"env_id={TEST_ENV}", "env_kwargs={horizon: 2}", "max_new_tokens=5", "steps=2",
            "tasks_per_step=2", "algorithm.group_size=2", "micro_batch_size=2", "eval.episodes=0", "torch_threads=1",
            f"run_dir={tmp_path / 'run'}", "save_final_model=false", "save_trajectories=false", "checkpoint_every=1",
            "optim.lr=0.01"]
    return load_config(None, base + list(sets))


def collect(cfg, context: str = "full"):
    """Models and one step's batch, exactly as the loop builds them (credit included)."""
    torch.set_num_threads(1)
    algo = ALGORITHMS[cfg.algorithm.name]
    models = build_models(cfg, needs_ref=algo.needs_ref(cfg.algorithm), value_head=algo.value_head)
    params = SamplingParams(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    strategy = make_strategy(context)
    policy = ModelPolicy(TransformersSampler(models.model, models.tokenizer, params), strategy)
    batch = collate(run_episodes(task_specs(cfg, 0), policy), strategy, models.tokenizer.pad_token_id)
    batch, _ = score(models, batch, cfg, algo)
    credit = algo.credit(batch, cfg.algorithm)
    return models, with_credit(batch, advantages=credit.advantages, loss_mask=credit.loss_mask, returns=credit.returns)


@pytest.mark.parametrize("lora", [False, True])
def test_ratio_is_one_before_the_first_update(tmp_path, lora):
    cfg = tiny_cfg(tmp_path, "temperature=0.7", f"lora.enabled={lora}")
    models, batch = collect(cfg)
    models.model.train()
    out = token_forward(models.model, batch.input_ids, batch.attention_mask, batch.loss_mask, cfg.temperature)
    ratio = torch.exp(out.logprobs - batch.old_logprobs)[batch.loss_mask.bool()]
    assert ratio.numel() > 10
    torch.testing.assert_close(ratio, torch.ones_like(ratio), atol=1e-5, rtol=0)


@pytest.mark.parametrize("algo,agg", [("grpo", "token-mean"), ("grpo", "seq-mean-token-mean"), ("ppo", "token-mean")])
def test_grad_accumulation_1x8_equals_8x1(tmp_path, algo, agg):
    cfg = tiny_cfg(tmp_path, f"algorithm.name={algo}", f"algorithm.aggregation={agg}", "algorithm.kl_coef=0.1",
                   "tasks_per_step=4")
    models, batch = collect(cfg)
    assert batch.rows == 8
    models.model.train()
    grads = {}
    for size in (8, 1):
        for p in trainable(models):
            p.grad = None
        minibatch_backward(models, batch, torch.arange(8), cfg.model_copy(update={"micro_batch_size": size}),
                           ALGORITHMS[algo])
        grads[size] = [p.grad.clone() for p in trainable(models) if p.grad is not None]
    assert len(grads[8]) == len(grads[1]) > 0 and any(g.abs().sum() > 0 for g in grads[8])
    for g8, g1 in zip(grads[8], grads[1]):
        torch.testing.assert_close(g8, g1, atol=1e-5, rtol=0)


@pytest.mark.parametrize("algo,agg", [("grpo", "token-mean"), ("grpo", "seq-mean-token-mean"),
                                      ("grpo", "seq-mean-token-sum"), ("grpo", "trace-length"), ("ppo", "trace-length")])
def test_grad_accumulation_is_exact_with_episodes_split_over_micro_batches(tmp_path, algo, agg):
    """One row per turn (window context), rows shuffled: an episode's rows fall in different micro-batches."""
    cfg = tiny_cfg(tmp_path, f"algorithm.name={algo}", f"algorithm.aggregation={agg}", "algorithm.kl_coef=0.1",
                   "tasks_per_step=2")
    models, batch = collect(cfg, "window")
    episodes = batch.row_episode.tolist()
    assert batch.rows > len(set(episodes))  # some episode has several rows
    torch.manual_seed(1)
    rows = torch.randperm(batch.rows)
    models.model.train()
    grads = {}
    for size in (batch.rows, 1, 3):
        for p in trainable(models):
            p.grad = None
        minibatch_backward(models, batch, rows, cfg.model_copy(update={"micro_batch_size": size}), ALGORITHMS[algo])
        grads[size] = [p.grad.clone() for p in trainable(models) if p.grad is not None]
    assert any(g.abs().sum() > 0 for g in grads[batch.rows])
    for size in (1, 3):
        assert len(grads[size]) == len(grads[batch.rows]) > 0
        for whole, split in zip(grads[batch.rows], grads[size]):
            torch.testing.assert_close(split, whole, atol=1e-5, rtol=0)


def test_skipping_rows_without_gradient_changes_nothing(tmp_path, monkeypatch):
    cfg = tiny_cfg(tmp_path, "tasks_per_step=4", "algorithm.group_size=2")
    models, batch = collect(cfg)
    batch.advantages[:2] = 0.0  # two rows that can have no gradient: they are skipped but still counted
    models.model.train()
    grads = []
    for skip in (True, False):
        if not skip:
            monkeypatch.setattr(update, "has_gradient", lambda batch, rows, cfg, algo: torch.ones(len(rows), dtype=torch.bool))
        for p in trainable(models):
            p.grad = None
        metrics = update.minibatch_backward(models, batch, torch.arange(8), cfg, ALGORITHMS["grpo"])
        grads.append([p.grad.clone() for p in trainable(models)])
        live = int(((batch.advantages != 0) & batch.loss_mask.bool()).any(1).sum())
        assert live <= 6 and metrics["charts/rows_with_gradient"] == (live if skip else 8)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_lora_reference_is_the_base_model_with_adapters_off(tmp_path):
    cfg = tiny_cfg(tmp_path, "lora.enabled=true", "algorithm.kl_coef=0.1")
    models = build_models(cfg, needs_ref=True, value_head=False)
    assert models.ref_model is None
    with torch.no_grad():
        for name, p in models.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)  # the adapters now change the output
    base = load_model("tiny-random").model
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    mask = torch.tensor([[0.0, 0, 1, 1, 1, 1]])
    expected = token_forward(base, ids, torch.ones_like(ids), mask, 1.0).logprobs
    with torch.no_grad(), reference(models) as ref:
        torch.testing.assert_close(token_forward(ref, ids, torch.ones_like(ids), mask, 1.0).logprobs, expected)
    adapted = token_forward(models.model, ids, torch.ones_like(ids), mask, 1.0).logprobs
    assert (adapted - expected).abs().max() > 1e-3


def test_full_fine_tune_with_kl_keeps_a_frozen_reference_copy(tmp_path):
    models = build_models(tiny_cfg(tmp_path, "algorithm.kl_coef=0.1"), needs_ref=True, value_head=False)
    assert models.ref_model is not None and models.ref_model is not models.model
    assert not any(p.requires_grad for p in models.ref_model.parameters())
    assert all(p.requires_grad for p in models.model.parameters())


CASES = {
    "grpo": ["algorithm.name=grpo", "algorithm.kl_coef=0.05"],
    "dr_grpo_seq_mean_k1": ["algorithm.name=grpo", "algorithm.scale_by_std=false", "algorithm.kl_coef=0.05",
                            "algorithm.kl_estimator=k1", "algorithm.aggregation=seq-mean-token-mean"],
    "grpo_lora": ["algorithm.name=grpo", "algorithm.kl_coef=0.05", "lora.enabled=true", "optim.lr=0.05"],
    # rloo is on-policy REINFORCE: one epoch, one minibatch (more is refused at validation)
    "rloo": ["algorithm.name=rloo", "algorithm.kl_coef=0.05", "epochs=1", "num_minibatches=1"],
    "rloo_per_turn": ["algorithm.name=rloo", "algorithm.credit=per_turn", "algorithm.turn_gamma=0.9", "epochs=1",
                      "num_minibatches=1"],
    "loop": ["algorithm.name=loop"],
    "reinforce++": ["algorithm.name=reinforce++", "algorithm.kl_coef=0.05"],
    "ppo": ["algorithm.name=ppo", "algorithm.kl_coef=0.05", "optim.value_lr=0.05"],
    "ppo_max": ["algorithm.name=ppo", "algorithm.kl_coef=0.05", "algorithm.reward_norm=normalize",
                "algorithm.reward_clip=2.0", "algorithm.credit=per_turn", "optim.schedule=cosine",
                "optim.warmup_updates=2"],
}


def final_weights(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    return load_weights(latest_checkpoint(run_dir))


@pytest.mark.parametrize("case", list(CASES))
def test_every_algorithm_trains_two_steps(tmp_path, case):
    cfg = tiny_cfg(tmp_path, "eval.episodes=2", "epochs=2", "num_minibatches=2", "save_final_model=true", *CASES[case])
    result = train(cfg)
    records = read_records(result.run_dir)
    assert all(math.isfinite(v) for r in records for v in r.values()), records
    steps = [r for r in records if "charts/reward_mean" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for key in ("charts/reward_mean", "charts/reward_std", "charts/success_rate", "losses/policy_loss",
                "losses/entropy", "losses/approx_kl", "losses/grad_norm", "perf/tokens_per_s", "perf/step_time",
                "perf/score_time", "perf/peak_memory_mb", "charts/learning_rate"):
        assert key in steps[-1], key
    if cfg.algorithm.kl_coef > 0:
        assert "losses/kl_ref" in steps[-1] or "losses/kl_ref_behaviour" in steps[-1]
    if ALGORITHMS[cfg.algorithm.name].policy_loss != "reinforce":
        assert "losses/clip_frac" in steps[-1]
    assert result.eval_before is not None and result.eval_after is not None

    start = dict(build_models(cfg, needs_ref=False, value_head=False).model.named_parameters())  # same seed
    weights = final_weights(result.run_dir)
    moved = {name: (w - start[name].detach()).abs().max().item() for name, w in weights["policy"].items()}
    assert moved and all(m > 0 for m in moved.values()), moved  # every trainable tensor changed
    if cfg.lora.enabled:
        assert all("lora_" in n for n in weights["policy"])  # only the adapters are saved
    if ALGORITHMS[cfg.algorithm.name].value_head:
        assert weights["value_head"]["weight"].abs().max() > 0
    assert (result.run_dir / "curves.png").exists() and list((result.run_dir / "tb").glob("events.*"))
    assert (result.run_dir / "model" / "config.json").exists()
    load_model(str(result.run_dir / "model"))  # the exported model loads like any HF directory


def test_cli_train_prints_the_held_out_eval_before_and_after(tmp_path):
    cfg = tiny_cfg(tmp_path, "eval.episodes=2")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    result = CliRunner().invoke(app, ["train", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "held-out evaluation" in result.output and "before" in result.output and "after" in result.output
    assert "reward gain" in result.output and "curves.png" in result.output


def test_first_update_of_a_step_sees_ratio_one(tmp_path):
    result = train(tiny_cfg(tmp_path, "steps=1", "epochs=1", "num_minibatches=1", "algorithm.kl_coef=0.05"))
    step = [r for r in read_records(result.run_dir) if "losses/ratio_mean" in r][0]
    assert abs(step["losses/ratio_mean"] - 1) < 1e-5 and abs(step["losses/ratio_max"] - 1) < 1e-5


class Crash(Exception):
    pass


def crash_then_resume(cfg, at: int = 3):
    """Train `cfg` until the log of step `at` raises Crash, then resume it; the resumed run's result."""

    def crash(step, metrics):
        if step == at:
            raise Crash

    with pytest.raises(Crash):
        train(cfg, on_log=crash)
    return train(cfg, resume=True)


def assert_same_weights(*runs, atol: float = 1e-6) -> None:
    """The latest checkpoints of two runs hold the same weights, within `atol`."""
    a, b = (load_weights(latest_checkpoint(r.run_dir))["policy"] for r in runs)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=0)


RESUME_CASES = {
    "grpo_full_kl": ["algorithm.name=grpo", "algorithm.kl_coef=0.05"],
    "ppo_lora_dropout_norm": ["algorithm.name=ppo", "lora.enabled=true", "lora.dropout=0.1", "optim.lr=0.05",
                              "algorithm.reward_norm=normalize", "optim.schedule=cosine", "optim.warmup_updates=3"],
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_two_steps_resume_two_more_equals_four_straight(tmp_path, case):
    sets = ["steps=4", "checkpoint_every=2", "save_trajectories=true", "epochs=2", "num_minibatches=2",
            *RESUME_CASES[case]]
    straight = train(tiny_cfg(tmp_path / "straight", *sets))

    broken_cfg = tiny_cfg(tmp_path / "broken", *sets)

    def crash_at_step_3(step, metrics):
        if step == 3:
            raise Crash  # after step 3's update, before its work is checkpointed

    with pytest.raises(Crash):
        train(broken_cfg, on_log=crash_at_step_3)
    assert latest_checkpoint(Path(broken_cfg.run_dir)).name == "step_000002"
    resumed = train(broken_cfg, resume=True)

    a, b = final_weights(straight.run_dir), final_weights(resumed.run_dir)
    assert a["policy"].keys() == b["policy"].keys()
    for name in a["policy"]:
        torch.testing.assert_close(a["policy"][name], b["policy"][name], atol=1e-6, rtol=0)
    for name in a["value_head"]:
        torch.testing.assert_close(a["value_head"][name], b["value_head"][name], atol=1e-6, rtol=0)
    for step in (3, 4):  # the same random draws after the resume
        assert _actions(straight.run_dir, step) == _actions(resumed.run_dir, step)
    assert [r["step"] for r in read_records(resumed.run_dir)] == [1, 2, 3, 4]  # redone steps logged once
    assert _losses(straight.run_dir) == pytest.approx(_losses(resumed.run_dir), abs=1e-6)


def _actions(run_dir: Path, step: int) -> list[list[int]]:
    lines = (run_dir / "trajectories" / f"step_{step:06d}.jsonl").read_text().splitlines()
    return [turn["action_ids"] for line in lines for turn in json.loads(line)["turns"]]


def _losses(run_dir: Path) -> list[float]:
    return [r[k] for r in read_records(run_dir) for k in sorted(r) if k.startswith(("losses/", "charts/"))]


def test_resume_with_a_different_model_setup_is_a_user_error(tmp_path):
    cfg = tiny_cfg(tmp_path, "steps=1")
    train(cfg)
    changed = cfg.model_copy(update={"lora": cfg.lora.model_copy(update={"enabled": True})})
    with pytest.raises(UserError, match="does not match"):
        train(changed, resume=True)


def test_rollout_metrics_include_the_envs_own_metrics():
    from longhorizon.train.loop import rollout_metrics
    from longhorizon.types import Trajectory, Turn

    def episode(reward, metrics):
        return Trajectory(env_id="e", seed=0, turns=[Turn("o", "a", reward=reward)], success=reward > 0,
                          metadata={"metrics": metrics})

    m = rollout_metrics([episode(1.0, {"length": 80.0, "ok": True, "note": "x"}), episode(0.0, {"length": 40.0})])
    assert m["env/length"] == 60.0 and m["env/ok"] == 1.0 and "env/note" not in m
    assert m["charts/reward_mean"] == 0.5 and m["charts/success_rate"] == 0.5
