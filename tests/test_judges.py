"""Generative judges and judge rewards (issue 15): Think-RM and pointwise parsing on hand-made and hostile
outputs, Think-RM's judge reward and group reward by hand, the content-hash cache, and a mixed-reward
training run (env + judge + checklist) on the tiny random model that resumes exactly and reuses the cache."""

from __future__ import annotations

import math

import pytest
import torch

from longhorizon.feedback.judges import (Judge, JudgeCache, Verdict, clip_middle, episode_text, parse_pairwise,
                                         parse_pointwise, think_rm_judge_reward)
from longhorizon.models import SamplingParams, TransformersSampler
from longhorizon.train import train
from longhorizon.train.metrics import read_records
from longhorizon.train.reward_sources import pairwise_scores, pointwise_scores
from longhorizon.types import Trajectory, Turn
from test_train import assert_same_weights, crash_then_resume, tiny_cfg
from test_train_online import TEST_ENV as PREF_CHARS  # noqa: F401 (registers the env that pays varied rewards)


@pytest.mark.parametrize("text, score, parsed", [
    ("<think>\nA is clearer.</think><answer>-2</answer>", -2, True),
    ("<answer>1</answer> on second thought <answer>3</answer>", 3, True),  # the last block counts
    ("<answer>I first said 2, but -1</answer>", -1, True),  # the last valid number in it
    ("<answer>−3</answer>", -3, True),  # a unicode minus
    ("<answer>\\boxed{2}</answer>", 2, True),
    ("<answer>5</answer>", 0, False),  # out of range
    ("<answer>0</answer>", 0, False),  # 0 is not a strength
    ("<answer>B is better</answer>", 0, False),
    ("B is better, 2", 0, False),  # no tags
    ("<answer>2", 0, False),  # unclosed
    ("x" * 100_000 + "<answer>-1</answer>", -1, True),  # long
    ("<answer>" * 50_000, 0, False),
])
def test_pairwise_parsing_never_raises_and_says_why(text, score, parsed):
    v = parse_pairwise(text)
    assert (v.score, v.parsed) == (score, parsed)
    assert bool(v.reason) != parsed and len(v.text) <= 2000


@pytest.mark.parametrize("text, score, parsed", [
    ("<think>ok</think><answer>7</answer>", 6 / 9, True),
    ("<answer>10</answer>", 1.0, True),
    ("<answer>1</answer>", 0.0, True),
    ("<answer>11</answer>", 0.0, False),
    ("<answer>7.5</answer>", 0.0, False),
    ("seven", 0.0, False),
])
def test_pointwise_parsing(text, score, parsed):
    v = parse_pointwise(text)
    assert v.score == pytest.approx(score, abs=1e-9) and v.parsed == parsed


def test_think_rm_judge_reward_exact_sign_or_nothing():
    assert think_rm_judge_reward("<answer>-2</answer>", -2) == 1.0
    assert think_rm_judge_reward("<answer>-1</answer>", -2) == 0.5
    assert think_rm_judge_reward("<answer>2</answer>", -2) == 0.0
    assert think_rm_judge_reward("<answer>4</answer>", 3) == 0.0
    assert think_rm_judge_reward("no verdict", 1) == 0.0


def test_clip_middle_keeps_both_ends():
    assert clip_middle("short", 100) == "short"
    cut = clip_middle("a" * 300 + "b" * 300, 200)
    assert cut.startswith("a" * 80) and cut.endswith("b" * 80) and "characters cut" in cut and len(cut) < 260


def _episode(group: int, actions: list[str]) -> Trajectory:
    turns = [Turn(observation=f"obs{k}", action=a) for k, a in enumerate(actions)]
    return Trajectory(env_id="e", seed=group, group_id=group, turns=turns)


def test_episode_text_interleaves_the_agent_and_the_env():
    assert episode_text(_episode(0, ["a", "b"])) == ("obs0", "[Agent]\na\n\n[Environment]\nobs1\n\n[Agent]\nb")


class FixedJudge:
    """Stands in for a model: pairwise strength = len(B) - len(A) (the longer answer wins), pointwise 0.25."""

    def compare(self, items):
        return [Verdict(float(len(b) - len(a)), True, "", "") for _, a, b in items]

    def rate(self, items):
        return [Verdict(0.25, True, "", "") for _ in items]


def test_pairwise_group_reward_by_hand():
    # group 0: three episodes (the third has two turns); group 1 alone
    episodes = [_episode(0, ["x"]), _episode(0, ["xx"]), _episode(0, ["xxx", "y"]), _episode(1, ["z"])]
    scores, verdicts = pairwise_scores(FixedJudge(), episodes)
    # the fixed judge's strength is the difference of the episode texts' lengths
    texts = [len(episode_text(t)[1]) for t in episodes]
    s = {(i, j): texts[j] - texts[i] for i, j in [(0, 1), (0, 2), (1, 2)]}
    d0 = (-s[0, 1] - s[0, 2]) / 2 / 3
    d1 = (s[0, 1] - s[1, 2]) / 2 / 3
    d2 = (s[0, 2] + s[1, 2]) / 2 / 3
    assert scores == [[pytest.approx(d0)], [pytest.approx(d1)], [0.0, pytest.approx(d2)], [0.0]]
    assert len(verdicts) == 3  # G(G-1)/2 calls for the group of 3, none for the group of 1
    assert sum(x[-1] for x in scores[:3]) == pytest.approx(0.0)  # antisymmetric: a group's scores sum to 0
    point, _ = pointwise_scores(FixedJudge(), episodes)
    assert point == [[0.25], [0.25], [0.0, 0.25], [0.25]]


def test_judge_batches_caches_and_repeats_itself(tiny, tmp_path):
    params = SamplingParams(temperature=1.0, max_new_tokens=6, seed=0)
    cache = JudgeCache(tmp_path / "cache.sqlite")
    judge = Judge(TransformersSampler(tiny.model, tiny.tokenizer, params, kv_cache_bytes=0), "tiny", cache)
    items = [("ctx", "answer one", "answer two"), ("ctx", "b", "a")]
    first = judge.compare(items)
    assert cache.misses == 2 and all(v.text.startswith("<think>\n") for v in first)
    again = judge.compare(items)
    assert again == first and cache.hits == 2  # from the cache
    cache.close()
    fresh = Judge(TransformersSampler(tiny.model, tiny.tokenizer, params, kv_cache_bytes=0), "tiny",
                  JudgeCache(tmp_path / "other.sqlite"))
    assert fresh.compare(items) == first  # the same batch samples the same way, even at temperature 1
    reopened = JudgeCache(tmp_path / "cache.sqlite")
    assert Judge(judge.sampler, "tiny", reopened).rate([("ctx", "answer one")])[0].parsed in (True, False)
    assert reopened.misses == 1 and reopened.hits == 0  # another kind of prompt


MIXED = ["algorithm.rewards.components=[{name: env}, {name: judge, model: tiny-random, weight: 0.5, max_new_tokens: 4},"
         " {name: judge_pairwise, model: tiny-random, max_new_tokens: 4, temperature: 1.0}, {name: checklist}]",
         f"env_id={PREF_CHARS}", "algorithm.group_size=3"]


def test_mixed_reward_run_logs_every_component_and_resumes_with_the_judge_cache(tmp_path):
    sets = ["steps=4", "checkpoint_every=2", *MIXED]
    straight = train(tiny_cfg(tmp_path / "straight", *sets))
    records = [r for r in read_records(straight.run_dir) if "charts/reward_mean" in r]
    assert all(math.isfinite(v) for r in records for v in r.values())
    for key in ("rewards/return_env", "rewards/return_judge", "rewards/return_judge_pairwise",
                "rewards/return_checklist", "rewards/judge_parsed_frac", "rewards/judge_cache_hits"):
        assert key in records[-1], key
    assert records[-1]["rewards/return_env"] > 0 and records[-1]["rewards/judge_cache_hits"] == 0
    assert (straight.run_dir / "judge_cache.sqlite").exists()

    cfg = tiny_cfg(tmp_path / "broken", *sets)
    resumed = crash_then_resume(cfg)
    assert_same_weights(straight, resumed)
    again = [r for r in read_records(resumed.run_dir) if "charts/reward_mean" in r]
    assert again[2]["rewards/judge_cache_hits"] > 0  # step 3 was judged before the crash: read back, not re-run
    keep = [k for k in records[-1] if k.startswith(("rewards/return", "losses/policy"))]
    assert [r[k] for r in records for k in keep] == pytest.approx([r[k] for r in again for k in keep], abs=1e-6)


def test_judge_components_need_a_real_model(tmp_path):
    from longhorizon.errors import ConfigError, UserError

    with pytest.raises(ConfigError, match="judge needs a model"):
        tiny_cfg(tmp_path, "algorithm.rewards.components=[{name: judge}]")
    with pytest.raises(ConfigError, match="env takes no model"):
        tiny_cfg(tmp_path, "algorithm.rewards.components=[{name: env, model: tiny-random}]")
    cfg = tiny_cfg(tmp_path, "algorithm.rewards.components=[{name: judge, model: /no/such/judge}]")
    with pytest.raises(UserError, match=r"components\[0\].model: unknown model '/no/such/judge'"):
        train(cfg)
    assert not (tmp_path / "run").exists()  # nothing was left behind


def test_checklist_component_pays_acerl_reward_on_the_last_turn():
    from longhorizon.feedback.checklist import checklist_reward
    from longhorizon.rollout import EpisodeSpec, run_episodes
    from longhorizon.rollout.policies import OraclePolicy
    from longhorizon.train.segment_rewards import SEGMENT_REWARDS

    (oracle,) = run_episodes([EpisodeSpec("longhorizon/LongWrite-v0", seed=3, env_kwargs={"horizon": 2})], OraclePolicy())
    scores = SEGMENT_REWARDS["checklist"](oracle)
    assert scores[:-1] == [0.0] * (len(oracle.turns) - 1) and scores[-1] == pytest.approx(1.0)  # the oracle meets all
    oracle.turns[-1].info["document"] = "too short"
    short = SEGMENT_REWARDS["checklist"](oracle)[-1]
    assert short == pytest.approx(checklist_reward(oracle.turns[-1].info)[0]) and short < 0.5
    assert SEGMENT_REWARDS["checklist"](_episode(0, ["a"])) == [0.0]  # an env without a checklist


class FixedRewardModel:
    """Stands in for a reward model: an episode scores its number of turns; prefix k scores 10 * (k + 1)."""

    def score_episodes(self, trajectories, systems):
        return [float(len(t.turns)) for t in trajectories]

    def score_turns(self, trajectories, systems):
        return [[10.0 * (k + 1) + (k == 1) for k in range(len(t.turns))] for t in trajectories]


def test_reward_model_scores_the_episode_or_each_turns_increase():
    from longhorizon.train.reward_sources import reward_model_scores

    episodes = [_episode(0, ["a", "b", "c"]), _episode(0, ["a"])]
    systems = lambda trajectories: [None] * len(trajectories)  # noqa: E731
    assert reward_model_scores(FixedRewardModel(), "episode", systems, episodes) == [[0.0, 0.0, 3.0], [1.0]]
    per_turn = reward_model_scores(FixedRewardModel(), "turn", systems, episodes)
    assert per_turn == [[10.0, 11.0, 9.0], [10.0]]  # prefix scores 10, 21, 30: increments that sum to 30


def test_a_trained_reward_model_is_a_reward_component(tiny, tmp_path):
    from longhorizon.feedback.reward_model import attach_score_head

    torch.manual_seed(0)
    attach_score_head(tiny.model, tiny.tokenizer, "reward_model").save_pretrained(tmp_path / "rm")
    tiny.tokenizer.save_pretrained(tmp_path / "rm")
    component = f"{{name: reward_model, model: {tmp_path / 'rm'}, per: turn}}"
    result = train(tiny_cfg(tmp_path, f"algorithm.rewards.components=[{component}]", f"env_id={PREF_CHARS}",
                            "algorithm.group_size=3"))
    records = [r for r in read_records(result.run_dir) if "charts/reward_mean" in r]
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["rewards/return_reward_model"] != 0.0 and math.isfinite(r["rewards/return_reward_model"]) for r in records)
    with pytest.raises(Exception, match="reward_model needs a model"):
        tiny_cfg(tmp_path, "algorithm.rewards.components=[{name: reward_model}]")
