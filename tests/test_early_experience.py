"""Early Experience (rollout/early_experience.py): branches off expert states, executed, as world-model data."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.errors import UserError
from longhorizon.models import load_model
from longhorizon.rollout.demos import oracle_demonstrations
from longhorizon.rollout.early_experience import branch_transitions, world_model_prompt, world_model_rows
from longhorizon.rollout.policies import OraclePolicy
from longhorizon.rollout.runner import Action
from longhorizon.train import load_config, train
from longhorizon.train.demonstrations import conversation_sample
from longhorizon.train.metrics import read_records

ENV = "longhorizon/Execution-v0"
KNOBS = {"horizon": 2, "dict_size": 3, "value_range": 5, "stop_on_error": True}


class Fixed:
    """A branch policy that always answers `text`, counting the episodes it was asked about."""

    def __init__(self, text: str):
        self.text, self.asked = text, 0

    def act(self, episodes):
        self.asked += len(episodes)
        return [Action(text=self.text) for _ in episodes]


def test_transitions_by_hand():
    demos = oracle_demonstrations(ENV, 2, KNOBS, seed=5)
    policy = Fixed("<answer>999</answer>")
    transitions, counts = branch_transitions(demos, policy, k=3)
    assert policy.asked == 2 * 2 * 3  # every expert state, K times
    assert counts == {"states": 4, "kept": 4, "dropped": 8}  # the K copies agree: one kept per state
    expert = [t for t in transitions if t.expert]
    demo = demos[0]
    assert [(t.seed, t.turn, t.action) for t in expert[:2]] == [(5, 0, demo.turns[0].action), (5, 1, demo.turns[1].action)]
    assert expert[0].next_observation == demo.turns[1].observation  # "Turn 2 of 2. Keys: ..."
    assert expert[1].next_observation == "The task is over."
    assert expert[1].history == ((demo.turns[0].observation, demo.turns[0].action),)
    branched = [t for t in transitions if not t.expert]
    # a wrong total ends the episode (stop_on_error): the env's answer to it is the final message
    assert [(t.seed, t.turn, t.action, t.next_observation) for t in branched] == [
        (5, 0, "<answer>999</answer>", "The task is over."), (5, 1, "<answer>999</answer>", "The task is over."),
        (6, 0, "<answer>999</answer>", "The task is over."), (6, 1, "<answer>999</answer>", "The task is over.")]
    unreadable, _ = branch_transitions(demos[:1], Fixed("no idea"), k=1)
    assert unreadable[-1].next_observation.startswith("Your answer could not be read")  # error messages stay targets


def test_alternatives_equal_to_the_expert_are_dropped_and_replays_are_checked():
    demos = oracle_demonstrations(ENV, 2, KNOBS)
    transitions, counts = branch_transitions(demos, OraclePolicy(), k=2)
    assert counts == {"states": 4, "kept": 0, "dropped": 8} and all(t.expert for t in transitions)
    broken = dataclasses.replace(demos[0], turns=[dataclasses.replace(demos[0].turns[0], observation="edited"),
                                                  *demos[0].turns[1:]])
    with pytest.raises(UserError, match="does not replay"):
        branch_transitions([broken], Fixed("<answer>1</answer>"), k=1)
    with pytest.raises(UserError, match="k >= 1"):
        branch_transitions(demos, OraclePolicy(), k=0)


def test_rows_put_the_loss_on_the_next_observation_only():
    demos = oracle_demonstrations(ENV, 1, KNOBS)
    transitions, _ = branch_transitions(demos, Fixed("<answer>999</answer>"), k=1)
    rows = world_model_rows(transitions)
    assert len(rows) == 4 and [r["metadata"]["expert"] for r in rows] == [True, True, False, False]
    prompt = world_model_prompt(transitions[1])
    assert prompt.startswith("Predict the environment's next message.")
    assert f"[agent]\n{demos[0].turns[0].action}" in prompt and prompt.endswith("What does the environment answer?")
    tok = load_model("tiny-random").tokenizer
    sample = conversation_sample(tok, rows[2]["messages"])
    learned = tok.decode([i for i, m in zip(sample.input_ids, sample.loss_mask) if m])
    assert learned == "The task is over.<|im_end|>"


def test_cli_then_sft(tmp_path: Path):
    out = tmp_path / "iwm.jsonl"
    result = CliRunner().invoke(app, ["early-experience", ENV, "--episodes", "2", "--k", "2", "--model", "tiny-random",
                                      "--max-new-tokens", "4", "--out", str(out), "--set", "horizon=2",
                                      "--set", "dict_size=3", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "4 expert states of longhorizon/Execution-v0" in result.output
    lines = out.read_text().splitlines()
    assert 4 < len(lines) <= 4 + 4 * 2  # the 4 expert transitions and up to 2 alternatives per state
    bad = CliRunner().invoke(app, ["early-experience", "nope/Env-v0", "--episodes", "1", "--out", str(out)])
    assert bad.exit_code == 2
    cfg = load_config(None, ["model=tiny-random", f"env_id={ENV}", "algorithm.name=sft", f"demonstrations={out}",
                             "steps=1", "tasks_per_step=4", "micro_batch_size=2", "eval.episodes=0",
                             "torch_threads=1", f"run_dir={tmp_path / 'run'}", "save_final_model=false",
                             "checkpoint_every=0", "optim.lr=0.01"])
    (step,) = [r for r in read_records(train(cfg).run_dir) if "losses/sft_loss" in r]
    assert step["charts/rows_trained"] == 4 and math.isfinite(step["losses/sft_loss"]) and step["losses/sft_loss"] > 0
