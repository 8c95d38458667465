"""Reward-guided best-of-N (issue 15 item 8, DeformPAM's action selection for text): the choice by hand, the TRLM
and implicit scores against teacher-forced forward passes, the reward model's against its score of the episode
by hand, the critic's steps before the first wrong one, and evals on the tiny random model."""

from __future__ import annotations

import json

import pytest
import torch

from longhorizon.errors import ConfigError, UserError
from longhorizon.eval.config import load_eval_config
from longhorizon.eval.evaluate import make_policy, run
from longhorizon.feedback.critic import Critique
from longhorizon.rollout.best_of_n import (BestOfNPolicy, continuation_logprobs, critic_scorer, implicit_scorer,
                                           reward_model_scorer, trlm_ids, trlm_scorer)
from longhorizon.rollout.runner import Action, EpisodeSpec, LiveEpisode


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


def one_turn_played(horizon=3):
    """A live Execution episode after one oracle turn."""
    episode = LiveEpisode(EpisodeSpec("longhorizon/Execution-v0", seed=7, env_kwargs={"horizon": horizon}))
    episode.step(Action(text=episode.env.unwrapped.oracle_action()))
    return episode


@pytest.fixture(scope="module")
def tiny_rm(reward_model_dir):
    from longhorizon.feedback.reward_model import load_reward_model

    return reward_model_dir, load_reward_model(reward_model_dir)


def test_reward_model_scores_the_episode_with_the_candidate_as_its_last_turn(tiny_rm):
    from longhorizon.feedback.reward_model import episode_texts

    _, rm = tiny_rm
    episode = one_turn_played()
    right = episode.env.unwrapped.oracle_action()
    scores = reward_model_scorer(rm)([episode, episode], [Action(text=right), Action(text="<answer>999</answer>")])
    system = episode.agent_spec.system_prompt
    context, continuation = episode_texts(episode.trajectory, system)  # the turn played, then each candidate
    by_hand = rm.score([(context, continuation + [{"role": "user", "content": episode.observation},
                                                  {"role": "assistant", "content": text}])
                        for text in (right, "<answer>999</answer>")])
    assert scores == pytest.approx(by_hand, abs=1e-5) and scores[0] != scores[1]
    assert len(episode.trajectory.turns) == 1  # the live episode is untouched


class FixedCritic:
    """A critic whose answer for the i-th item is answers[i]; it records the (problem, steps) it read."""

    def __init__(self, answers):
        self.answers, self.items = answers, []

    def critique(self, items):
        self.items += items
        return [Critique(k, {}, "" if k is not None else "no answer") for k in self.answers]


def test_critic_scores_the_steps_before_the_first_wrong_one():
    episode = one_turn_played()
    critic = FixedCritic([-1, 2, 1, None])
    scores = critic_scorer(critic)([episode] * 4, [Action(text=f"<answer>{v}</answer>") for v in range(4)])
    assert scores == [1.0, 0.5, 0.0, 0.0]  # none wrong; step 2 of 2 (the candidate) wrong: 1/2; step 1; unreadable
    problem, steps = critic.items[1]
    assert problem == episode.trajectory.turns[0].observation and len(steps) == 2
    assert steps[0] == episode.trajectory.turns[0].action and steps[1].endswith("<answer>1</answer>")


def test_best_of_settings_are_checked():
    with pytest.raises(ConfigError, match="implicit needs best_of.model"):
        load_eval_config(None, ["best_of={scorer: implicit}"])
    with pytest.raises(ConfigError, match="reward_model needs best_of.model"):
        load_eval_config(None, ["best_of={scorer: reward_model}"])
    with pytest.raises(ConfigError, match="sampler: transformers"):
        load_eval_config(None, ["best_of={scorer: trlm}", "sampler=vllm"])
    with pytest.raises(UserError, match="best_of needs a model policy"):
        make_policy(load_eval_config(None, ["model=oracle", "best_of={scorer: trlm}"]))


@pytest.mark.parametrize("scorer", ["trlm", "reward_model"])
def test_an_eval_with_best_of_records_every_candidates_score(tmp_path, scorer, tiny_rm):
    model = f", model: {tiny_rm[0]}" if scorer == "reward_model" else ""
    cfg = load_eval_config(None, ["model=tiny-random", "horizons=[2]", "episodes=2", "max_new_tokens=4",
                                  f"best_of={{n: 3, scorer: {scorer}{model}}}", "temperature=1.0",
                                  f"run_dir={tmp_path / 'eval'}"])
    run(cfg)
    episodes = [json.loads(line) for line in (tmp_path / "eval" / "trajectories.jsonl").read_text().splitlines()]
    turns = [t for e in episodes for t in e["turns"]]
    assert turns and all(t["info"]["policy"]["best_of"] == 3 for t in turns)
    for t in turns:
        scores, k = t["info"]["policy"]["scores"], t["info"]["policy"]["chosen"]
        assert len(scores) == 3 and scores[k] == max(scores)
