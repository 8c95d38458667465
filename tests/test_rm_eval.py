"""`longhorizon rm-eval` (issue 15 item 9): items from oracle episodes at target context lengths, accuracy by hand
for scorers that always, never or cannot tell, truncation, and the command on a tiny reward model."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.eval.rm_eval import build_items, run_rm_eval, token_counter, truncate
from longhorizon.feedback.labellers import Label

ENV, KNOBS = "longhorizon/Execution-v0", {"horizon": 64, "dict_size": 3}


@pytest.fixture(scope="module")
def count(tiny):
    return token_counter(tiny.tokenizer)


@pytest.fixture(scope="module")
def items(count):
    return build_items(ENV, KNOBS, [150, 300], items=3, n=3, count_tokens=count)


def test_items_reach_each_length_with_the_oracle_answer_as_the_better_one(items, count):
    assert [it.length for it in items] == [150, 300] * 3
    for it in items:
        assert it.tokens == count(it.context) >= it.length
        assert it.context[-1]["role"] == "user" and len(it.worse) == 2
        assert it.better.startswith("<answer>") and it.better not in it.worse  # wrong values, the same format
    shorter, longer = items[0], items[1]
    assert longer.context[: len(shorter.context)] == shorter.context  # one episode, read further


def test_bisection_finds_the_first_turn_a_turn_by_turn_scan_finds(items, count):
    from longhorizon.eval.rm_eval import oracle_turns

    turns = oracle_turns(ENV, KNOBS, 0, 2, 4096)  # item 0's episode
    messages, scanned, targets = [], [], [150, 300]
    for obs, action, _ in turns:  # the old, quadratic way: count the context at every turn
        context = messages + [{"role": "user", "content": obs}]
        while targets and count(context) >= targets[0]:
            scanned.append((targets.pop(0), context))
        messages = context + [{"role": "assistant", "content": action}]
    assert [(it.length, it.context) for it in items[:2]] == scanned
    assert count(scanned[0][1][:-2]) < 150  # one turn earlier is short of the length


def oracle_of(items):
    """A labeller that knows each item's better answer: P(a > b) = 1 when a is it, 0 when b is, else 1/2."""
    better = {it.better for it in items}

    def label(candidates):
        return [Label(1.0 if c.a[0]["content"] in better else 0.0 if c.b[0]["content"] in better else 0.5)
                for c in candidates]

    return label


def test_accuracy_of_a_scorer_that_knows_one_that_is_wrong_and_one_that_cannot_tell(items):
    right = run_rm_eval(items, oracle_of(items))
    assert [(r["length"], r["items"], r["pairwise_acc"], r["best_of_n_acc"]) for r in right] == [(150, 3, 1.0, 1.0),
                                                                                                 (300, 3, 1.0, 1.0)]
    inverted = lambda cands: [Label(1 - lab.prob) for lab in oracle_of(items)(cands)]  # noqa: E731
    assert all(r["pairwise_acc"] == 0.0 and r["best_of_n_acc"] == 0.0 for r in run_rm_eval(items, inverted))
    blind = run_rm_eval(items, lambda cands: [Label(0.5) for _ in cands])
    assert all(r["pairwise_acc"] == 0.5 and r["best_of_n_acc"] == pytest.approx(1 / 3) for r in blind)  # a tie of 3
    assert right[0]["pairwise_se"] == 0.0


def test_a_reward_model_scores_each_option_once_for_both_kinds_of_item(items):
    calls = []

    def rank(item):  # r = 2 for the better answer, 1 for worse[0], 0 for the rest
        calls.append(item)
        return [2.0, 1.0] + [0.0] * (len(item.worse) - 1)

    def no_labeller(cands):
        raise AssertionError("the pair should be judged from the ranking's scores")

    rows = run_rm_eval(items, no_labeller, rank)
    assert len(calls) == len(items) and all(r["pairwise_acc"] == 1.0 and r["best_of_n_acc"] == 1.0 for r in rows)
    flat = run_rm_eval(items, no_labeller, lambda item: [1.0] * (1 + len(item.worse)))
    assert all(r["pairwise_acc"] == 0.5 and r["best_of_n_acc"] == pytest.approx(1 / 3) for r in flat)
    wrong = run_rm_eval(items, no_labeller, lambda item: [0.0, 1.0] + [0.5] * (len(item.worse) - 1))
    assert all(r["pairwise_acc"] == 0.0 and r["best_of_n_acc"] == 0.0 for r in wrong)


def test_truncation_keeps_the_last_turn(items, count):
    longest = items[1].context
    cut = truncate(longest, count, 100)
    assert count(cut) <= 100 or len(cut) == 1
    assert cut[-1] == longest[-1] and len(cut) < len(longest)
    assert truncate(longest, count, None) is longest


def test_truncation_drops_the_fewest_messages_a_one_by_one_scan_drops(items, count):
    longest = items[1].context
    for limit in (1, 60, 100, 150, count(longest) - 1, count(longest), 10**6):
        scan = longest
        while len(scan) > 1 and count(scan) > limit:
            scan = scan[1:]
        assert truncate(longest, count, limit) == scan, limit


def test_a_short_episode_is_refused(count):
    with pytest.raises(ValueError, match="raise its horizon knob"):
        build_items(ENV, {"horizon": 2}, [10_000], items=1, n=2, count_tokens=count)


def test_rm_eval_command_on_a_tiny_reward_model(tiny, tmp_path):
    from longhorizon.feedback.reward_model import attach_score_head

    torch.manual_seed(0)
    attach_score_head(tiny.model, tiny.tokenizer, "reward_model").save_pretrained(tmp_path / "rm")
    tiny.tokenizer.save_pretrained(tmp_path / "rm")
    result = CliRunner().invoke(app, ["rm-eval", str(tmp_path / "rm"), "--lengths", "150,300", "--items", "2",
                                      "--knob", "horizon=64", "--knob", "dict_size=3", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "out" / "rm_eval.json").read_text())["rows"]
    assert [r["length"] for r in rows] == [150, 300] and all(0 <= r["pairwise_acc"] <= 1 for r in rows)
    assert (tmp_path / "out" / "rm_eval.png").exists()
    bad = CliRunner().invoke(app, ["rm-eval", str(tmp_path / "rm"), "--kind", "oracle"])
    assert bad.exit_code == 2 and "--kind" in bad.output
