"""Reward-guided best-of-N (issue 15 item 8, DeformPAM's action selection for text): the choice by hand, the TRLM
and implicit scores against teacher-forced forward passes, and an eval on the tiny random model."""

from __future__ import annotations

import json

import pytest
import torch

from longhorizon.errors import ConfigError, UserError
from longhorizon.eval.config import load_eval_config
from longhorizon.eval.evaluate import make_policy, run
from longhorizon.rollout.best_of_n import (BestOfNPolicy, continuation_logprobs, implicit_scorer, trlm_ids,
                                           trlm_scorer)
from longhorizon.rollout.runner import Action


class Replies:
    """A policy whose k-th call answers every episode with replies[k] (or overflows on None)."""

    def __init__(self, replies):
        self.replies, self.calls = replies, 0
        self.sampler = self.strategy = None

    def act(self, episodes):
        reply = self.replies[self.calls]
        self.calls += 1
        return [Action(text="", overflow=True) if reply is None else Action(text=f"{reply}-{i}") for i in range(len(episodes))]


def length_scorer(episodes, actions):
    return [float(len(a.text)) for a in actions]


def test_the_best_scored_candidate_runs_and_the_turn_records_why():
    policy = BestOfNPolicy(Replies(["aa", "aaaa", "bbbb", None]), n=4, scorer=length_scorer)
    chosen = policy.act([object(), object()])
    assert [a.text for a in chosen] == ["aaaa-0", "aaaa-1"]  # "bbbb" ties with "aaaa": the first wins
    assert chosen[0].info == {"best_of": 4, "scores": [4.0, 6.0, 6.0, -float("inf")], "chosen": 1}
    with pytest.raises(ValueError, match="n >= 1"):
        BestOfNPolicy(Replies([]), n=0, scorer=length_scorer)


def test_trlm_score_is_the_teacher_forced_mean_logprob_of_the_query(tiny):
    prompt, query = trlm_ids(tiny.tokenizer, "What is 2 + 2?", "<answer>4</answer>")
    ids = torch.tensor([prompt + query])
    with torch.no_grad():
        logp = torch.log_softmax(tiny.model(ids).logits[0].float(), -1)
    expected = [logp[len(prompt) - 1 + i, t].item() for i, t in enumerate(query)]
    got = continuation_logprobs(tiny.model, prompt, query)
    assert got.tolist() == pytest.approx(expected, abs=1e-5) and len(query) > 3

    class Episode:
        observation = "What is 2 + 2?"

    (score,) = trlm_scorer(tiny.model, tiny.tokenizer)([Episode()], [Action(text="<answer>4</answer>")])
    assert score == pytest.approx(sum(expected) / len(expected), abs=1e-5)


def test_implicit_reward_is_zero_against_itself_and_the_logratio_otherwise(tiny):
    import copy

    other = copy.deepcopy(tiny.model)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.5)
    action = Action(text="x", prompt_ids=[1, 5, 6], token_ids=[7, 8])
    assert implicit_scorer(tiny.model, tiny.model, beta=2.0)([None], [action]) == [0.0]
    theta = continuation_logprobs(other, [1, 5, 6], [7, 8]).sum().item()
    ref = continuation_logprobs(tiny.model, [1, 5, 6], [7, 8]).sum().item()
    (score,) = implicit_scorer(other, tiny.model, beta=2.0)([None], [action])
    assert score == pytest.approx(2.0 * (theta - ref), abs=1e-5) and score != 0.0


def test_best_of_settings_are_checked():
    with pytest.raises(ConfigError, match="implicit needs best_of.model"):
        load_eval_config(None, ["best_of={scorer: implicit}"])
    with pytest.raises(ConfigError, match="sampler: transformers"):
        load_eval_config(None, ["best_of={scorer: trlm}", "sampler=vllm"])
    with pytest.raises(UserError, match="best_of needs a model policy"):
        make_policy(load_eval_config(None, ["model=oracle", "best_of={scorer: trlm}"]))


def test_an_eval_with_best_of_records_every_candidates_score(tmp_path):
    cfg = load_eval_config(None, ["model=tiny-random", "horizons=[2]", "episodes=2", "max_new_tokens=4",
                                  "best_of={n: 3, scorer: trlm}", "temperature=1.0", f"run_dir={tmp_path / 'eval'}"])
    run(cfg)
    episodes = [json.loads(line) for line in (tmp_path / "eval" / "trajectories.jsonl").read_text().splitlines()]
    turns = [t for e in episodes for t in e["turns"]]
    assert turns and all(t["info"]["policy"]["best_of"] == 3 for t in turns)
    for t in turns:
        scores, k = t["info"]["policy"]["scores"], t["info"]["policy"]["chosen"]
        assert len(scores) == 3 and scores[k] == max(scores)
