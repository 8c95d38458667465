"""LongWriter-Zero's reward combination (issue 15, methods-2.md §4c): the `length` and `think_format` turn
functions at their boundaries, per-component advantage averaging by hand and against a loop, and the
recipe: it loads, and two tiny steps log every component."""

from __future__ import annotations

import math
from types import SimpleNamespace

import gymnasium as gym
import pytest
import torch

from longhorizon.algorithms import ADVANTAGE_ESTIMATORS
from longhorizon.algorithms.advantages import component_advantages
from longhorizon.envs.longwrite.text import length_score
from longhorizon.train import load_config, train
from longhorizon.train.exploration import shaped_turn_rewards
from longhorizon.train.metrics import read_records
from longhorizon.train.segment_rewards import length, think_answer_format, think_format, visible_text
from longhorizon.types import Trajectory, Turn

SQRT_HALF = 1 / math.sqrt(2)


# -- think_format: exactly one <think> block, then one <answer> block, no repeated sentence --------------------
@pytest.mark.parametrize("text, score", [
    ("<think>plan</think><answer>The text.</answer>", 1.0),
    ("\n <think>\nplan\n</think>\n\n<answer>\nThe text.\n</answer>\n", 1.0),   # whitespace around is fine
    ("<think>a</think><answer>" + "word " * 25_000 + "</answer>", 1.0),         # 125k characters, one sentence
    ("<think></think><answer>The text.</answer>", 0.0),                         # empty thinking
    ("<think>plan</think><answer> 42 </answer>", 0.0),                          # an answer without words
    ("<answer>The text.</answer>", 0.0),                                        # no <think>
    ("<think>plan</think>The text.", 0.0),                                      # no <answer>
    ("Sure! <think>plan</think><answer>The text.</answer>", 0.0),               # text before
    ("<think>plan</think><answer>The text.</answer> Bye.", 0.0),                # text after
    ("<think>plan</think><answer>One.</answer><answer>Two.</answer>", 0.0),     # two answers
    ("<think>a</think><think>b</think><answer>The text.</answer>", 0.0),        # two thinks
    ("<answer>x</answer><think>plan</think>", 0.0),                             # wrong order
    ("<think>plan<answer>The text.</answer></think>", 0.0),                     # nested
    ("<think>plan</think><answer>The text.", 0.0),                              # unclosed
    ("<think>plan</think><answer>It rains. It pours. it  RAINS.</answer>", 0.0),  # a sentence repeats
    ("<think>plan</think><answer>It rains. It pours.</answer>", 1.0),
    ("", 0.0),
    ("<think>" * 30_000, 0.0),
])
def test_think_format_by_hand(text, score):
    assert think_answer_format(text) == score


def test_think_format_scores_every_turn():
    traj = Trajectory(env_id="e", seed=0, turns=[Turn("o", "<think>p</think><answer>A b.</answer>"), Turn("o", "x")])
    assert think_format(traj) == [1.0, 0.0]


@pytest.mark.parametrize("text, visible", [
    ("plain text, no tags", "plain text, no tags"),
    ("<think>plan plan</think>\n<answer>The text.</answer>", "\nThe text."),
    ("<think>a</think> one <think>b</think> two", " two"),             # after the last </think>
    ("The start. <think>never closed", "The start. "),                # an unclosed <think> runs to the end
    ("<answer>The text.</answer>", "The text."),
])
def test_visible_text_is_what_a_reader_gets(text, visible):
    assert visible_text(text) == visible


# -- length: LongBench-Write's S_l / 100 of the visible document, on the last turn -------------------------------
def _written(document: str, required: int, turns: int = 2) -> Trajectory:
    last = {"document": document, "metrics": {"required_words": float(required)}}
    return Trajectory(env_id="e", seed=0, turns=[Turn("o", "a") for _ in range(turns - 1)] + [Turn("o", "a", info=last)])


@pytest.mark.parametrize("required, words, expected", [
    (100, 100, 1.0),          # exactly l
    (100, 400, 0.0),          # 4l: over-length reaches 0
    (100, 200, 2 / 3),        # 2l
    (100, 101, 1 - 0.01 / 3),
    (100, 50, 0.5),           # l/2
    (300, 100, 0.0),          # l/3: under-length reaches 0
    (100, 99, 1 - (100 / 99 - 1) / 2),
    (100, 0, 0.0),            # nothing written
])
def test_length_is_s_l_at_its_boundaries(required, words, expected):
    document = "<think>" + "plan " * 500 + "</think><answer>" + "word " * words + "</answer>"  # thinking is not text
    assert length(_written(document, required)) == pytest.approx([0.0, expected], abs=1e-12)
    assert length(_written("word " * words, required, turns=1)) == pytest.approx([expected], abs=1e-12)


def test_length_is_zero_without_a_document_or_a_requirement():
    assert length(Trajectory(env_id="e", seed=0, turns=[Turn("o", "a"), Turn("o", "b")])) == [0.0, 0.0]
    assert length(Trajectory(env_id="e", seed=0)) == []
    no_requirement = Trajectory(env_id="e", seed=0, turns=[Turn("o", "a", info={"document": "x", "metrics": {}})])
    assert length(no_requirement) == [0.0]


def test_length_on_longwrite_agrees_with_the_env_and_ignores_the_thinking():
    env = gym.make("longhorizon/LongWrite-v0", mode="single", horizon=2, paragraph_words=40).unwrapped
    obs, _ = env.reset(seed=5)
    text = env.oracle_action()
    action = f"<think>{'I will plan this text carefully. ' * 30}</think>\n<answer>{text}</answer>"
    _, _, _, _, info = env.step(action)
    traj = Trajectory(env_id="longhorizon/LongWrite-v0", seed=5, turns=[Turn(obs, action, info=info)])
    assert length(traj) == [pytest.approx(1.0, abs=1e-12)]  # the oracle writes exactly l words
    assert info["metrics"]["length_score"] < 100  # the env itself counts the thinking as text
    assert think_format(traj) == [1.0]


# -- advantage averaging: each component's own GRPO advantage, averaged ------------------------------------------
def test_component_advantages_by_hand():
    components = torch.tensor([
        [[1.0, 0.0], [1.0, 2.0], [2.0, 0.0], [1.0, 1.0]],   # totals 1, 3 | 2, 2
        [[0.0, 0.0], [0.0, 0.0], [5.0, 0.0], [0.0, 1.0]],   # totals 0, 0 | 5, 1
    ])  # (C=2, N=4, K=2)
    turn_mask = torch.tensor([[1, 0], [1, 1], [1, 1], [1, 1]])
    groups = torch.tensor([7, 7, 3, 3])
    out, metrics = component_advantages(components, turn_mask, groups)
    eps = 1e-6
    z0 = [-1 / (math.sqrt(2) + eps), 1 / (math.sqrt(2) + eps), 0.0, 0.0]   # group 3 is flat: 0
    z1 = [0.0, 0.0, 2 / (2 * math.sqrt(2) + eps), -2 / (2 * math.sqrt(2) + eps)]
    last = [0, 1, 1, 1]  # episode 0 has one turn
    expected = torch.zeros(2, 4, 2)
    for n in range(4):
        expected[0, n, last[n]], expected[1, n, last[n]] = z0[n], z1[n]
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert metrics["component_frac_zero_std"] == 0.5  # one flat group of two for each component


def test_component_advantages_match_a_plain_loop():
    gen = torch.Generator().manual_seed(0)
    components = torch.randn(3, 9, 4, generator=gen)
    turn_mask = (torch.rand(9, 4, generator=gen) < 0.8).long()
    turn_mask[:, 0] = 1
    groups = torch.tensor([0, 0, 0, 5, 5, 2, 2, 2, 2])
    out, _ = component_advantages(components, turn_mask, groups)
    for c in range(3):
        totals = [(components[c, n] * turn_mask[n]).sum().item() for n in range(9)]
        for n in range(9):
            peers = [totals[m] for m in range(9) if groups[m] == groups[n]]
            mean = sum(peers) / len(peers)
            std = math.sqrt(sum((p - mean) ** 2 for p in peers) / (len(peers) - 1))
            k_last = max(k for k in range(4) if turn_mask[n, k])
            row = [0.0] * 4
            row[k_last] = (totals[n] - mean) / (std + 1e-6)
            torch.testing.assert_close(out[c, n], torch.tensor(row), atol=1e-5, rtol=0)


def _episode(group: int, action: str, document_words: int) -> Trajectory:
    info = {"document": "word " * document_words, "metrics": {"required_words": 100.0}, "correct": group == 0}
    return Trajectory(env_id="e", seed=group, group_id=group, turns=[Turn("o", action, info=info)])


def test_the_mixed_advantage_is_the_mean_of_the_components_own_advantages():
    good, bad = "<think>p</think><answer>A text.</answer>", "no format"
    trajs = [_episode(0, good, 100), _episode(0, bad, 50),    # group 0: length 1 vs 0.5, format 1 vs 0
             _episode(1, bad, 100), _episode(1, good, 100)]   # group 1: length equal, format 0 vs 1
    batch = SimpleNamespace(turn_rewards=torch.zeros(4, 1), turn_mask=torch.ones(4, 1), group_ids=torch.tensor([0, 0, 1, 1]))
    third = 1 / 3
    cfg = load_config(None, ["algorithm.rewards.normalize=group", "algorithm.rewards.components=[{name: length, "
                             f"weight: {third}}}, {{name: think_format, weight: {third}}}, {{name: correct, weight: {third}}}]"]).algorithm.rewards
    rewards, spans, metrics = shaped_turn_rewards(trajs, batch, cfg)
    adv, _ = ADVANTAGE_ESTIMATORS["dr_grpo"](rewards.sum(1), batch.group_ids)
    z = SQRT_HALF  # a group of two that differs standardises to +-1/sqrt(2) (unbiased std)
    # A_i = (1/3) sum_k z_i^k: group 0: length +z/-z, format +z/-z, correct flat; group 1: only format -z/+z
    torch.testing.assert_close(adv, torch.tensor([2 * z / 3, -2 * z / 3, -z / 3, z / 3]), atol=1e-5, rtol=0)
    assert spans is None
    assert metrics["rewards/return_length"] == pytest.approx(third * (1 + 0.5 + 1 + 1) / 4)  # logged raw
    assert metrics["rewards/return_think_format"] == pytest.approx(third * 0.5)
    raw, _, _ = shaped_turn_rewards(trajs, batch, load_config(None, [
        "algorithm.rewards.components=[{name: length}, {name: think_format}]"]).algorithm.rewards)
    torch.testing.assert_close(raw[:, 0], torch.tensor([2.0, 0.5, 1.0, 2.0]))  # normalize: none mixes raw scores


def test_normalised_components_refuse_span_rewards():
    with pytest.raises(Exception, match="normalize: group"):
        load_config(None, ["algorithm.rewards.normalize=group",
                           "algorithm.rewards.components=[{name: length}, {name: repeated_sentence}]"])


# -- the recipe ----------------------------------------------------------------------------------------------------
def test_the_longwriter_zero_recipe_loads():
    cfg = load_config("recipes/longwriter-zero.yaml")
    rewards = cfg.algorithm.rewards
    assert cfg.env_id == "longhorizon/LongWrite-v0" and cfg.env_kwargs["mode"] == "single"
    assert [c.name for c in rewards.components] == ["length", "judge", "think_format"]
    assert rewards.normalize == "group" and sum(c.weight for c in rewards.components) == pytest.approx(1.0)
    assert all(c.weight == pytest.approx(1 / 3) for c in rewards.components)
    assert cfg.algorithm.name == "grpo" and cfg.algorithm.credit == "outcome" and not cfg.algorithm.scale_by_std
    assert "</answer>" in cfg.stop and cfg.wrappers[0]["name"] == "feedback_marker"
    assert length_score(100, 100) == 100.0


def test_longwriter_zero_trains_two_tiny_steps_logging_each_reward(tmp_path):
    cfg = load_config("recipes/longwriter-zero.yaml", [
        "model=tiny-random", "autocast_bf16=false", "steps=2", "tasks_per_step=1", "algorithm.group_size=3",
        "max_new_tokens=12", "micro_batch_size=3", "eval.episodes=0", "checkpoint_every=0", "save_final_model=false",
        "env_kwargs={mode: single, horizon: 1, paragraph_words: 40, n_constraints: 0}", f"run_dir={tmp_path / 'run'}",
        "algorithm.rewards.components=[{name: length, weight: 0.5}, {name: judge, model: tiny-random, "
        "max_new_tokens: 2, weight: 0.25}, {name: think_format, weight: 0.25}]"])
    result = train(cfg)
    steps = [r for r in read_records(result.run_dir) if "charts/reward_mean" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for key in ("rewards/return_length", "rewards/return_judge", "rewards/return_think_format",
                "rewards/component_frac_zero_std", "rewards/judge_parsed_frac"):
        assert key in steps[-1], key
    assert steps[-1]["rewards/return_think_format"] == 0.0  # a random model writes no <think> block
