"""Advantage estimators against numbers worked out by hand, plus loop-vs-vectorised checks."""

from __future__ import annotations

import math

import pytest
import torch

from longhorizon.algorithms.advantages import (
    ADVANTAGE_ESTIMATORS,
    broadcast_outcome,
    discounted_turn_returns,
    gae_advantages,
    grpo_advantages,
    kl_penalized_rewards,
    loop_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
    whiten,
)

ATOL = 1e-6


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


def close(actual, expected):
    torch.testing.assert_close(actual, t(expected, actual.dtype), atol=ATOL, rtol=0)


# ------------------------------------------------------------------ RLOO


def test_rloo_group_of_four():
    rewards = t([1.0, 2.0, 3.0, 6.0])
    adv, _ = rloo_advantages(rewards, torch.tensor([0, 0, 0, 0]))
    # A_i = R_i - mean of the other three:
    # 1 - (2+3+6)/3 = -8/3;  2 - (1+3+6)/3 = -4/3;  3 - (1+2+6)/3 = 0;  6 - (1+2+3)/3 = 4
    close(adv, [-8 / 3, -4 / 3, 0.0, 4.0])


def test_rloo_two_groups_interleaved():
    # group 5 = [1, 2, 3, 6] at even positions, group 2 = [0, 0, 1, 0] at odd positions
    rewards = t([1.0, 0.0, 2.0, 0.0, 3.0, 1.0, 6.0, 0.0])
    group_ids = torch.tensor([5, 2, 5, 2, 5, 2, 5, 2])
    adv, _ = rloo_advantages(rewards, group_ids)
    # group 2: 0 - 1/3, 0 - 1/3, 1 - 0/3, 0 - 1/3
    close(adv, [-8 / 3, -1 / 3, -4 / 3, -1 / 3, 0.0, 1.0, 4.0, -1 / 3])


def test_rloo_singleton_group_is_zero():
    adv, _ = rloo_advantages(t([3.0, 1.0, 2.0]), torch.tensor([0, 1, 1]))
    # singleton -> 0; pair [1, 2] -> 1 - 2 = -1, 2 - 1 = 1
    close(adv, [0.0, -1.0, 1.0])


# ------------------------------------------------------------------ GRPO


def test_grpo_with_std():
    adv, metrics = grpo_advantages(t([1.0, 2.0, 3.0, 6.0]), torch.tensor([0, 0, 0, 0]))
    # mean 3, deviations [-2, -1, 0, 3], unbiased var (4 + 1 + 0 + 9) / 3 = 14/3
    std = math.sqrt(14 / 3)
    close(adv, [-2 / (std + 1e-6), -1 / (std + 1e-6), 0.0, 3 / (std + 1e-6)])
    assert metrics["frac_zero_std_groups"] == 0.0


def test_dr_grpo_without_std():
    adv, _ = grpo_advantages(t([1.0, 2.0, 3.0, 6.0]), torch.tensor([0, 0, 0, 0]), scale_by_std=False)
    close(adv, [-2.0, -1.0, 0.0, 3.0])
    adv2, _ = ADVANTAGE_ESTIMATORS["dr_grpo"](t([1.0, 2.0, 3.0, 6.0]), torch.tensor([0, 0, 0, 0]))
    close(adv2, [-2.0, -1.0, 0.0, 3.0])


def test_grpo_singleton_and_flat_groups_no_nan():
    rewards = t([5.0, 1.0, 1.0, 0.0, 1.0])
    group_ids = torch.tensor([9, 4, 4, 0, 0])
    adv, metrics = grpo_advantages(rewards, group_ids)
    # group 9 has one sample -> 0; group 4 all equal -> 0 / (0 + eps) = 0
    # group 0: [0, 1], mean 0.5, unbiased std sqrt(0.5)
    s = math.sqrt(0.5) + 1e-6
    close(adv, [0.0, 0.0, 0.0, -0.5 / s, 0.5 / s])
    assert not torch.isnan(adv).any()
    assert metrics["frac_zero_std_groups"] == pytest.approx(2 / 3, abs=ATOL)


# ------------------------------------------------------------------ LOOP


def test_loop_keep_mask_threshold():
    # group 0: [0, 0, 0, 0.024]: LOO -> -0.024/3 = -0.008 (x3), 0.024 - 0 = 0.024
    # group 1: [1, 0]: LOO -> 1, -1
    rewards = t([0.0, 0.0, 0.0, 0.024, 1.0, 0.0])
    group_ids = torch.tensor([0, 0, 0, 0, 1, 1])
    (adv, keep), metrics = loop_advantages(rewards, group_ids, abs_threshold=0.01)
    close(adv, [-0.008, -0.008, -0.008, 0.024, 1.0, -1.0])
    assert keep.tolist() == [False, False, False, True, True, True]
    assert metrics["frac_dropped"] == pytest.approx(0.5, abs=ATOL)
    (_, keep), metrics = loop_advantages(rewards, group_ids, abs_threshold=0.005)
    assert keep.all() and metrics["frac_dropped"] == 0.0
    (_, keep), metrics = loop_advantages(rewards, group_ids, abs_threshold=1.5)
    assert not keep.any() and metrics["frac_dropped"] == pytest.approx(1.0)


def test_loop_normalize_std_biased():
    rewards = t([1.0, 2.0, 3.0, 6.0])
    (adv, keep), _ = loop_advantages(rewards, torch.tensor([0, 0, 0, 0]), normalize_std=True)
    # biased std: sqrt((4 + 1 + 0 + 9) / 4) = sqrt(3.5); LOO adv from test_rloo_group_of_four
    s = math.sqrt(3.5)
    close(adv, [-8 / 3 / s, -4 / 3 / s, 0.0, 4 / s])
    assert keep.tolist() == [True, True, False, True]


# ------------------------------------------------------------------ GAE


def test_gae_three_steps():
    rewards = t([[0.0, 0.0, 1.0]])
    values = t([[0.5, 0.6, 0.7]])
    mask = t([[1.0, 1.0, 1.0]])
    (adv, ret), _ = gae_advantages(rewards, values, mask, gamma=0.9, lam=0.8)
    # delta2 = 1 + 0.9*0   - 0.7 = 0.3
    # delta1 = 0 + 0.9*0.7 - 0.6 = 0.03
    # delta0 = 0 + 0.9*0.6 - 0.5 = 0.04
    # A2 = 0.3; A1 = 0.03 + 0.72*0.3 = 0.246; A0 = 0.04 + 0.72*0.246 = 0.21712
    close(adv, [[0.21712, 0.246, 0.3]])
    close(ret, [[0.21712 + 0.5, 0.246 + 0.6, 0.3 + 0.7]])


def test_gae_skips_masked_gap_and_trailing_padding():
    # same 3 valid steps as above, with env tokens (garbage reward/value) between them and padding after
    rewards = t([[0.0, 50.0, 0.0, -7.0, 1.0, 3.0]])
    values = t([[0.5, 99.0, 0.6, -99.0, 0.7, 42.0]])
    mask = t([[1, 0, 1, 0, 1, 0]])
    (adv, ret), _ = gae_advantages(rewards, values, mask, gamma=0.9, lam=0.8)
    close(adv, [[0.21712, 0.0, 0.246, 0.0, 0.3, 0.0]])
    close(ret, [[0.71712, 0.0, 0.846, 0.0, 1.0, 0.0]])


def test_gae_matches_per_row_loop():
    g = torch.Generator().manual_seed(0)
    B, T, gamma, lam = 5, 9, 0.95, 0.9
    rewards = torch.randn(B, T, generator=g, dtype=torch.float64)
    values = torch.randn(B, T, generator=g, dtype=torch.float64)
    mask = torch.rand(B, T, generator=g) > 0.3
    mask[0] = False  # a row with no valid token
    (adv, ret), _ = gae_advantages(rewards, values, mask, gamma=gamma, lam=lam)
    for b in range(B):
        idx = [i for i in range(T) if mask[b, i]]
        last_gae, expected = 0.0, {}
        for k in reversed(range(len(idx))):
            v_next = values[b, idx[k + 1]].item() if k + 1 < len(idx) else 0.0
            delta = rewards[b, idx[k]].item() + gamma * v_next - values[b, idx[k]].item()
            last_gae = delta + gamma * lam * last_gae
            expected[idx[k]] = last_gae
        for i in range(T):
            assert adv[b, i].item() == pytest.approx(expected.get(i, 0.0), abs=ATOL)
            want_ret = expected[i] + values[b, i].item() if i in expected else 0.0
            assert ret[b, i].item() == pytest.approx(want_ret, abs=ATOL)


# ------------------------------------------------------------------ REINFORCE++


def test_kl_penalized_rewards_and_reinforce_pp():
    outcome = t([1.0, 0.5])
    logprobs = t([[-1.0, -2.0, -0.5], [-1.0, -1.0, 9.0]])
    ref_logprobs = t([[-1.5, -2.0, -1.0], [-0.5, -1.0, -9.0]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    rewards = kl_penalized_rewards(outcome, logprobs, ref_logprobs, mask, kl_coef=0.1)
    # k1 = logp - ref: row0 [0.5, 0, 0.5], row1 [-0.5, 0, (masked)]
    # row0: [-0.05, 0, -0.05 + 1]; row1: outcome 0.5 goes on its last valid token (index 1)
    close(rewards, [[-0.05, 0.0, 0.95], [0.05, 0.5, 0.0]])

    adv, _ = reinforce_pp_advantages(rewards, mask, gamma=1.0)
    # returns-to-go: row0 [0.9, 0.95, 0.95]; row1 [0.55, 0.5, -]
    # mean over 5 valid = 3.85 / 5 = 0.77; deviations [0.13, 0.18, 0.18, -0.22, -0.27]
    # biased var = (0.0169 + 0.0324 + 0.0324 + 0.0484 + 0.0729) / 5 = 0.0406
    s = math.sqrt(0.0406 + 1e-8)
    close(adv, [[0.13 / s, 0.18 / s, 0.18 / s], [-0.22 / s, -0.27 / s, 0.0]])


def test_reinforce_pp_discount():
    rewards = t([[-0.05, 0.0, 0.95]])
    mask = t([[1, 1, 1]])
    adv, metrics = reinforce_pp_advantages(rewards, mask, gamma=0.5)
    # G2 = 0.95; G1 = 0 + 0.5*0.95 = 0.475; G0 = -0.05 + 0.5*0.475 = 0.1875
    # mean = 1.6125/3 = 0.5375; devs [-0.35, -0.0625, 0.4125]
    # var = (0.1225 + 0.00390625 + 0.17015625) / 3 = 0.29656250 / 3
    s = math.sqrt(0.2965625 / 3 + 1e-8)
    close(adv, [[-0.35 / s, -0.0625 / s, 0.4125 / s]])
    assert metrics["return_mean"] == pytest.approx(0.5375, abs=ATOL)


def test_whiten_ignores_masked():
    x = t([[1.0, 1000.0, 3.0]])
    out = whiten(x, t([[1, 0, 1]]))
    # mean 2, biased var 1
    close(out, [[-1 / math.sqrt(1 + 1e-8), 0.0, 1 / math.sqrt(1 + 1e-8)]])


# ------------------------------------------------------------------ turns


def test_discounted_turn_returns_with_missing_turn():
    turn_rewards = t([[1.0, 2.0, 3.0], [1.0, 99.0, 2.0]])
    turn_mask = t([[1, 1, 1], [1, 0, 1]])
    out = discounted_turn_returns(turn_rewards, turn_mask, gamma=0.5)
    # row0: G2 = 3; G1 = 2 + 0.5*3 = 3.5; G0 = 1 + 0.5*3.5 = 2.75
    # row1: turn 1 missing -> G2 = 2; G0 = 1 + 0.5*2 = 2
    close(out, [[2.75, 3.5, 3.0], [2.0, 0.0, 2.0]])


def test_broadcast_outcome():
    out = broadcast_outcome(t([1.0, 0.5]), t([[1, 1, 0], [1, 1, 1]]))
    close(out, [[1.0, 1.0, 0.0], [0.5, 0.5, 0.5]])


# ------------------------------------------------------------------ invariance: vectorised == loop


def _random_groups(seed: int):
    g = torch.Generator().manual_seed(seed)
    group_ids = torch.tensor([3, 10, 42, 7])[torch.randint(0, 4, (23,), generator=g)]
    rewards = torch.randn(23, generator=g, dtype=torch.float64)
    return rewards, group_ids


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rloo_and_grpo_match_python_loop(seed):
    rewards, group_ids = _random_groups(seed)
    rloo, _ = rloo_advantages(rewards, group_ids)
    grpo, _ = grpo_advantages(rewards, group_ids)
    for i in range(len(rewards)):
        same = [rewards[j].item() for j in range(len(rewards)) if group_ids[j] == group_ids[i]]
        others = [rewards[j].item() for j in range(len(rewards)) if group_ids[j] == group_ids[i] and j != i]
        r = rewards[i].item()
        want_rloo = r - sum(others) / len(others) if others else 0.0
        mean = sum(same) / len(same)
        std = math.sqrt(sum((x - mean) ** 2 for x in same) / (len(same) - 1)) if len(same) > 1 else 0.0
        assert rloo[i].item() == pytest.approx(want_rloo, abs=ATOL)
        assert grpo[i].item() == pytest.approx((r - mean) / (std + 1e-6), abs=ATOL)


def test_registry_keys():
    assert set(ADVANTAGE_ESTIMATORS) == {"grpo", "dr_grpo", "rloo", "loop", "reinforce++", "gae"}
