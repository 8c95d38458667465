"""EMPG, EPO, SIREN, STEER, G-RA, EAPO and fine-grained mixes against numbers worked out by hand.

Edge cases from issue 16: zero entropy, a single token (or step), all tokens masked.
"""

from __future__ import annotations

import math

import pytest
import torch

from longhorizon.algorithms import (
    ENTROPY_FUNCTIONS,
    TURN_CREDIT_FUNCTIONS,
    eapo_round_rewards,
    empg_advantages,
    empg_step_weights,
    entropy_from_logits,
    epo_band_penalty,
    epo_loss,
    epo_phase_weight,
    gated_reward_accumulation,
    mix_segment_rewards,
    peak_entropy_mask,
    siren_loss,
    steer_weights,
    token_weights,
    topp_entropy,
)

ATOL = 1e-6


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


def close(actual, expected):
    expected = expected.to(torch.float64) if isinstance(expected, torch.Tensor) else t(expected)
    torch.testing.assert_close(actual.to(torch.float64), expected, atol=ATOL, rtol=0)


def test_registries_name_every_function():
    assert ENTROPY_FUNCTIONS["steer_weights"] is steer_weights and ENTROPY_FUNCTIONS["siren_loss"] is siren_loss
    assert TURN_CREDIT_FUNCTIONS["gated_reward_accumulation"] is gated_reward_accumulation


# ------------------------------------------------------------------ EMPG


def test_empg_weights_min_max_normalise_and_self_calibrate():
    # valid step entropies 0, 1, 2 -> H_norm 0, 0.5, 1; exp(-H_norm) = 1, e^-.5, e^-1
    (g, f_next), m = empg_step_weights(t([[0.0, 1.0], [2.0, 7.0]]), t([[1, 1], [1, 0]]))
    e = [1.0, math.exp(-0.5), math.exp(-1.0)]
    mean = sum(e) / 3
    close(g, [[e[0] / mean, e[1] / mean], [e[2] / mean, 0.0]])
    close(f_next, [[math.exp(-0.5), 0.0], [0.0, 0.0]])  # bonus = f(H) of the NEXT step; last steps get none
    assert m["modulation_mean"] == pytest.approx(1.0, abs=ATOL)
    assert m["bonus_mean"] == pytest.approx(math.exp(-0.5), abs=ATOL)


def test_empg_k_sharpens_the_modulation():
    (g, _), _ = empg_step_weights(t([[0.0, 2.0]]), t([[1, 1]]), k=2.0)
    mean = (1 + math.exp(-2.0)) / 2
    close(g, [[1 / mean, math.exp(-2.0) / mean]])


def test_empg_zero_and_constant_entropy_give_g_one():
    for h in (0.0, 1.7):
        (g, f_next), m = empg_step_weights(t([[h, h, h]]), t([[1, 1, 1]]))
        close(g, [[1.0, 1.0, 1.0]])
        close(f_next, [[1.0, 1.0, 0.0]])
        assert m["modulation_std"] == pytest.approx(0.0, abs=ATOL)


def test_empg_single_step_and_all_masked():
    (g, f_next), _ = empg_step_weights(t([[0.3]]), t([[1]]))
    close(g, [[1.0]])
    close(f_next, [[0.0]])
    (g, f_next), m = empg_step_weights(t([[0.3, 0.4]]), t([[0, 0]]))
    close(g, [[0.0, 0.0]])
    assert m["modulation_mean"] == 0.0


def test_empg_advantages_scale_and_add_the_bonus():
    adv, m = empg_advantages(t([[2.0, 2.0, 9.0]]), t([[1.5, 0.5, 1.0]]), t([[1.0, 0.0, 1.0]]), t([[1, 1, 0]]), zeta=0.1)
    close(adv, [[3.1, 1.0, 0.0]])  # 1.5*2 + 0.1*1, 0.5*2 + 0, masked -> 0
    assert m["adv_before_mean"] == pytest.approx(2.0) and m["adv_after_mean"] == pytest.approx(2.05)


def test_empg_with_g_one_and_no_bonus_is_the_identity():
    a = t([[0.7, -0.2], [1.3, 0.0]])
    mask = t([[1, 1], [1, 0]])
    adv, _ = empg_advantages(a, torch.ones_like(a), torch.ones_like(a), mask, zeta=0.0)
    assert torch.equal(adv, a * mask)


def test_empg_normalize_whitens():
    adv, _ = empg_advantages(t([[1.0, 3.0]]), t([[1.0, 1.0]]), t([[0.0, 0.0]]), t([[1, 1]]), normalize=True)
    close(adv, [[-1.0 / math.sqrt(1 + 1e-8), 1.0 / math.sqrt(1 + 1e-8)]])


# ------------------------------------------------------------------ EPO


def test_epo_phase_weight():
    assert epo_phase_weight(0) == pytest.approx(1.0, abs=ATOL)
    assert epo_phase_weight(75) == pytest.approx(1 - 0.2 * (1 - math.exp(-2)), abs=ATOL)  # 0.827067
    assert epo_phase_weight(100) == pytest.approx(0.8 * math.exp(-1), abs=ATOL)  # p = 25/75
    assert epo_phase_weight(150) == pytest.approx(0.8 * math.exp(-3), abs=ATOL)


def test_epo_band_penalty_marks_tokens_outside_the_band():
    penalty, m = epo_band_penalty(t([[0.5, 1.5, 3.0, 9.0, 0.0]]), t([[1.0, 1.0, 1.0, 1.0, 1.0]]),
                                  torch.tensor([[True, True, True, False, True]]), t([[1, 1, 1, 1, 0]]),
                                  r_min=0.8, r_max=2.0, beta_out=0.1)
    close(penalty, [[0.1, 0.0, 0.1, 0.0, 0.0]])  # no history -> 0; masked -> 0
    assert m["in_band_frac"] == pytest.approx(1 / 3)


def test_epo_band_penalty_zero_entropy_and_all_masked():
    penalty, _ = epo_band_penalty(t([[0.0]]), t([[0.0]]), torch.tensor([[True]]), t([[1]]), r_min=0.0, r_max=2.0)
    close(penalty, [[0.1]])  # 0 < 0 < 0 is false: out of band
    penalty, m = epo_band_penalty(t([[0.5]]), t([[1.0]]), torch.tensor([[True]]), t([[0]]))
    close(penalty, [[0.0]])
    assert m["in_band_frac"] == 0.0


def test_epo_loss_value_and_gradient():
    entropy = t([[1.0, 2.0], [3.0, 0.0]]).requires_grad_()
    mask = t([[1, 1], [1, 0]])
    w = token_weights(mask, None, "token-mean").double()  # 1/3 on the valid tokens
    loss, m = epo_loss(entropy, t([[0.1, 0.0], [0.1, 0.0]]), w, coef=0.5, smooth_coef=1.0, phase_weight=0.5)
    # -0.5 * (Hbar 2 - 1 * 0.5 * P 0.2/3)
    assert loss.item() == pytest.approx(-0.5 * (2 - 0.5 * 0.2 / 3), abs=ATOL)
    loss.backward()
    close(entropy.grad, [[-0.5 / 3, -0.5 / 3], [-0.5 / 3, 0.0]])  # the band penalty carries no gradient
    off, _ = epo_loss(entropy, t([[0.1, 0.0], [0.1, 0.0]]), w, coef=0.5, smooth_on=False)
    assert off.item() == pytest.approx(-1.0, abs=ATOL) and m["phase_weight"] == 0.5


# ------------------------------------------------------------------ SIREN


def logits_of(probs):
    return torch.log(t(probs))


def test_topp_entropy_keeps_tokens_below_p_and_renormalises():
    logits = logits_of([[0.5, 0.25, 0.15, 0.1]])
    close(topp_entropy(logits, p=0.8), [-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))])  # cum .5, .75 < .8
    q = [0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9]
    close(topp_entropy(logits, p=0.95), [-sum(x * math.log(x) for x in q)])
    close(topp_entropy(logits, p=1.01), entropy_from_logits(logits))  # the whole vocabulary
    close(topp_entropy(logits, p=0.8, top_k=1), [0.0])  # only the top token ranked: a single token


def test_topp_entropy_empty_nucleus_and_zero_entropy_are_zero_with_finite_gradient():
    logits = torch.stack([logits_of([0.9, 0.05, 0.05]), t([10.0, -math.inf, -math.inf])]).requires_grad_()
    h = topp_entropy(logits, p=0.8)
    close(h, [0.0, 0.0])
    h.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_peak_entropy_mask_keeps_the_top_quantile_per_row():
    entropy = t([[1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 99.0, 3.0, 99.0], [7.0, 0, 0, 0, 0], [1.0, 2, 3, 4, 5]])
    mask = t([[1, 1, 1, 1, 1], [1, 1, 0, 1, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    selected, m = peak_entropy_mask(entropy, mask, 0.8)
    # row 0: q = 4 + 0.2 * 1 = 4.2 -> {5}; row 1 (valid 1, 2, 3): q = 2.6 -> {3};
    # row 2: one token, q = 7, 7 > 7 false -> none; row 3: all masked -> none
    expected = torch.zeros(4, 5, dtype=torch.bool)
    expected[0, 4] = expected[1, 3] = True
    assert torch.equal(selected, expected)
    assert m["selected_frac"] == pytest.approx(2 / 9)


def test_peak_entropy_mask_zero_entropy_selects_nothing():
    selected, _ = peak_entropy_mask(t([[0.0, 0.0, 0.0]]), t([[1, 1, 1]]))
    assert not selected.any()


def test_siren_loss_value_and_gradient():
    entropy = t([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).requires_grad_()
    selected = torch.tensor([[False, True, True], [True, False, False]])
    loss, m = siren_loss(entropy, selected, anchor=1.25, coef=0.005)
    # Hsel = mean(2.5, 4) = 3.25 ; 0.005 * (3.25 - 1.25)^2 = 0.02
    assert loss.item() == pytest.approx(0.02, abs=ATOL) and m["selected_entropy"] == pytest.approx(3.25)
    loss.backward()
    # dL/dH = 2 * 0.005 * 2 * w, w = 1/4 on row 0's selected tokens, 1/2 on row 1's
    close(entropy.grad, [[0.0, 0.005, 0.005], [0.01, 0.0, 0.0]])


def test_siren_loss_with_nothing_selected_is_zero_without_gradient():
    entropy = t([[1.0, 2.0]]).requires_grad_()
    loss, _ = siren_loss(entropy, torch.zeros(1, 2, dtype=torch.bool), anchor=3.0)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(entropy.grad, torch.zeros(1, 2, dtype=torch.float64))


# ------------------------------------------------------------------ STEER


def test_steer_weights_by_hand():
    logp = torch.log(t([[0.5, 0.25, 0.3]]))
    lam, m = steer_weights(logp, logp, t([[1.0, 0.5, 0.0]]), t([[1.0, -2.0, 5.0]]), t([[1, 1, 0]]), lambda_min=0.8)
    omega1 = (1 / 0.5) * 0.5 * 0.5 * (math.log(0.5) + 1.0)  # 0.153426
    omega2 = abs((-2 / 0.25) * 0.25 * 0.75 * (math.log(0.25) + 0.5))  # 1.329442, the max
    k = -math.log(0.8) / omega2
    close(lam, [[math.exp(-k * omega1), 0.8, 1.0]])  # the largest |Omega| gets lambda_min; masked -> 1
    assert m["omega_abs_max"] == pytest.approx(omega2, abs=ATOL)


def test_steer_small_changes_use_the_floor_and_zero_advantage_gives_one():
    logp = torch.log(t([[0.5]]))
    lam, _ = steer_weights(logp, logp, t([[0.0]]), t([[0.01]]), t([[1]]))  # zero entropy, single token
    omega = (0.01 / 0.5) * 0.25 * abs(math.log(0.5))  # 0.003466 < floor 0.02
    close(lam, [[math.exp(math.log(0.8) / 0.02 * omega)]])
    lam, _ = steer_weights(logp, logp, t([[1.0]]), t([[0.0]]), t([[1]]))
    close(lam, [[1.0]])


def test_steer_all_masked_gives_ones():
    lam, m = steer_weights(t([[0.0, 0.0]]), t([[0.0, 0.0]]), t([[1.0, 1.0]]), t([[1.0, 1.0]]), t([[0, 0]]))
    close(lam, [[1.0, 1.0]])
    assert m["weight_mean"] == 0.0


# ------------------------------------------------------------------ G-RA, mixes, EAPO


def test_gra_drops_lower_rewards_of_episodes_whose_outcome_fails_the_gate():
    high = [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    low = [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]]
    gated, m = gated_reward_accumulation(t([high, low]), t([[1, 1, 1], [1, 1, 1]]), [1.0])
    close(gated, [high, [[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]])
    assert m["gated_frac"] == pytest.approx(0.5) and m["gate_open_frac"] == pytest.approx(0.5)


def test_gra_priorities_chain():
    # three levels, one episode: level 0 passes its gate, level 1 fails its own -> level 2 dropped
    comps = t([[[1.0, 0.0]], [[0.0, 0.2]], [[0.3, 0.3]]])
    gated, m = gated_reward_accumulation(comps, t([[1, 1]]), [1.0, 0.5])
    close(gated, [[[1.0, 0.0]], [[0.0, 0.2]], [[0.0, 0.0]]])
    assert m["gated_frac"] == pytest.approx(2 / 3)


def test_gra_open_gates_and_missing_turns():
    comps = t([[[0.0, 1.0, 5.0]], [[2.0, 3.0, 7.0]]])
    gated, m = gated_reward_accumulation(comps, t([[1, 1, 0]]), [-math.inf])
    close(gated, [[[0.0, 1.0, 0.0]], [[2.0, 3.0, 0.0]]])  # identity on valid turns, 0 on the missing one
    assert m["gated_frac"] == 0.0
    with pytest.raises(ValueError, match="one gate per component"):
        gated_reward_accumulation(comps, t([[1, 1, 0]]), [])


def test_mix_segment_rewards_weights_and_logs_each_component():
    dense, m = mix_segment_rewards(t([[[1.0, 0.0]], [[0.5, 0.5]]]), [2.0, -1.0], t([[1, 1]]), ["env", "format"])
    close(dense, [[1.5, -0.5]])
    assert m == pytest.approx({"return_env": 2.0, "return_format": -1.0})


def test_eapo_discounts_the_outcome_geometrically_back_from_the_last_round():
    rewards, m = eapo_round_rewards(t([1.0, 0.0, 1.0]), t([[1, 1, 1], [1, 1, 0], [1, 0, 0]]), 0.5)
    close(rewards, [[0.25, 0.5, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    assert m["round_reward_mean"] == pytest.approx((1.75 + 1.0) / 6)
