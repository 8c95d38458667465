"""ACE-RL checklist rewards (feedback/checklist.py): normalisation and combination, by hand (atol 1e-6)."""

from __future__ import annotations

import itertools

import pytest

from longhorizon.envs.longwrite.constraints import Closing, Exclude, Include, Paragraphs
from longhorizon.feedback.checklist import (COMBINE, SCALE, ace_reward, checklist_items, checklist_reward, normalise,
                                            verify)


def test_normalise_is_the_mean_of_the_item_scores():
    assert normalise([1.0, 0.5, 0.0, 1.0]) == pytest.approx(0.625, abs=1e-6)
    assert normalise([0.0]) == 0.0 and normalise([1.0] * 7) == 1.0
    assert normalise([]) == 1.0  # nothing asked, nothing failed


def test_normalise_does_not_depend_on_order_or_on_the_number_of_items():
    scores = [1.0, 0.5, 0.0, 0.5]
    assert {normalise(list(p)) for p in itertools.permutations(scores)} == {0.5}
    assert normalise(scores * 3) == pytest.approx(normalise(scores), abs=1e-12)


@pytest.mark.parametrize("bad", [[1.5], [-0.1], [float("nan")]])
def test_normalise_refuses_scores_outside_zero_one(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        normalise(bad)


def test_model_verifier_scale_is_yes_partially_no():
    assert SCALE == {"yes": 1.0, "partially": 0.5, "no": 0.0}


def test_combinations_by_hand():
    assert COMBINE["product"](0.625, 0.5) == pytest.approx(0.3125, abs=1e-6)
    assert COMBINE["mean"](0.625, 0.5) == pytest.approx(0.5625, abs=1e-6)


def test_ace_reward_by_hand():
    """v = (1, 0, 1): r_con = 2/3; 200 words for 100 required: S_l = 100 (1 - 1/3), r_len = 2/3."""
    r, metrics = ace_reward([1.0, 0.0, 1.0], 100, 200)
    assert r == pytest.approx(4 / 9, abs=1e-6)
    assert metrics == pytest.approx({"checklist/r_con": 2 / 3, "checklist/r_len": 2 / 3, "checklist/reward": 4 / 9},
                                    abs=1e-6)
    assert ace_reward([1.0, 0.0, 1.0], 100, 200, combine="mean")[0] == pytest.approx(2 / 3, abs=1e-6)
    assert ace_reward([1.0], 100, 50)[0] == pytest.approx(0.5, abs=1e-6)  # S_l(100, 50) = 50


def test_checklist_reward_rescores_a_finished_episode_from_its_info():
    constraints = [Paragraphs(2), Include("lantern"), Exclude("delve"), Closing("Goodbye now.")]
    document = "A lantern shone.\n\nWe delve. Goodbye now."  # 7 words; delve breaks one item
    info = {"checklist": checklist_items(verify(constraints, document), constraints), "document": document,
            "metrics": {"required_words": 14.0}}
    r, meta = checklist_reward(info)
    assert [row["score"] for row in meta["items"]] == [1.0, 1.0, 0.0, 1.0]
    assert meta["metrics"]["checklist/r_con"] == pytest.approx(0.75, abs=1e-6)
    assert meta["metrics"]["checklist/r_len"] == pytest.approx(0.5, abs=1e-6)  # S_l(14, 7) = 50
    assert r == pytest.approx(0.375, abs=1e-6)
