"""LongWrite-v0: LongBench-Write's S_l and word count, each constraint verifier, the plan format, the env
(determinism, the oracle scores 1, rewards by hand, hostile input) and its composition with bounded contexts."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import longhorizon.envs  # noqa: F401  (registers the envs)
from longhorizon.context.base import EpisodeView
from longhorizon.context.workspace import workspace_text
from longhorizon.envs.longwrite import generator
from longhorizon.envs.longwrite.constraints import (Closing, Exclude, Heading, Include, ParagraphWords, Paragraphs,
                                                    from_dict)
from longhorizon.envs.longwrite.env import LongWriteEnv
from longhorizon.envs.longwrite.oracle import ADJECTIVES, DETERMINERS, NOUNS, PREPOSITIONS, VERBS
from longhorizon.envs.longwrite.plan import even_plan, parse_plan
from longhorizon.envs.longwrite.text import count_words, length_score, paragraphs
from longhorizon.feedback.checklist import checklist_reward
from longhorizon.types import Trajectory, Turn

ENV_ID = "longhorizon/LongWrite-v0"


# -- S_l (LongBench-Write, evaluation/eval_length.py) ------------------------------------------------------
@pytest.mark.parametrize("required,output,expected", [
    (100, 100, 100.0),                        # exact length
    (100, 400, 0.0),                          # over-length reaches 0 at 4l
    (100, 1000, 0.0),                         # ... and stays 0 beyond (max(0, .))
    (100, 200, 100 * (1 - 1 / 3)),            # 2l: 66.666...
    (100, 101, 100 * (1 - 0.01 / 3)),         # just over
    (300, 100, 0.0),                          # under-length reaches 0 at l/3
    (200, 100, 50.0),                         # l/2
    (100, 99, 100 * (1 - (100 / 99 - 1) / 2)),  # just under
    (100, 0, 0.0),                            # empty output: the code divides by zero; we give the limit, 0
])
def test_length_score_boundaries(required, output, expected):
    assert length_score(required, output) == pytest.approx(expected, abs=1e-6)


def test_length_score_is_continuous_at_the_required_length_and_refuses_no_requirement():
    assert length_score(1000, 1000) == 100.0
    assert abs(length_score(1000, 1001) - 100) < 0.04 and abs(length_score(1000, 999) - 100) < 0.06
    with pytest.raises(ValueError, match="required length"):
        length_score(0, 10)


def test_count_words_is_longbench_writes_unit():
    assert count_words("Hello, world! 你好") == 4           # 2 English words + 2 Chinese characters
    assert count_words("don't stop") == 3                   # \b[a-zA-Z]+\b: don, t, stop
    assert count_words("2024 abc123 café") == 0             # digits and letters glued to digits or accents are no word
    assert count_words("") == 0 and count_words("x" * 100_000) == 1


def test_paragraphs_skip_headings_and_empty_blocks():
    text = "## Intro\nbody one\n\nbody two\n \n\n## Only a heading\n\n 42 \n"
    assert paragraphs(text) == ("body one", "body two")


# -- constraint verifiers on hand-made texts ----------------------------------------------------------------
@pytest.mark.parametrize("constraint,text,score", [
    (Include("lantern"), "The Lantern glows.", 1.0),
    (Include("lantern"), "Two lanterns glow.", 0.0),          # whole words only
    (Exclude("delve"), "We never go deep.", 1.0),
    (Exclude("delve"), "Let us DELVE in.", 0.0),
    (Heading("Why It Matters"), "## Why It Matters\nBecause.", 1.0),
    (Heading("Why It Matters"), "Intro.\n**Why it matters:**\nBecause.", 1.0),
    (Heading("Why It Matters"), "Here is why it matters to us.", 0.0),
    (Paragraphs(2), "## H\n\na b\n\nc d", 1.0),
    (Paragraphs(2), "a b\n\nc d\n\ne", 0.0),
    (Paragraphs(1), "a b\nc d", 1.0),                          # a single newline does not split
    (ParagraphWords(3), "one two three\n\nfour five", 1.0),
    (ParagraphWords(3), "## Four words in heading\none two three four", 0.0),
    (Closing("The end is near."), "Text. The end  is\nNEAR.  \n", 1.0),
    (Closing("The end is near."), "The end is near. More.", 0.0),
])
def test_each_constraint_verifier(constraint, text, score):
    verdict = constraint.verify(text)
    assert verdict.score == score and verdict.reason
    assert from_dict(constraint.to_dict()) == constraint


@pytest.mark.parametrize("constraint", [Include("a"), Exclude("delve"), Heading("X"), Paragraphs(0),
                                        ParagraphWords(10), Closing("Bye.")])
def test_an_empty_text_meets_no_constraint(constraint):
    for text in ("", "  \n\n ", "123 ..."):
        assert constraint.verify(text).score == 0.0 and constraint.verify(text).reason == "the text is empty"


def test_word_lists_never_contain_an_excluded_word():
    excluded = set(generator.EXCLUDE_WORDS)
    texts = (generator.INCLUDE_WORDS + generator.HEADINGS + generator.CLOSINGS + DETERMINERS + ADJECTIVES + NOUNS
             + VERBS + PREPOSITIONS)
    assert all(Exclude(w).check(t).score == 1.0 for w in excluded for t in texts)
    assert all(w.isalpha() and w.isascii() for w in texts if " " not in w)


# -- the plan ---------------------------------------------------------------------------------------------
def test_plan_parses_the_agentwrite_format_with_a_preamble_and_dashes():
    text = ("Here is my plan:\n\nParagraph 1 - Main Point: the history - Word Count: 400 words\n"
            "paragraph 2 – main point: today, and why it matters – word count: 250\n")
    steps, error = parse_plan(text, 2)
    assert error is None and [(s.index, s.point, s.words) for s in steps] == [
        (1, "the history", 400), (2, "today, and why it matters", 250)]


@pytest.mark.parametrize("text,reason", [
    ("Paragraph 1 - Main Point: everything", "does not follow the format"),
    ("Paragraph 1 - Main Point: a - Word Count: 10 words\nParagraph 3 - Main Point: b - Word Count: 10 words",
     "1 to 2 in order (found: 1, 3)"),
    ("Paragraph 1 - Main Point:  - Word Count: 10 words\nParagraph 2 - Main Point: b - Word Count: 10",
     "no main point"),
    ("Paragraph 1 - Main Point: a - Word Count: 0 words\nParagraph 2 - Main Point: b - Word Count: 1",
     "asks for 0 words"),
    ("", "found: none"),
    ("Paragraph " + "x" * 100_000, "does not follow the format"),
])
def test_a_malformed_plan_says_why(text, reason):
    steps, error = parse_plan(text, 2)
    assert steps is None and reason in error


def test_even_plan_sums_to_the_length():
    assert [s.words for s in even_plan(103, 4)] == [26, 26, 26, 25]


# -- the env ----------------------------------------------------------------------------------------------
def play(env: gym.Env, actions) -> tuple[list[str], list[float], dict]:
    observations, rewards = [], []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        assert not truncated and np.isfinite(reward)
        if terminated:
            return observations, rewards, info
    raise AssertionError("the episode did not end")


def oracle_episode(env: gym.Env, seed: int) -> tuple[str, list[str], list[float], dict]:
    first, _ = env.reset(seed=seed)
    actions = iter(lambda: env.unwrapped.oracle_action(), None)
    return (first, *play(env, actions))


@pytest.mark.parametrize("level", list(LongWriteEnv.LEVELS))
def test_the_oracle_scores_one_with_exact_length(level):
    env = gym.make(ENV_ID, **LongWriteEnv.LEVELS[level])
    for seed in range(10):
        _, _, rewards, info = oracle_episode(env, seed)
        assert sum(rewards) == pytest.approx(1.0, abs=1e-9) and info["success"]
        assert info["metrics"]["words"] == info["metrics"]["required_words"]
        assert info["reward_components"] == {"length": 1.0, "checklist": 1.0, "format": 1.0}
        assert all(row["score"] == 1.0 for row in info["checklist"])


def test_the_same_seed_gives_the_same_episode():
    a, b = gym.make(ENV_ID), gym.make(ENV_ID)
    assert oracle_episode(a, 11) == oracle_episode(b, 11)
    assert a.reset(seed=1)[0] != a.reset(seed=2)[0]


def test_lengths_reach_tens_of_thousands_of_words():
    env = gym.make(ENV_ID, horizon=32, paragraph_words=1000)
    env.reset(seed=0)
    assert 25_000 <= env.unwrapped.request.words <= 39_000


def test_rewards_by_hand():
    """Seed 5 asks for l = 100 words in 2 paragraphs, no other constraint. Plan 40 + 40 (f = S_l(100, 80)/100
    = 0.875), paragraph 1: 40 words (f = 1), paragraph 2: 20 of 40 (f = 0.5); the text has 60 words:
    S_l(100, 60) = 100 (1 - (100/60 - 1)/2) = 66.67; checklist 1/1. Total 0.2 x 2.375/3 + 0.4 x 2/3 + 0.4."""
    env = gym.make(ENV_ID, horizon=2, paragraph_words=50, n_constraints=0)
    env.reset(seed=5)
    assert env.unwrapped.request.words == 100
    plan = "Paragraph 1 - Main Point: a - Word Count: 40 words\nParagraph 2 - Main Point: b - Word Count: 40 words"
    _, rewards, info = play(env, [plan, "alpha " * 40, "beta " * 20])
    assert rewards == pytest.approx([0.2 * 0.875 / 3, 0.2 / 3, 0.2 * 0.5 / 3 + 0.4 * 2 / 3 + 0.4], abs=1e-6)
    assert sum(rewards) == pytest.approx(0.825, abs=1e-6) and info["success"] is False
    assert info["reward_components"] == pytest.approx({"length": 2 / 3, "checklist": 1.0, "format": 2.375 / 3},
                                                      abs=1e-6)


def test_weights_are_normalised_and_must_not_all_be_zero():
    env = gym.make(ENV_ID, horizon=1, n_constraints=0, length_weight=1.0, checklist_weight=0.0, format_weight=0.0)
    env.reset(seed=0)
    words = env.unwrapped.request.words
    plan = f"Paragraph 1 - Main Point: all - Word Count: {words} words"
    _, rewards, _ = play(env, [plan, "word " * (2 * words)])
    assert rewards == pytest.approx([0.0, 1 - 1 / 3], abs=1e-6)  # S_l(l, 2l) / 100
    with pytest.raises(ValueError, match="must be positive"):
        gym.make(ENV_ID, length_weight=0.0, checklist_weight=0.0, format_weight=0.0)


def test_a_malformed_plan_is_replaced_by_an_even_plan_and_the_episode_goes_on():
    env = gym.make(ENV_ID, horizon=3)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step("Paragraph 1: no word counts here")
    assert not terminated and reward == 0.0 and info["format"] == 0.0 and info["correct"] is False
    assert info["error"] in obs and "Write to this plan instead" in obs
    assert [s.words for s in env.unwrapped.plan] == [s.words for s in even_plan(env.unwrapped.request.words, 3)]
    _, rewards, info = play(env, [env.unwrapped.oracle_action() for _ in range(1)] + ["x"] * 2)
    assert len(env.unwrapped.format_scores) == 4 and 0.0 <= sum(rewards) <= 1.0


@pytest.mark.parametrize("mode", ["agentwrite", "single"])
@pytest.mark.parametrize("action", ["", "x" * 100_000, "word " * 20_000, "\x00\ufeff🙂" * 1000,
                                    "Paragraph 1 - Main Point: a - Word Count: 9999999 words"])
def test_hostile_text_gets_a_defined_score_and_never_raises(mode, action):
    env = gym.make(ENV_ID, mode=mode, horizon=2)
    env.reset(seed=0)
    _, rewards, info = play(env, [action] * 3)
    assert 0.0 <= sum(rewards) <= 1.0
    assert set(info["reward_components"]) == {"length", "checklist", "format"}
    assert all(np.isfinite(v) for v in info["metrics"].values())


def test_a_paragraph_that_copies_a_plan_line_earns_no_progress():
    env = gym.make(ENV_ID, horizon=1, n_constraints=0)
    env.reset(seed=0)
    env.step(env.unwrapped.oracle_action())
    _, _, _, _, info = env.step("Paragraph 1 - Main Point: part 1 of the text - Word Count: 30 words\nMore words.")
    assert info["format"] == 0.0 and "copies a plan line" in info["error"]


def test_empty_and_repeated_paragraphs_earn_no_progress():
    env = gym.make(ENV_ID, horizon=3, n_constraints=0)
    env.reset(seed=0)
    env.step(env.unwrapped.oracle_action())
    paragraph = env.unwrapped.oracle_action()
    _, _, _, _, first = env.step(paragraph)
    obs, _, _, _, again = env.step(paragraph)
    assert first["format"] == 1.0 and again["format"] == 0.0 and "repeats an earlier paragraph" in again["error"]
    obs, _, _, _, empty = env.step("   ")
    assert empty["format"] == 0.0 and "is empty" in obs and empty["metrics"]["format"] == pytest.approx(2 / 4)


def test_single_mode_scores_the_whole_text_in_one_turn():
    env = gym.make(ENV_ID, mode="single", horizon=2, n_constraints=0)
    env.reset(seed=0)
    _, rewards, info = play(env, ["same words here\n\nsame words here"])
    assert info["format"] == 0.5 and info["checklist"][0]["score"] == 1.0  # 2 paragraphs, one distinct
    assert info["correct"] is info["success"] is False and len(rewards) == 1


def test_each_writing_observation_is_self_contained_for_bounded_contexts():
    """workspace / markovian show only the request, the agent's own state and the latest observation: each
    writing prompt restates the paragraph's main point, its planned words and the words so far."""
    env = gym.make(ENV_ID, horizon=3)
    first, _ = env.reset(seed=4)
    turns, obs = [], first
    for k in range(3):
        action = env.unwrapped.oracle_action()
        turns.append(Turn(observation=obs, action=action))
        obs, *_ = env.step(action)
        step = env.unwrapped.plan[k]
        assert f"paragraph {k + 1} of 3 now" in obs and f"{step.point} ({step.words} words)" in obs
        assert f"{env.unwrapped.words_so_far} of the {env.unwrapped.request.words} words" in obs
        text = workspace_text(EpisodeView(turns=list(turns), observation=obs))
        assert text.startswith(f"Question:\n{first}") and f"{step.point} ({step.words} words)" in text


def test_the_checklist_hook_rescored_from_info_agrees_with_the_env():
    env = gym.make(ENV_ID, horizon=2, n_constraints=6)
    env.reset(seed=3)
    plan = "Paragraph 1 - Main Point: a - Word Count: 100\nParagraph 2 - Main Point: b - Word Count: 100"
    _, _, info = play(env, [plan, "Some words about a lantern.", "## Background\nAnd more words."])
    r, meta = checklist_reward(info, combine="product")
    assert meta["metrics"]["checklist/r_con"] == pytest.approx(info["reward_components"]["checklist"], abs=1e-12)
    assert meta["metrics"]["checklist/r_len"] == pytest.approx(info["reward_components"]["length"], abs=1e-12)
    assert r == pytest.approx(info["reward_components"]["checklist"] * info["reward_components"]["length"])
    assert [row["score"] for row in meta["items"]] == [row["score"] for row in info["checklist"]]


def test_only_the_plan_turn_has_a_response_prefix():
    env = gym.make(ENV_ID, horizon=2)
    env.reset(seed=0)
    spec = env.unwrapped.agent_spec
    assert spec.response_prefix == "Paragraph 1 - Main Point:" and env.unwrapped.oracle_action().startswith(
        spec.response_prefix)
    env.step(env.unwrapped.oracle_action())
    assert env.unwrapped.agent_spec.response_prefix == ""
    single = gym.make(ENV_ID, mode="single")
    single.reset(seed=0)
    assert single.unwrapped.agent_spec.response_prefix == ""


RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "eval" / "longwrite.yaml"


def test_the_eval_recipe_with_the_oracle_scores_one(tmp_path):
    from longhorizon.eval import load_eval_config
    from longhorizon.eval.evaluate import run

    metrics, _ = run(load_eval_config(RECIPE, ["model=oracle", "episodes=2", f"run_dir={tmp_path / 'o'}"]))
    assert [(r["horizon"], r["success_rate"], r["mean_reward"]) for r in metrics["horizons"]] == [
        (1, 1.0, pytest.approx(1.0)), (2, 1.0, pytest.approx(1.0))]


@pytest.mark.parametrize("context", ["workspace", "markovian"])
def test_a_model_writes_through_bounded_contexts(tmp_path, context):
    from longhorizon.eval import load_eval_config
    from longhorizon.eval.evaluate import run

    cfg = load_eval_config(RECIPE, ["model=tiny-random", "dtype=float32", "horizons=[2]", "episodes=1",
                                    "max_new_tokens=4", f"context={context}", f"run_dir={tmp_path / context}"])
    metrics, _ = run(cfg)
    trajectory = Trajectory.from_dict(json.loads((tmp_path / context / "trajectories.jsonl").read_text()))
    assert len(trajectory.turns) == 3 and 0.0 <= metrics["horizons"][0]["mean_reward"] <= 1.0
    assert set(trajectory.metadata["metrics"]) >= {"length_score", "checklist", "format"}
