"""LongProc family: hand-worked metric values, parsers, generators and the output-length knob."""

from __future__ import annotations

import html

import numpy as np
import pytest

from longhorizon.envs.longproc.common import LEVEL_TOKENS, estimate_tokens, last_tagged_block, prefix_fraction
from longhorizon.envs.longproc.countdown import (
    CountdownEnv,
    check_equation,
    parse_solution,
    random_puzzle,
    search_trace,
    verify_solution,
)
from longhorizon.envs.longproc.html import HtmlToTsvEnv, format_tsv, normalize_row, parse_tsv, row_f1
from longhorizon.envs.longproc.path import PathTraversalEnv, parse_route, score_route
from longhorizon.envs.longproc.tom import (
    TomTrackingEnv,
    World,
    normalize_tom,
    parse_trace,
    score_trace,
    trace_line,
    update_belief,
)

ENVS = [HtmlToTsvEnv, PathTraversalEnv, TomTrackingEnv, CountdownEnv]


# -- shared: the level knob -----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ENVS)
def test_level_sets_the_oracle_output_length(cls):
    means = []
    for level, budget in LEVEL_TOKENS.items():
        env = cls(level=level)
        tokens = []
        for seed in range(8):
            _, info = env.reset(seed=seed)
            tokens.append(estimate_tokens(env.oracle_action()))
            assert info["reference_tokens"] == tokens[-1]
        assert 0.4 * budget <= min(tokens) and max(tokens) <= budget, (level, tokens)
        means.append(np.mean(tokens))
    assert means[0] * 3 < means[1] and means[1] * 3 < means[2]


@pytest.mark.parametrize("cls", ENVS)
def test_bad_level_raises(cls):
    with pytest.raises(ValueError, match="level"):
        cls(level="4k")
    assert set(cls.LEVELS) == set(LEVEL_TOKENS)


@pytest.mark.parametrize("cls", ENVS)
def test_single_turn_and_step_after_end_raises(cls):
    env = cls()
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(env.oracle_action())
    assert (reward, terminated, truncated, info["success"], info["correct"]) == (1.0, True, False, True, True)
    with pytest.raises(RuntimeError):
        env.step("again")


def test_last_tagged_block_and_prefix_fraction():
    assert last_tagged_block("<R>a</R> <R>b</R>", "R") == "b"
    assert last_tagged_block("<R>a</R> <R>unclosed", "R") == "a"
    assert last_tagged_block("</R> <R>", "R") is None
    assert prefix_fraction(["a", "b", "x", "d"], ["a", "b", "c", "d", "e"]) == 0.4
    assert prefix_fraction(["a"], ["a", "b"]) == 0.5


# -- HtmlToTsv ------------------------------------------------------------------------------------------
REF = [("Ann", "1"), ("Bob", "2"), ("Cy", "3"), ("Di", "4"), ("Ed", "5")]


def test_row_f1_one_missing_one_extra():
    predicted = REF[:4] + [("Zed", "9")]  # Ed missing, Zed extra
    assert row_f1(predicted, REF) == pytest.approx({"f1": 0.8, "precision": 0.8, "recall": 0.8}, abs=1e-9)


def test_row_f1_hand_worked_values():
    assert row_f1(REF[:2], REF) == pytest.approx({"precision": 1.0, "recall": 0.4, "f1": 2 * 0.4 / 1.4}, abs=1e-9)
    assert row_f1([REF[0], REF[0], REF[1]], REF[:2]) == pytest.approx(  # a duplicate counts once
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8}, abs=1e-9
    )
    assert row_f1([("Ann", "2")], REF) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    assert row_f1([], REF)["f1"] == 0.0


def test_parse_tsv_normalises_whitespace_and_checks_header():
    header = ("name", "n")
    text = "Here it is:\n```tsv\nname\tn\n  Ann \t 1\n\nBob  Lee\t2\n```\nDone."
    assert parse_tsv(text, header) == ([("Ann", "1"), ("Bob Lee", "2")], None)
    assert parse_tsv("name\tn\nAnn\t1", header)[0] == [("Ann", "1")]  # no fence: the whole text, as in the paper
    assert parse_tsv("```tsv\nname\tn\nA\t1\n```\n```tsv\nname\tn\nB\t2\n```", header)[0] == [("B", "2")]
    assert parse_tsv("```tsv\nname\tn\nA\t1", header)[0] == [("A", "1")]  # unclosed fence
    rows, error = parse_tsv("```tsv\nName,n\nAnn\t1\n```", header)
    assert rows is None and "header" in error
    assert parse_tsv("", header)[1].startswith("no TSV table")
    assert normalize_row("a\t\tb ") == ("a", "", "b")


def test_html_env_scores_a_missing_and_an_extra_row():
    env = HtmlToTsvEnv()
    env.reset(seed=3)
    rows = env.rows[:-1] + [tuple("x" for _ in env.header)]
    _, reward, _, _, info = env.step(format_tsv(env.header, rows))
    expected = (len(env.rows) - 1) / len(env.rows)
    assert info["metrics"] == pytest.approx({"f1": expected, "precision": expected, "recall": expected})
    assert reward == pytest.approx(expected) and info["success"] is False


def test_html_page_holds_every_value_and_marks_sponsored_rows():
    for seed in range(20):
        env = HtmlToTsvEnv(sponsored_rate=0.3)
        env.reset(seed=seed)
        text = html.unescape(env.page)
        assert all(value in text for row in env.rows for value in row)
        assert "Sponsored" in env.page
        assert len(set(env.rows)) == len(env.rows)
    env = HtmlToTsvEnv(sponsored_rate=0.0)
    obs, _ = env.reset(seed=0)
    assert "Sponsored" not in env.page and "Include every entry" in obs


def test_html_escapes_special_characters():
    for seed in range(40):
        env = HtmlToTsvEnv()
        env.reset(seed=seed)
        if any("&" in value for row in env.rows for value in row):
            assert "&amp;" in env.page and env.step(env.oracle_action())[4]["success"]
            return
    pytest.fail("no value with '&' in 40 seeds")


@pytest.mark.parametrize("rate", [-0.1, 1.0, "0.1", True])
def test_html_bad_sponsored_rate(rate):
    with pytest.raises(ValueError, match="sponsored_rate"):
        HtmlToTsvEnv(sponsored_rate=rate)


# -- PathTraversal ------------------------------------------------------------------------------------------
ROUTE = ["From A, take a bus to B.", "From B, take a train to C.", "From C, take a plane to D.",
         "From D, take a ferry to E.", "From E, take a bus to F."]


def test_route_scores():
    assert score_route(ROUTE, ROUTE) == {"accuracy": 1.0, "partial_accuracy": 1.0}
    wrong_third = ROUTE[:2] + ["From C, take a bus to D."] + ROUTE[3:]
    assert score_route(wrong_third, ROUTE) == {"accuracy": 0.0, "partial_accuracy": 0.4}
    assert score_route(ROUTE[:3], ROUTE) == {"accuracy": 0.0, "partial_accuracy": 0.6}
    assert score_route(ROUTE + ["From F, take a bus to G."], ROUTE) == {"accuracy": 0.0, "partial_accuracy": 1.0}


def test_parse_route_edge_cases():
    text = "<Route>\nFrom X, take a bus to Y.\n</Route> draft\n<Route>\n  From A,  take a bus to B. \n\n</Route>"
    assert parse_route(text) == (["From A, take a bus to B."], None)
    assert parse_route("From A, take a bus to B.") == (None, "no <Route>...</Route> block found")


def test_path_graph_has_a_unique_route():
    for seed in range(10):
        env = PathTraversalEnv(level="2k")
        obs, _ = env.reset(seed=seed)
        outgoing: dict[str, list[str]] = {}
        for fact in env.facts:
            src, rest = fact.split(" is a lively city. You can travel from ", 1)
            outgoing.setdefault(src, []).append(rest[len(src) + 4 :].rsplit(" by ", 1)[0])
        route_cities = [e[0] for e in env.route] + [env.route[-1][1]]
        assert len(set(route_cities)) == len(route_cities)
        assert all(len(v) == 1 for v in outgoing.values()) and route_cities[-1] not in outgoing
        city = route_cities[0]
        for expected in route_cities[1:]:
            city = outgoing[city][0]
            assert city == expected
        assert len(env.facts) == len(env.route) + round(0.25 * len(env.route))
        assert f"Now find the route from {route_cities[0]} to {route_cities[-1]}" in obs


def test_path_distractor_ratio_knob():
    env = PathTraversalEnv(distractor_ratio=0)
    env.reset(seed=1)
    assert len(env.facts) == len(env.route)
    env = PathTraversalEnv(distractor_ratio=1)
    env.reset(seed=1)
    assert len(env.facts) == 2 * len(env.route)
    with pytest.raises(ValueError, match="distractor_ratio"):
        PathTraversalEnv(distractor_ratio=-1)


def test_path_env_partial_score():
    env = PathTraversalEnv()
    env.reset(seed=2)
    _, reward, _, _, info = env.step(env.wrong_action(np.random.default_rng(0)))
    n = len(env.route)
    assert reward == 0.0 and info["metrics"] == {"accuracy": 0.0, "partial_accuracy": (n - 1) / n}


# -- TomTracking ---------------------------------------------------------------------------------------------
def test_trace_lines_match_the_paper_example():
    """Steps 0-2 of the paper's example story 2 (Kathryn and the fuse)."""
    rooms = {"storage room": ["ledge", "coffee table"], "patio": ["coffee table", "ledge"]}
    w0 = World({"Kathryn": "storage room", "Mitchell": "storage room"},
               {"rubber band": ("patio", "coffee table"), "fuse": ("patio", "coffee table")}, rooms)
    w1 = w0.copy()
    w1.agents["Kathryn"] = "patio"
    w2 = w1.copy()
    w2.agents["Kathryn"], w2.objects["fuse"] = "storage room", ("storage room", "ledge")
    beliefs = [update_belief(w0, "Kathryn", "fuse", None)]
    beliefs += [update_belief(w1, "Kathryn", "fuse", beliefs[0])]
    beliefs += [update_belief(w2, "Kathryn", "fuse", beliefs[1])]
    pairs = [(w0, None), (w1, w0), (w2, w1)]
    lines = [trace_line(k, "Kathryn", "fuse", w, before, beliefs[k]) for k, (w, before) in enumerate(pairs)]
    assert lines == [
        "- Step 0: (initial state) {Kathryn location: storage room; fuse location: patio's coffee table; "
        "Kathryn sees fuse: False; Kathryn's belief on fuse: None}",
        "- Step 1: (Kathryn location changed; fuse location unchanged) {Kathryn location: patio; fuse location: "
        "patio's coffee table; Kathryn sees fuse: True; Kathryn's belief on fuse: patio's coffee table}",
        "- Step 2: (Kathryn location changed; fuse location changed) {Kathryn location: storage room; fuse location: "
        "storage room's ledge; Kathryn sees fuse: True; Kathryn's belief on fuse: storage room's ledge}",
    ]


def test_belief_is_kept_when_the_agent_cannot_see():
    rooms = {"attic": ["shelf"], "cellar": ["bench"]}
    world = World({"Ann": None}, {"key": ("attic", "shelf")}, rooms)
    assert update_belief(world, "Ann", "key", "cellar's bench") == "cellar's bench"
    world.agents["Ann"] = "attic"
    assert update_belief(world, "Ann", "key", "cellar's bench") == "attic's shelf"


def test_normalize_tom_follows_the_paper():
    assert normalize_tom("Final: The patio's Ledge!") == "final patios ledge"
    assert normalize_tom("{Ann location: None; Ann's belief on key: None}") == "ann none anns key none"


def test_score_trace_hand_worked():
    ref = ["- Step 0: a", "- Step 1: b", "- Step 2: c", "- Step 3: d"]
    norm = [normalize_tom(r.split("-", 1)[1]) for r in ref]
    assert score_trace(norm, "attics shelf", ref, "the attic's shelf") == {
        "strict_accuracy": 1.0, "partial_accuracy": 1.0, "answer_accuracy": 1.0}
    first_diff_at_2 = norm[:2] + ["step 2 x", norm[3]]
    assert score_trace(first_diff_at_2, "attics shelf", ref, "attic's shelf")["partial_accuracy"] == 0.5
    assert score_trace(norm[:2], "attics shelf", ref, "attic's shelf")["partial_accuracy"] == 0.5
    wrong_answer = score_trace(norm, "cellars bench", ref, "attic's shelf")
    assert wrong_answer == {"strict_accuracy": 0.0, "partial_accuracy": 1.0, "answer_accuracy": 0.0}


def test_parse_trace_uses_the_last_trace_and_answer():
    text = (
        "Draft:\n- Step 0: wrong\nFinal Answer: the attic's desk\n"
        "Ann's belief on the key:\n  - Step 0: (initial state) {x}\n- Step 1: (y) {z}\nnoise\nFinal Answer: the cellar's bench"
    )
    lines, answer = parse_trace(text)
    assert lines == ["0 initial state x", "1 y z"] and answer == "cellars bench"
    assert parse_trace("nothing here") == ([], None)


def test_tom_env_scores_and_errors():
    env = TomTrackingEnv()
    env.reset(seed=1)
    _, reward, _, _, info = env.step(env.wrong_action(np.random.default_rng(0)))
    assert reward == 0.0 and info["metrics"]["partial_accuracy"] == 1.0 and info["metrics"]["answer_accuracy"] == 0.0
    env.reset(seed=1)
    no_answer = env.reference.rsplit("Final Answer:", 1)[0]
    obs, _, _, _, info = env.step(no_answer)
    assert info["error"] in obs and info["metrics"]["strict_accuracy"] == 0.0
    env.reset(seed=1)
    obs, _, _, _, info = env.step("I don't know")
    assert "no '- Step k:'" in info["error"] and info["error"] in obs


def test_tom_stories_are_consistent():
    env = TomTrackingEnv(level="2k")
    for seed in range(10):
        obs, _ = env.reset(seed=seed)
        assert env.answer is not None and env.reference.endswith(f"Final Answer: the {env.answer}")
        assert len(env.sentences) == len(env.trace) and f"Step {len(env.trace) - 1}: " in obs
        assert f"Where does {env.agent} believe the {env.obj} is?" in obs


# -- Countdown ------------------------------------------------------------------------------------------------
NUMS, TARGET = [5, 30, 50, 30], 2


def solution(*lines: str) -> str:
    return "# Search Procedure\n...\n<Solution>\n" + "\n".join(lines) + "\n</Solution>"


def verdict(*lines: str) -> str | None:
    equations, error = parse_solution(solution(*lines))
    return error if equations is None else verify_solution(NUMS, TARGET, equations)


def test_countdown_valid_solutions():
    assert verdict("30 + 5 = 35", "50 - 35 = 15", "30 / 15 = 2") is None
    assert verdict("5 + 30 = 35", "50 − 35 = 15.", "30 ÷ 15 = 2") is None  # order, unicode ops, a period
    assert verdict("30 + 30 = 60", "60 - 50 = 10", "10 / 5 = 2") is None  # the two 30s are two numbers


@pytest.mark.parametrize(
    "lines,reason",
    [
        (("30 + 5 = 36", "50 - 36 = 14", "30 / 14 = 2"), "step 1: 30 + 5 = 35, not 36"),
        (("50 / 30 = 1", "30 - 5 = 25", "25 - 1 = 24"), "step 1: 50 / 30 is not an exact integer division"),
        (("5 + 5 = 10", "50 - 10 = 40", "40 - 30 = 10"), "step 1: 5 and 5 are not both available"),
        (("30 + 5 = 35", "35 - 30 = 5", "50 / 5 = 10"), "the last result is 10, not the target 2"),
        (("50 * 30 = 1500", "1500 + 30 = 1530", "1530 / 5 = 306"), "the last result is 306"),
        (("50 * 30 = 1500", "1500 * 30 = 45000", "45000 / 5 = 9000"), "step 2: 45000 is not below 2000"),
        (("30 + 5 = 35", "50 - 35 = 15"), "exactly 3 equation lines, found 2"),
        (("Step 1: 30 + 5 = 35", "50 - 35 = 15", "30 / 15 = 2"), "cannot read 'Step 1: 30 + 5 = 35'"),
        (("30 + 5 = 35", "50 - 35 = 15", "30 / 15 = 2", "2 * 1 = 2"), "found 4"),
    ],
)
def test_countdown_invalid_solutions(lines, reason):
    assert reason in verdict(*lines)


def test_check_equation_rules():
    assert check_equation(5, "-", 30, 25) == "5 - 30 is negative"
    assert check_equation(7, "/", 0, 0) == "7 / 0 is not an exact integer division"
    assert check_equation(7, "-", 7, 0) is None  # zero is allowed, as in the paper's search
    assert check_equation(0, "/", 5, 0) is None


def test_countdown_parse_edge_cases():
    assert parse_solution("30 + 5 = 35")[1] == "no <Solution>...</Solution> block found"
    draft = solution("1 + 1 = 2", "2 + 2 = 4", "4 + 4 = 8")
    text = draft + "\n" + solution("30 + 5 = 35", "50 - 35 = 15", "30 / 15 = 2")
    assert parse_solution(text)[0] == [(30, "+", 5, 35), (50, "-", 35, 15), (30, "/", 15, 2)]
    assert parse_solution(solution("30 + 5 = -35", "a", "b"))[0] is None


def test_search_trace_follows_the_paper_format():
    trace, steps = search_trace(NUMS, TARGET)
    assert steps == ["30 + 5 = 35", "50 - 35 = 15", "30 / 15 = 2"]
    assert trace.startswith(
        "# Search Procedure\nInitial number set: [5, 30, 50, 30], target: 2. Options for choosing two numbers: "
        "[(5, 30), (5, 50), (5, 30), (30, 50), (30, 30), (50, 30)].\n |- Pick two numbers (5, 30) (numbers left: "
        "[50, 30]). Try possible operations.\n  |- Try 30 + 5 = 35. Add 35 to the number set."
    )
    assert "     |- Try 85 * 30 = 2550. 2550 exceeds the maximum intermediate result, drop this branch." in trace
    assert "     |- Try 85 / 30 = 2.8. 2.8 is a decimal, drop this branch." in trace
    assert "     |- Try 30 / 15 = 2. Evaluate 2 == 2, target found!" in trace
    assert trace.endswith("<Solution>\n30 + 5 = 35\n50 - 35 = 15\n30 / 15 = 2\n</Solution>")
    assert search_trace([1, 1, 1, 1], 999) is None


def test_random_puzzles_are_solvable_and_the_oracle_verifies():
    rng = np.random.default_rng(0)
    for _ in range(100):
        nums, target = random_puzzle(rng)
        trace, _ = search_trace(nums, target)
        equations, error = parse_solution(trace)
        assert error is None and verify_solution(nums, target, equations) is None


def test_countdown_wrong_action_is_rejected():
    env = CountdownEnv()
    env.reset(seed=0)
    obs, reward, _, _, info = env.step(env.wrong_action(np.random.default_rng(0)))
    assert reward == 0.0 and "step 3" in info["error"] and info["error"] in obs
