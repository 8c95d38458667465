"""Labellers (issue 13): P(A ≻ B) from the verifier, a reward model, a preference model or a judge, by hand; and
`longhorizon prefs build` labelled by a reward model and by a judge."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.feedback.build import PrefsBuildConfig, build_pairs
from longhorizon.feedback.judges import Verdict
from longhorizon.feedback.labellers import (Candidate, judge_labeller, preference_model_labeller,
                                            reward_model_labeller, verifier)

CANDIDATES = [Candidate("x", "long answer", "a", 1.0, 0.0), Candidate("x", "b", "bb", 0.5, 0.5),
              Candidate([{"role": "user", "content": "x"}], "c", "ccc", 0.0, 2.0)]


class LengthModel:
    """A reward model scoring len(continuation); a preference model saying P(a > b) = 0.25 always."""

    def score(self, items):
        return [float(len(y)) for _, y in items]

    def probs(self, items):
        return [0.25 for _ in items]


class SignJudge:
    def __init__(self, strengths):
        self.strengths = strengths

    def compare(self, items):
        assert all(isinstance(part, str) for item in items for part in item)  # messages flattened to text
        return [Verdict(float(s), s != 0, "" if s else "no verdict", "") for s in self.strengths]


def test_each_labeller_by_hand():
    assert [lab.prob for lab in verifier(CANDIDATES)] == [1.0, 0.5, 0.0]
    assert [lab.preferred for lab in verifier(CANDIDATES)] == ["a", "tie", "b"]
    rm = [lab.prob for lab in reward_model_labeller(LengthModel())(CANDIDATES)]
    assert rm == pytest.approx([1 / (1 + math.exp(-10)), 1 / (1 + math.exp(1)), 1 / (1 + math.exp(2))])
    assert [lab.prob for lab in preference_model_labeller(LengthModel())(CANDIDATES)] == [0.25] * 3
    judged = judge_labeller(SignJudge([-3, 0, 2]))(CANDIDATES)
    assert [lab.prob for lab in judged] == pytest.approx([1.0, 0.5, 0.5 - 2 / 6])
    assert [lab.strength for lab in judged] == [-3, None, 2] and [lab.preferred for lab in judged] == ["a", "tie", "b"]


def test_prefs_build_labelled_by_a_reward_model(reward_model_dir, tmp_path):
    from longhorizon.feedback.reward_model import load_reward_model

    cfg = PrefsBuildConfig(model="noisy-oracle:0.6", env_kwargs={"horizon": 3, "dict_size": 3}, tasks=3, samples=3,
                           label="reward_model", label_model=str(reward_model_dir), out=str(tmp_path))
    pairs, summary = build_pairs(cfg)
    assert pairs and summary["pairs"] == len(pairs)
    rm = load_reward_model(reward_model_dir)
    for p in pairs:
        assert p.source == "model" and p.preferred in ("a", "b")
        assert p.metadata["prob_a"] == pytest.approx(rm.prob(p.context, p.a, p.b), abs=1e-5)
        assert (p.metadata["prob_a"] > 0.5) == (p.preferred == "a")


def test_prefs_build_labelled_by_a_judge_keeps_its_strength(tmp_path):
    cfg = PrefsBuildConfig(model="noisy-oracle:0.6", env_kwargs={"horizon": 2, "dict_size": 3}, tasks=2, samples=2,
                           label="judge", label_model="tiny-random", ties="keep", out=str(tmp_path))
    pairs, _ = build_pairs(cfg)
    assert pairs and all(p.source == "judge" for p in pairs)
    for p in pairs:  # tiny-random rarely gives a usable verdict: those pairs are ties without a strength
        assert (p.strength is None) == (p.preferred == "tie")


def test_a_model_labeller_needs_its_model():
    result = CliRunner().invoke(app, ["prefs", "build", "--model", "noisy-oracle:0.5", "--label", "judge"])
    assert result.exit_code == 2 and "label judge needs label_model" in result.output
    assert len(result.output.strip().splitlines()) == 1
