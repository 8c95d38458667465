"""Compose-v0 (R-HORIZON composition): composition text, chained answers, parsing and scoring."""

from __future__ import annotations

import re

import numpy as np
import pytest

from longhorizon.envs.compose.env import (
    TEMPLATES,
    ComposeEnv,
    Problem,
    composed_prompt,
    format_answers,
    last_boxed,
    link_text,
    parse_final_answers,
    parse_int,
    problem_texts,
)

LINK_RE = re.compile(r"\[variable(\d+)\] = \[answer(\d+)\] ([-+]) (\d+)\. ")


def play(env: ComposeEnv, actions: list[str]) -> list[tuple]:
    return [env.step(a) for a in actions]


# -- composition text (the paper's format) ---------------------------------------------------------
@pytest.mark.parametrize(
    "previous,expected",
    [(11, "- 6"), (2, "+ 3"), (5, "+ 0"), (0, "+ 5")],  # c_k = a_{k-1} - v_k with v_k = 5
)
def test_link_text_sign_of_c(previous, expected):
    problem = Problem("Find {v} + 1.", value=5, answer=6)
    assert link_text(2, previous, problem) == (
        f"Using the result [answer1] from the previous calculation, [variable2] = [answer1] {expected}. "
        "Find [variable2] + 1."
    )


def test_composed_prompt_matches_the_paper_layout():
    problems = [Problem("What is {v} times 2?", 3, 6), Problem("Add {v} and 4.", 10, 14)]
    assert composed_prompt(problems) == (
        "Problem 1: What is 3 times 2?\n\n"
        "Problem 2: Using the result [answer1] from the previous calculation, [variable2] = [answer1] + 4. "
        "Add [variable2] and 4.\n\n"
        "Note: In this problem set:\n"
        "- [variablek] represents the calculated variable needed to solve problem k.\n"
        "- [answerk] represents the answer to problem k.\n\n"
        "Solve all problems step by step and provide the answers for all problems in the following format:\n\n"
        "### Final Answers\n\n"
        "Problem 1: \\boxed{[answer1]}\n\n"
        "Problem 2: \\boxed{[answer2]}\n"
    )


@pytest.mark.parametrize("seed", range(20))
def test_each_link_gives_back_the_original_variable(seed):
    env = ComposeEnv(n_problems=8)
    env.reset(seed=seed)
    for k, text in enumerate(problem_texts(env.problems)[1:], start=2):
        var, ans, op, c = LINK_RE.search(text).groups()
        assert (int(var), int(ans)) == (k, k - 1)
        value = env.answers[k - 2] + (int(c) if op == "+" else -int(c))
        assert value == env.problems[k - 1].value
        assert f"[variable{k}]" in text.split(". ", 1)[1] and "{v}" not in text


# -- templates: the stored answer equals the one recomputed from the text ------------------------------
RECOMPUTE = {
    r"notebooks for \$(\d+) each and pens for \$(\d+) each\. \w+ buys (\d+) notebooks and (\d+) pens":
        lambda p, q, v, m: v * p + m * q,
    r"prints (\d+) pages per minute\. How many pages does it print in (\d+) minutes": lambda v, t: v * t,
    r"rides at (\d+) kilometres per hour for (\d+) hours and then at (\d+) kilometres per hour for (\d+) hours":
        lambda v, h, s, g: v * h + s * g,
    r"is (\d+) years old, and \w+'s younger brother is (\d+) years younger\. In (\d+) years":
        lambda v, d, y: v + (v - d) + 2 * y,
    r"garden is (\d+) metres long and (\d+) metres wide\. A square patio with sides of (\d+) metres":
        lambda v, w, s: v * w - s * s,
    r"(\d+) marbles are shared equally among (\d+) children": lambda v, m: v % m,
    r"first term of an arithmetic sequence is (\d+) and the common difference is (\d+)\. .* first (\d+) terms":
        lambda a, d, n: sum(a + d * i for i in range(n)),
    r"saves \$(\d+) every week\. After (\d+) weeks, \w+ spends \$(\d+)": lambda v, w, s: v * w - s,
    r"bakes (\d+) trays of (\d+) cookies each and packs all the cookies into boxes of (\d+)":
        lambda v, b, c: v * b // c,
    r"has (\d+) rows of (\d+) seats\. At tonight's show, (\d+) seats are empty": lambda v, s, e: v * s - e,
    r"How many multiples of (\d+) are there from 1 to (\d+)":
        lambda m, v: sum(1 for i in range(1, v + 1) if i % m == 0),
}


def recompute(text: str) -> int:
    for pattern, formula in RECOMPUTE.items():
        match = re.search(pattern, text)
        if match:
            return formula(*(int(g) for g in match.groups()))
    raise AssertionError(f"no recompute rule for {text!r}")


def test_every_template_answer_matches_its_text():
    assert len(RECOMPUTE) == len(TEMPLATES)
    rng = np.random.default_rng(0)
    for template in TEMPLATES:
        for _ in range(50):
            problem = template(rng)
            assert problem.text.count("{v}") == 1
            assert recompute(problem.render()) == problem.answer


def test_answers_stay_bounded_and_non_negative():
    env = ComposeEnv(n_problems=32)
    for seed in range(30):
        env.reset(seed=seed)
        assert all(0 <= a < 3000 for a in env.answers)


# -- parsing ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content,value",
    [("42", 42), (" -7 ", -7), ("$12$", 12), ("1,440", 1440), ("1{,}440", 1440), ("+3", 3),
     ("12.5", None), ("1,44", None), ("x", None), ("", None), ("\\frac{1}{2}", None), ("1e3", None)],
)
def test_parse_int(content, value):
    assert parse_int(content) == value


def test_last_boxed_edge_cases():
    assert last_boxed("first \\boxed{3} then \\boxed{5}") == (5, None)
    assert last_boxed("\\boxed{7} and an unclosed \\boxed{8") == (7, None)
    assert last_boxed("no answer")[0] is None
    value, error = last_boxed("\\boxed{\\frac{1}{2}}")
    assert value is None and "not an integer" in error


def test_parse_final_answers_edge_cases():
    text = "Problem 1: \\boxed{1} (draft)\n### Final Answers\n**Problem 1:** \\boxed{2}\n\nProblem 2:\\boxed{ 3 }"
    assert parse_final_answers(text, 2) == ([2, 3], None)
    answers, error = parse_final_answers("### Final Answers\nProblem 2: \\boxed{x}", 3)
    assert answers == [None, None, None] and "problem(s) 1, 3" in error and "not an integer" in error
    assert parse_final_answers("Problem 1: 5", 1)[1] == "no 'Problem k: \\boxed{...}' answers found"
    assert parse_final_answers("Problem 9: \\boxed{5}", 2)[0] == [None, None]


# -- episodes -----------------------------------------------------------------------------------------
def test_single_mode_is_all_or_nothing():
    env = ComposeEnv(n_problems=4)
    env.reset(seed=5)
    _, reward, terminated, _, info = env.step(env.oracle_action())
    assert (reward, terminated, info["success"], info["metrics"]["problem_accuracy"]) == (1.0, True, True, 1.0)
    env.reset(seed=5)
    wrong = list(env.answers)
    wrong[2] += 1
    _, reward, terminated, _, info = env.step(format_answers(wrong))
    assert (reward, terminated, info["success"], info["correct"]) == (0.0, True, False, False)
    assert info["metrics"] == {"problem_accuracy": 0.75, "all_correct": 0.0, "n_correct": 3.0}
    assert info["per_problem_correct"] == [True, True, False, True]


def test_single_mode_reports_unreadable_answers():
    env = ComposeEnv(n_problems=2)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step("I think it is 12.")
    assert reward == 0.0 and terminated and info["error"] in obs


@pytest.mark.parametrize("n", [1, 5, 32])
def test_multi_mode_episode_length_is_n(n):
    env = ComposeEnv(n_problems=n, mode="multi")
    env.reset(seed=1)
    steps, terminated = 0, False
    while not terminated:
        _, reward, terminated, _, info = env.step(env.oracle_action())
        steps += 1
        assert reward == 1.0 and info["correct"]
    assert steps == n and info["success"] and info["metrics"]["n_correct"] == n


def test_multi_mode_rewards_each_correct_problem():
    env = ComposeEnv(n_problems=3, mode="multi")
    obs, _ = env.reset(seed=2)
    assert "Problem 1: " in obs and "[variable" not in obs.split("Problem 1: ")[1]
    first = env.step(env.oracle_action())
    assert first[0].startswith("Problem 2: Using the result [answer1]")
    second = env.step("so \\boxed{x}")
    assert second[1] == 0.0 and not second[4]["correct"] and second[4]["error"] in second[0]
    third = env.step(env.oracle_action())
    assert [r[1] for r in (first, second, third)] == [1.0, 0.0, 1.0]
    assert third[2] and third[4]["success"] is False
    assert third[4]["metrics"] == pytest.approx({"problem_accuracy": 2 / 3, "all_correct": 0.0, "n_correct": 2.0})


def test_wrong_action_is_well_formed_but_wrong():
    rng = np.random.default_rng(0)
    for mode in ("single", "multi"):
        env = ComposeEnv(n_problems=3, mode=mode)
        env.reset(seed=4)
        _, reward, _, _, info = env.step(env.wrong_action(rng))
        assert reward == 0.0 and "error" not in info and not info["correct"]


@pytest.mark.parametrize(
    "kwargs,knob",
    [({"n_problems": 0}, "n_problems"), ({"n_problems": 33}, "n_problems"), ({"n_problems": 2.0}, "n_problems"),
     ({"n_problems": True}, "n_problems"), ({"mode": "batch"}, "mode")],
)
def test_bad_knobs_raise(kwargs, knob):
    with pytest.raises(ValueError, match=knob):
        ComposeEnv(**kwargs)


def test_single_prompt_grows_with_n():
    lengths = []
    for n in (1, 4, 16):
        env = ComposeEnv(n_problems=n)
        obs, _ = env.reset(seed=0)
        lengths.append(len(obs))
        assert obs.count("\\boxed{[answer") == n and len(env.oracle_action().split("\\boxed")) == n + 1
    assert lengths[0] < lengths[1] < lengths[2]
