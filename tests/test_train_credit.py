"""The trainer's wiring of episodes to advantages, on batches small enough to work out by hand.

The estimators themselves are tested in test_advantages.py; here: packing
(collate), turn → token mapping, multi-turn credit, token rewards, LOOP's filter,
micro-batch weighting and the learning-rate schedule.
"""

from __future__ import annotations

import pytest
import torch

from longhorizon.context import make_strategy
from longhorizon.train.batch import collate, minibatches
from longhorizon.train.config import AlgorithmConfig, load_config
from longhorizon.train.credit import ALGORITHMS, token_rewards
from longhorizon.train.optim import lr_factor
from longhorizon.algorithms import POLICY_LOSSES, token_weights
from longhorizon.types import Trajectory, Turn

ATOL = 1e-6


def episode(rewards: list[float], group: int = 0) -> Trajectory:
    """Two turns of a packed chat: prompt [1, 2], action [3, 4], template [5], action [6]."""
    turns = [Turn(observation="o0", action="a0", reward=rewards[0], prompt_ids=[1, 2], action_ids=[3, 4],
                  action_logprobs=[-0.1, -0.2]),
             Turn(observation="o1", action="a1", reward=rewards[1], prompt_ids=[1, 2, 3, 4, 5], action_ids=[6],
                  action_logprobs=[-0.3])]
    return Trajectory(env_id="test", seed=0, turns=turns, group_id=group)


def one_turn(reward: float, group: int = 0) -> Trajectory:
    turn = Turn(observation="o0", action="a0", reward=reward, prompt_ids=[1, 2], action_ids=[3],
                action_logprobs=[-0.5])
    return Trajectory(env_id="test", seed=0, turns=[turn], group_id=group)


def batch_of(*trajectories):
    return collate(list(trajectories), make_strategy("full"), pad_id=0)


def close(actual, expected):
    torch.testing.assert_close(actual.float(), torch.tensor(expected, dtype=torch.float), atol=ATOL, rtol=0)


def test_collate_packs_sampled_tokens_and_their_turns():
    batch = batch_of(episode([1.0, 0.0]), one_turn(1.0, group=1))
    close(batch.input_ids, [[1, 2, 3, 4, 5, 6], [1, 2, 3, 0, 0, 0]])
    close(batch.attention_mask, [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    close(batch.loss_mask, [[0, 0, 1, 1, 0, 1], [0, 0, 1, 0, 0, 0]])
    close(batch.old_logprobs, [[0, 0, -0.1, -0.2, 0, -0.3], [0, 0, -0.5, 0, 0, 0]])
    close(batch.token_turn, [[-1, -1, 0, 0, -1, 1], [-1, -1, 0, -1, -1, -1]])
    close(batch.turn_rewards, [[1, 0], [1, 0]])
    close(batch.turn_mask, [[1, 1], [1, 0]])
    close(batch.group_ids, [0, 1])


def test_outcome_credit_gives_the_episode_advantage_to_every_sampled_token():
    batch = batch_of(episode([1.0, 1.0]), episode([0.0, 1.0]))  # returns 2 and 1 → Dr.GRPO A = ±0.5
    credit = ALGORITHMS["grpo"].credit(batch, AlgorithmConfig(name="grpo", scale_by_std=False))
    close(credit.advantages, [[0, 0, 0.5, 0.5, 0, 0.5], [0, 0, -0.5, -0.5, 0, -0.5]])
    close(credit.loss_mask, batch.loss_mask.tolist())


def test_per_turn_credit_compares_turn_returns_within_the_group():
    # gamma 0.5: G = [1 + 0.5, 1] and [0 + 0.5, 1]; RLOO at turn 0: 1.5 - 0.5 = 1, 0.5 - 1.5 = -1; turn 1: 0, 0
    batch = batch_of(episode([1.0, 1.0]), episode([0.0, 1.0]))
    credit = ALGORITHMS["rloo"].credit(batch, AlgorithmConfig(name="rloo", credit="per_turn", turn_gamma=0.5))
    close(credit.advantages, [[0, 0, 1, 1, 0, 0], [0, 0, -1, -1, 0, 0]])


def test_token_rewards_place_credit_increments_at_turn_ends():
    batch = batch_of(episode([1.0, 1.0]), episode([0.0, 1.0]))
    per_turn = token_rewards(batch, AlgorithmConfig(name="ppo", credit="per_turn", turn_gamma=0.5))
    # G0 - G1 at the end of turn 0, G1 at the end of turn 1: the undiscounted return-to-go in turn k is G_k
    close(per_turn, [[0, 0, 0, 0.5, 0, 1], [0, 0, 0, -0.5, 0, 1]])
    outcome = token_rewards(batch, AlgorithmConfig(name="ppo"))
    close(outcome, [[0, 0, 0, 0, 0, 2], [0, 0, 0, 0, 0, 1]])


def test_token_rewards_subtract_the_kl_on_every_sampled_token():
    batch = batch_of(episode([0.0, 1.0]))
    batch.ref_logprobs = torch.where(batch.loss_mask > 0, batch.old_logprobs - 0.5, 0.0)  # log pi - log ref = 0.5
    rewards = token_rewards(batch, AlgorithmConfig(name="reinforce++", kl_coef=0.1, kl_estimator="k1"))
    close(rewards, [[0, 0, -0.05, -0.05, 0, 1 - 0.05]])


def test_loop_drops_rollouts_with_tiny_advantages():
    batch = batch_of(one_turn(1.0), one_turn(1.0), one_turn(0.0, group=1), one_turn(1.0, group=1))
    credit = ALGORITHMS["loop"].credit(batch, AlgorithmConfig(name="loop"))
    assert credit.loss_mask.sum(1).tolist() == [0, 0, 1, 1]  # group 0 has equal returns: |A| = 0 < 0.01
    close(credit.advantages[:, 2], [0, 0, -1, 1])


@pytest.mark.parametrize("agg,expected", [
    ("token-mean", [[1 / 3, 1 / 3, 0], [0, 1 / 3, 0], [0, 0, 0]]),
    ("seq-mean-token-mean", [[0.25, 0.25, 0], [0, 0.5, 0], [0, 0, 0]]),
    ("seq-mean-token-sum", [[0.5, 0.5, 0], [0, 0.5, 0], [0, 0, 0]]),
    ("trace-length", [[1 / 3, 1 / 3, 0], [0, 1 / 3, 0], [0, 0, 0]]),  # rows 0, 1 are one trace of 3 tokens
])
def test_token_weights_spread_what_the_aggregation_averages(agg, expected):
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    close(token_weights(mask, torch.tensor([7, 7, 8]), agg), expected)


def with_ref(batch, log_ratio_per_row):
    """Reference log-probs log pi_old - log_ratio on every sampled token of each row."""
    shift = torch.tensor(log_ratio_per_row)[:, None]
    batch.ref_logprobs = torch.where(batch.loss_mask > 0, batch.old_logprobs - shift, 0.0)
    return batch


def test_rloo_folds_the_k1_kl_into_the_sequence_reward():
    # episode 0: R = 2, 3 sampled tokens with log pi - log ref = 0.5: R - 0.1 * 1.5 = 1.85; episode 1: R = 1, KL 0
    batch = with_ref(batch_of(episode([1.0, 1.0]), episode([0.0, 1.0])), [0.5, 0.0])
    cfg = load_config(None, ["algorithm.name=rloo", "algorithm.kl_coef=0.1"]).algorithm
    assert cfg.kl_estimator == "k1" and cfg.aggregation == "seq-mean-token-sum"
    credit = ALGORITHMS["rloo"].credit(batch, cfg)
    close(credit.advantages, [[0, 0, 0.85, 0.85, 0, 0.85], [0, 0, -0.85, -0.85, 0, -0.85]])


def test_rloo_per_turn_credit_discounts_each_turns_kl_with_its_reward():
    # turn rewards minus 0.1 * turn KL: [1 - 0.1, 1 - 0.05] and [0, 1]; gamma 0.5: G = [1.375, 0.95], [0.5, 1]
    batch = with_ref(batch_of(episode([1.0, 1.0]), episode([0.0, 1.0])), [0.5, 0.0])
    cfg = load_config(None, ["algorithm.name=rloo", "algorithm.kl_coef=0.1", "algorithm.credit=per_turn",
                             "algorithm.turn_gamma=0.5"]).algorithm
    credit = ALGORITHMS["rloo"].credit(batch, cfg)
    close(credit.advantages, [[0, 0, 0.875, 0.875, 0, -0.05], [0, 0, -0.875, -0.875, 0, 0.05]])


def test_rloo_loss_weighs_each_sequence_one_over_b():
    # scores 2 - 0.15 = 1.85 and 0: A = +-1.85; sum log pi = -0.6 and -0.5:
    # loss = -(1/2) (1.85 * -0.6 - 1.85 * -0.5) = 0.0925 (token-mean would give 0.0462...)
    batch = with_ref(batch_of(episode([1.0, 1.0]), one_turn(0.0)), [0.5, 0.0])
    cfg = load_config(None, ["algorithm.name=rloo", "algorithm.kl_coef=0.1"]).algorithm
    credit = ALGORITHMS["rloo"].credit(batch, cfg)
    weights = token_weights(credit.loss_mask, batch.row_episode, cfg.aggregation)
    loss, _ = POLICY_LOSSES["reinforce"](batch.old_logprobs, batch.old_logprobs, credit.advantages,
                                         credit.loss_mask, weights=weights)
    assert loss.item() == pytest.approx(0.0925, abs=ATOL)


@pytest.mark.parametrize("key", ["epochs", "num_minibatches"])
def test_rloo_refuses_more_than_one_update_per_batch(key):
    from longhorizon.errors import ConfigError

    with pytest.raises(ConfigError, match=f"{key} must be 1 for rloo"):
        load_config(None, ["algorithm.name=rloo", f"{key}=2"])


def test_minibatches_cover_every_row_once():
    torch.manual_seed(0)
    parts = minibatches(torch.arange(10), 3)
    assert [len(p) for p in parts] == [4, 3, 3]
    assert sorted(torch.cat(parts).tolist()) == list(range(10))


def test_learning_rate_warms_up_then_follows_the_schedule():
    kw = {"warmup": 2, "total": 6, "min_ratio": 0.0}
    assert [lr_factor(u, schedule="constant", **kw) for u in range(4)] == [0.5, 1.0, 1.0, 1.0]
    cosine = [lr_factor(u, schedule="cosine", **kw) for u in range(2, 7)]
    close(torch.tensor(cosine), [1.0, 0.8535534, 0.5, 0.1464466, 0.0])
