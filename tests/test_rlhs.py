"""RLHS's hindsight judge (issue 15 item 4): the hindsight prompt holds the env's continuation and the foresight
prompt does not, the 1-5 rating and the 1/2 choice parse by hand and never raise on hostile output, per-turn and
per-episode scores land on the right turns, the hindsight labeller feeds `prefs build`, and a tiny-random GRPO run
mixes `judge_hindsight` and `judge_foresight` with the env's reward."""

from __future__ import annotations

import functools
import math

import pytest

from longhorizon.feedback.labellers import Candidate, make_labeller
from longhorizon.feedback.rlhs import (compare, foresight_scores, hindsight_labeller, hindsight_scores, outcome_text,
                                       parse_choice, parse_rating, rate, rating_items, rating_messages, rating_reward)
from longhorizon.train import train
from longhorizon.train.metrics import read_records
from longhorizon.types import Trajectory, Turn
from test_train import tiny_cfg
from test_train_online import TEST_ENV as PREF_CHARS  # noqa: F401 (registers the env that pays varied rewards)


def episode(success: bool | None = True, final: str = "Correct: the total is 7.") -> Trajectory:
    turns = [Turn("Task: add 3 then 4.", "<answer>3</answer>", 0.5), Turn("Now add 4.", "<answer>7</answer>", 0.5)]
    return Trajectory("e", 5, turns, terminated=True, success=success, metadata={"final_observation": final})


class ScriptedJudge:
    """Stands in for `feedback.judges.Judge`: records the conversations it is sent, answers from a script."""

    max_chars = 4000

    def __init__(self, *answers: str):
        self.answers, self.sent = list(answers), []

    def write(self, conversations, kind="write", prefill=""):
        self.sent += conversations
        return [self.answers[i % len(self.answers)] for i in range(len(conversations))]


# ------------------------------------------------------------------ prompts: hindsight sees the outcome


def test_hindsight_prompt_holds_the_outcome_and_foresight_does_not():
    outcome = outcome_text(episode())
    assert outcome == ("[Environment]\nCorrect: the total is 7.\n\n[Result]\nthe task was solved (total reward 1).")
    hind = rating_messages("the task", "the answer", outcome, 4000)
    fore = rating_messages("the task", "the answer", None, 4000)
    assert "[Start of What Happened Next]\n[Environment]\nCorrect: the total is 7." in hind[1]["content"]
    assert "What Happened Next" not in fore[1]["content"] and "Correct" not in fore[1]["content"]
    assert "the answer" in fore[1]["content"] and "the answer" in hind[1]["content"]
    for system in (hind[0]["content"], fore[0]["content"]):
        assert "5: Very Satisfied" in system and "1: Very Dissatisfied" in system  # the paper's rubric
    assert "what happened after" in hind[0]["content"] and "what happened after" not in fore[0]["content"]

    judge = ScriptedJudge("<answer>4</answer>")
    hindsight_scores(judge, [episode()])
    foresight_scores(judge, [episode()])
    assert "Correct: the total is 7." in judge.sent[0][1]["content"]
    assert "Correct: the total is 7." not in judge.sent[1][1]["content"]


def test_outcome_says_what_the_verifier_said():
    failed = episode(success=False, final="Wrong: the total is 7.")
    failed.truncated = True
    assert outcome_text(failed).endswith("[Result]\nthe task was not solved, and it stopped at the turn limit "
                                         "(total reward 1).")
    silent = episode(success=None, final="")
    assert outcome_text(silent) == "[Result]\nthe episode ended (total reward 1)."


def test_per_turn_items_see_everything_after_their_turn():
    items = rating_items(episode(), "turn")
    assert [(t, response) for t, _, response, _ in items] == [(0, "<answer>3</answer>"), (1, "<answer>7</answer>")]
    assert items[0][1] == "Task: add 3 then 4."  # turn 0's history: the first observation
    assert items[0][3].startswith("[Environment]\nNow add 4.\n\n[Agent]\n<answer>7</answer>\n\n[Environment]\nCorrect")
    assert items[1][1] == "Task: add 3 then 4.\n\n[Agent]\n<answer>3</answer>\n\n[Environment]\nNow add 4."
    assert items[1][3] == outcome_text(episode())  # after the last turn: the final message and the result
    (whole,) = rating_items(episode(), "episode")
    assert whole[0] == 1 and whole[2].endswith("[Agent]\n<answer>7</answer>") and whole[3] == outcome_text(episode())
    assert rating_items(Trajectory("e", 0), "turn") == []


def test_scores_land_on_the_turn_they_rate():
    judge = ScriptedJudge("<answer>5</answer>", "<answer>2</answer>")
    one_turn = Trajectory("e", 1, [Turn("o", "a")], success=False)
    scores, verdicts = hindsight_scores(judge, [episode(), one_turn, Trajectory("e", 2)], per="turn")
    assert scores == [[1.0, 0.25], [1.0], []] and len(verdicts) == 3
    scores, _ = hindsight_scores(ScriptedJudge("<answer>3</answer>"), [episode(), one_turn], per="episode")
    assert scores == [[0.0, 0.5], [0.5]]


# ------------------------------------------------------------------ parsing the rating and the choice


def test_rating_maps_one_to_five_onto_zero_to_one():
    assert [rating_reward(s) for s in (1, 2, 3, 4, 5)] == [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize("text, score, parsed, reason", [
    ("<think>\nclear and right</think><answer>4</answer>", 0.75, True, ""),
    ("<answer>1</answer>", 0.0, True, ""),
    ("<answer>5</answer>", 1.0, True, ""),
    ("<answer>I first thought 2, but 4</answer>", 0.75, True, ""),  # the last number in 1..5 counts
    ("<answer>3 out of 5</answer>", 1.0, True, ""),  # ... even this one: the prompt asks for one integer
    ("<answer>2</answer> no, <answer>5</answer>", 1.0, True, "2 <answer> blocks: the last counts"),
    ("<answer>4</answer> then <answer>9</answer>", 0.0, False, "answer '9' holds no integer in 1..5"),
    ("<answer>6</answer>", 0.0, False, "answer '6' holds no integer in 1..5"),
    ("<answer>0</answer>", 0.0, False, "answer '0' holds no integer in 1..5"),
    ("<answer>-4</answer>", 0.0, False, "answer '-4' holds no integer in 1..5"),
    ("<answer>4.5</answer>", 0.0, False, "answer '4.5' holds no integer in 1..5"),
    ("<answer>very satisfied</answer>", 0.0, False, "answer 'very satisfied' holds no integer in 1..5"),
    ("I would say 4", 0.0, False, "no <answer></answer> block"),  # no tags
    ("<answer>4", 0.0, False, "no <answer></answer> block"),  # unclosed
    ("<answer>2 <answer>4</answer>", 0.75, True, ""),  # a second opening tag is text: the last number counts
    ("x" * 100_000, 0.0, False, "no <answer></answer> block"),  # 100k characters
    ("y" * 100_000 + "<answer>2</answer>", 0.25, True, ""),
    ("<answer>" * 50_000, 0.0, False, "no <answer></answer> block"),
])
def test_rating_parsing_never_raises_and_says_why(text, score, parsed, reason):
    v = parse_rating(text)
    assert (v.score, v.parsed, v.reason) == (score, parsed, reason)
    assert len(v.text) <= 2000


@pytest.mark.parametrize("text, score, parsed, reason", [
    ("<think>the first one solved it</think><answer>1</answer>", 1.0, True, ""),
    ("<answer>Store 2</answer>", 2.0, True, ""),
    ("<answer>1</answer><answer>2</answer>", 2.0, True, "2 <answer> blocks: the last counts"),
    ("<answer>3</answer>", 0.0, False, "answer '3' holds no choice 1 or 2"),
    ("<answer>both</answer>", 0.0, False, "answer 'both' holds no choice 1 or 2"),
    ("2", 0.0, False, "no <answer></answer> block"),
    ("z" * 100_000, 0.0, False, "no <answer></answer> block"),
])
def test_choice_parsing_never_raises(text, score, parsed, reason):
    v = parse_choice(text)
    assert (v.score, v.parsed, v.reason) == (score, parsed, reason)


def test_empty_batches_call_no_model():
    judge = ScriptedJudge("<answer>1</answer>")
    assert rate(judge, []) == [] and compare(judge, []) == [] and judge.sent == []


# ------------------------------------------------------------------ preferences: the labeller and prefs build


def test_hindsight_labeller_reads_both_outcomes():
    judge = ScriptedJudge("<answer>1</answer>", "<answer>2</answer>", "<answer>maybe</answer>")
    ctx = [{"role": "user", "content": "add 3 and 4"}]
    cands = [Candidate(ctx, [{"role": "assistant", "content": f"<answer>{k}</answer>"}],
                       [{"role": "assistant", "content": "<answer>0</answer>"}], 1.0, 0.0,
                       f"[Result]\nsolved {k}", "[Result]\nnot solved") for k in (7, 8, 9)]
    labels = hindsight_labeller(judge)(cands)
    assert [lab.prob for lab in labels] == [1.0, 0.0, 0.5] and [lab.preferred for lab in labels] == ["a", "b", "tie"]
    text = judge.sent[0][1]["content"]
    assert "[Start of What Happened After Assistant 1]\n[Result]\nsolved 7" in text
    assert "[Start of What Happened After Assistant 2]\n[Result]\nnot solved" in text
    assert text.index("Assistant 1's Work") < text.index("After Assistant 1") < text.index("Assistant 2's Work")
    assert "user: add 3 and 4" in text and "assistant: <answer>7</answer>" in text


def test_prefs_build_labels_with_the_hindsight_judge(tmp_path, monkeypatch):
    from longhorizon.feedback import build
    from longhorizon.feedback.build import PrefsBuildConfig, build_pairs

    monkeypatch.setattr(build, "make_labeller", functools.partial(make_labeller, max_new_tokens=4))
    cfg = PrefsBuildConfig(model="noisy-oracle:0.6", tasks=2, samples=2, env_kwargs={"horizon": 2, "dict_size": 3},
                           label="judge_hindsight", label_model="tiny-random", ties="keep", out=str(tmp_path))
    pairs, summary = build_pairs(cfg)
    assert summary["pairs"] == len(pairs) >= 1 and all(p.source == "judge" for p in pairs)
    assert all(p.metadata["prob_a"] in (0.0, 0.5, 1.0) for p in pairs)  # 1 or 2, or a tie when unusable
    with pytest.raises(Exception, match="label judge_hindsight needs label_model: a judge hindsight model"):
        build_pairs(PrefsBuildConfig(label="judge_hindsight", out=str(tmp_path / "x")))


# ------------------------------------------------------------------ as a reward component


def test_hindsight_and_foresight_components_train_and_log(tmp_path):
    components = ("[{name: env}, {name: judge_hindsight, model: tiny-random, per: turn, weight: 0.5, "
                  "max_new_tokens: 4}, {name: judge_foresight, model: tiny-random, max_new_tokens: 4}]")
    result = train(tiny_cfg(tmp_path, f"algorithm.rewards.components={components}", f"env_id={PREF_CHARS}",
                            "algorithm.group_size=3"))
    records = [r for r in read_records(result.run_dir) if "charts/reward_mean" in r]
    assert [r["step"] for r in records] == [1, 2]
    for key in ("rewards/return_env", "rewards/return_judge_hindsight", "rewards/return_judge_foresight",
                "rewards/judge_parsed_frac", "rewards/judge_cache_hits"):
        assert all(key in r and math.isfinite(r[key]) for r in records), key
    assert (result.run_dir / "judge_cache.sqlite").exists()
