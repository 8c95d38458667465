"""Preference losses against values computed by hand (atol 1e-6), and DPO against TRL's formula.

Each loss: chosen better, rejected better, equal log-ratios, masked tokens, beta (or its analogue) at its limits.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from longhorizon.algorithms import (PAIRWISE_ADVANTAGES, PREFERENCE_LOSSES, PairLogps, geometric_mixture_logits,
                                    large_margin_pairs, pairwise_difference_advantages, seq_logps)

ATOL = 1e-6
INF = float("inf")


def t(*values, grad=False):
    return torch.tensor(values, dtype=torch.float64, requires_grad=grad)


def row(*values, grad=False):
    """A (1, T) leaf tensor."""
    return torch.tensor([values], dtype=torch.float64, requires_grad=grad)


PER_PAIR = {"preference", "chosen_reward", "rejected_reward"}


def sums(pc, pr, rc, rr, grad=True, **optional):
    """A batch of one pair from sequence sums, as (1, 1) token tensors; optional tensors given as floats."""
    opt = {k: t(v) if k in PER_PAIR else row(v) for k, v in optional.items()}
    ones = torch.ones(1, 1)
    return PairLogps(row(pc, grad=grad), row(pr, grad=grad), row(rc), row(rr), ones, ones, **opt)


def test_from_sums_matches_token_form():
    a = PairLogps.from_sums(t(-1.0, -2.0), t(-4.0, -1.0), t(-3.0, -3.0), t(-3.0, -3.0), preference=t(0.9, 0.1),
                            prev_chosen=t(0.0, 0.0))
    assert a.chosen.shape == (2, 1) and a.preference.shape == (2,) and a.prev_chosen.shape == (2, 1)
    assert PREFERENCE_LOSSES["dpo"](a)[0].item() == pytest.approx((softplus(-0.3) + softplus(0.1)) / 2, abs=ATOL)  # h = 3, -1


def softplus(x):
    return math.log1p(math.exp(x))


def test_registry_holds_every_method():
    assert set(PREFERENCE_LOSSES) == {"dpo", "ipo", "dno", "nash_md", "nash_mp", "inpo", "p3o_v1", "p3o_v2"}
    assert PAIRWISE_ADVANTAGES["think_rm"] is pairwise_difference_advantages


def test_seq_logps_ignores_masked_values_even_inf():
    x = t(-1.0, INF, -2.0, -INF).reshape(1, 4)
    assert seq_logps(x, torch.tensor([[1, 0, 1, 0]])).item() == -3.0


# ---------------------------------------------------------------- DPO


def test_dpo_chosen_better():
    # chosen log-ratio -1 - (-3) = 2, rejected -4 - (-3) = -1, margin 3; beta 0.1 -> -log sigmoid(0.3)
    batch = sums(-1.0, -4.0, -3.0, -3.0)
    loss, m = PREFERENCE_LOSSES["dpo"](batch, beta=0.1)
    assert loss.item() == pytest.approx(softplus(-0.3), abs=ATOL)
    assert m["chosen_logratio"] == pytest.approx(2.0) and m["rejected_logratio"] == pytest.approx(-1.0)
    assert m["chosen_reward"] == pytest.approx(0.2) and m["rejected_reward"] == pytest.approx(-0.1)
    assert m["reward_margin"] == pytest.approx(0.3) and m["pref_accuracy"] == 1.0
    loss.backward()
    # d/d pi_c of softplus(-beta h) = -beta sigmoid(-beta h); d/d pi_r = +beta sigmoid(-beta h)
    g = 0.1 / (1 + math.exp(0.3))
    assert batch.chosen.grad.item() == pytest.approx(-g, abs=ATOL)
    assert batch.rejected.grad.item() == pytest.approx(g, abs=ATOL)


def test_dpo_rejected_better():
    loss, m = PREFERENCE_LOSSES["dpo"](sums(-4.0, -1.0, -3.0, -3.0), beta=0.1)
    assert loss.item() == pytest.approx(softplus(0.3), abs=ATOL)
    assert m["pref_accuracy"] == 0.0 and m["reward_margin"] == pytest.approx(-0.3)


def test_dpo_equal_logratios():
    loss, m = PREFERENCE_LOSSES["dpo"](sums(-2.0, -5.0, -1.0, -4.0), beta=0.1)
    assert loss.item() == pytest.approx(math.log(2), abs=ATOL)
    assert m["reward_margin"] == 0.0 and m["pref_accuracy"] == 0.0  # ties count as wrong, as in TRL


def test_dpo_masked_tokens_do_not_count():
    # chosen tokens [-0.5, x, -0.5] with x masked; rejected [-1, -3]; ref chosen [-1, x, -2], ref rejected [-2, -2]
    mask_c = torch.tensor([[1, 0, 1]])
    batch = PairLogps(chosen=row(-0.5, INF, -0.5, grad=True), rejected=t(-1.0, -3.0).reshape(1, 2),
                      ref_chosen=t(-1.0, -INF, -2.0).reshape(1, 3), ref_rejected=t(-2.0, -2.0).reshape(1, 2),
                      chosen_mask=mask_c, rejected_mask=torch.ones(1, 2))
    loss, m = PREFERENCE_LOSSES["dpo"](batch, beta=0.5)
    # chosen lr = -1 - (-3) = 2, rejected lr = -4 - (-4) = 0, h = 2 -> softplus(-1)
    assert loss.item() == pytest.approx(softplus(-1.0), abs=ATOL)
    loss.backward()
    g = batch.chosen.grad[0]
    assert g[1].item() == 0.0 and g[0].item() == pytest.approx(-0.5 / (1 + math.e), abs=ATOL)


def test_dpo_beta_limits():
    zero, _ = PREFERENCE_LOSSES["dpo"](batch := sums(-1.0, -4.0, -3.0, -3.0), beta=0.0)
    assert zero.item() == pytest.approx(math.log(2), abs=ATOL)
    zero.backward()
    assert batch.chosen.grad.item() == 0.0
    big_good, _ = PREFERENCE_LOSSES["dpo"](sums(-1.0, -4.0, -3.0, -3.0), beta=1e3)
    big_bad, _ = PREFERENCE_LOSSES["dpo"](sums(-4.0, -1.0, -3.0, -3.0), beta=1e3)
    assert big_good.item() == pytest.approx(0.0, abs=ATOL)
    assert big_bad.item() == pytest.approx(3000.0, abs=ATOL)  # -log sigmoid(-3000) = 3000 + log(1 + e^-3000)


def trl_dpo_sigmoid_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    """TRL 1.16 `DPOTrainer._compute_loss` (trl/trainer/dpo_trainer.py, f_divergence_type "reverse_kl",
    loss_type "sigmoid", no weighting), on per-sequence log-prob sums, written out from its source."""
    chosen_logratios = chosen_logps - ref_chosen_logps
    rejected_logratios = rejected_logps - ref_rejected_logps
    delta_score = chosen_logratios - rejected_logratios
    per_sequence_loss = -F.logsigmoid(beta * delta_score)
    return per_sequence_loss.mean()


def test_dpo_loss_and_gradient_equal_trl():
    gen = torch.Generator().manual_seed(0)
    B, T = 8, 7
    tokens = lambda: -torch.rand(B, T, generator=gen, dtype=torch.float64) * 3  # noqa: E731
    mask_c, mask_r = (torch.rand(B, T, generator=gen) > 0.3 for _ in range(2))
    ours_c, ours_r = tokens().requires_grad_(), tokens().requires_grad_()
    ref_c, ref_r = tokens(), tokens()
    trl_c, trl_r = ours_c.detach().clone().requires_grad_(), ours_r.detach().clone().requires_grad_()
    batch = PairLogps(ours_c, ours_r, ref_c, ref_r, mask_c, mask_r)
    ours, _ = PREFERENCE_LOSSES["dpo"](batch, beta=0.1)
    # TRL sums per-token log-probs whose labels are -100 (masked) as 0: (logps * mask).sum(1)
    theirs = trl_dpo_sigmoid_loss((trl_c * mask_c).sum(1), (trl_r * mask_r).sum(1), (ref_c * mask_c).sum(1),
                                  (ref_r * mask_r).sum(1), beta=0.1)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(ours_c.grad, trl_c.grad, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours_r.grad, trl_r.grad, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- IPO


def test_ipo_sequence_sums_chosen_rejected_equal():
    ipo = PREFERENCE_LOSSES["ipo"]
    # beta 0.5 -> target 1/(2 beta) = 1
    assert ipo(sums(-1.0, -4.0, -3.0, -3.0), beta=0.5, length_normalize=False)[0].item() == pytest.approx(4.0)  # h=3
    assert ipo(sums(-4.0, -1.0, -3.0, -3.0), beta=0.5, length_normalize=False)[0].item() == pytest.approx(16.0)  # h=-3
    assert ipo(sums(-2.0, -2.0, -3.0, -3.0), beta=0.5, length_normalize=False)[0].item() == pytest.approx(1.0)  # h=0


def test_ipo_length_normalised_with_masked_tokens():
    # chosen: 2 counted tokens (one masked), lr = (-1 - -2) + (-1 - -1) = 1 -> 1/2; rejected: 4 tokens, lr = -2 -> -1/2
    batch = PairLogps(chosen=t(-1.0, 5.0, -1.0).reshape(1, 3), rejected=t(-1.0, -1.0, -1.0, -1.0).reshape(1, 4),
                      ref_chosen=t(-2.0, 0.0, -1.0).reshape(1, 3), ref_rejected=t(-0.5, -0.5, -0.5, -0.5).reshape(1, 4),
                      chosen_mask=torch.tensor([[1, 0, 1]]), rejected_mask=torch.ones(1, 4))
    loss, m = PREFERENCE_LOSSES["ipo"](batch, beta=0.25)  # target 2: (1 - 2)^2
    assert loss.item() == pytest.approx(1.0, abs=ATOL)
    assert m["chosen_logratio"] == pytest.approx(0.5) and m["rejected_logratio"] == pytest.approx(-0.5)


def test_ipo_beta_limits():
    # beta -> infinity: target 0, loss h^2; beta small: target huge
    assert PREFERENCE_LOSSES["ipo"](sums(-1.0, -4.0, -3.0, -3.0), beta=1e12,
                                    length_normalize=False)[0].item() == pytest.approx(9.0, abs=ATOL)
    assert PREFERENCE_LOSSES["ipo"](sums(-1.0, -4.0, -3.0, -3.0), beta=1e-3,
                                    length_normalize=False)[0].item() == pytest.approx((3 - 500) ** 2, abs=ATOL)


# ---------------------------------------------------------------- DNO


def test_dno_is_dpo_against_the_previous_iterate():
    # prev: chosen -2, rejected -3 -> lr 1 and -1, h = 2; the reference (-9) plays no part in the loss
    for pc, pr, expected in ((-1.0, -4.0, softplus(-0.2)), (-4.0, -1.0, softplus(0.4)), (-2.0, -3.0, math.log(2))):
        batch = sums(pc, pr, -9.0, -9.0, prev_chosen=-2.0, prev_rejected=-3.0)
        loss, m = PREFERENCE_LOSSES["dno"](batch, beta=0.1)
        assert loss.item() == pytest.approx(expected, abs=ATOL)
    assert PREFERENCE_LOSSES["dno"](sums(-1.0, -4.0, 0.0, 0.0, prev_chosen=-2.0, prev_rejected=-3.0),
                                    beta=0.0)[0].item() == pytest.approx(math.log(2), abs=ATOL)
    with pytest.raises(ValueError, match="prev_chosen"):
        PREFERENCE_LOSSES["dno"](sums(-1.0, -4.0, 0.0, 0.0), beta=0.1)


def test_large_margin_pairs():
    scores = torch.tensor([[1.0, 3.0, 2.0], [0.5, 0.5, 0.5], [0.0, 1.0, 0.2], [0.0, 0.9, 0.0]])
    best, worst, keep = large_margin_pairs(scores, min_margin=1.0)
    assert best.tolist() == [1, 0, 1, 1] and worst.tolist() == [0, 0, 0, 0]
    assert keep.tolist() == [True, False, True, False]
    assert large_margin_pairs(scores, 0.0)[2].tolist() == [True, False, True, True]  # never a tie


# ---------------------------------------------------------------- Nash-MD, Nash-MP


def nash_batch(p, extra_token=False, prev=None):
    """y's tokens [-1, -2] (ref [-1.5, -1]); with `extra_token`, a masked third token holding inf."""
    lp, ref, mask = [-1.0, -2.0], [-1.5, -1.0], [1, 1]
    if extra_token:
        lp, ref, mask = lp + [INF], ref + [-INF], mask + [0]
    opt = {} if prev is None else {"prev_chosen": t(*prev).reshape(1, -1)}
    return PairLogps(chosen=row(*lp, grad=True), rejected=t(-3.0).reshape(1, 1),
                     ref_chosen=t(*ref).reshape(1, -1), ref_rejected=t(-3.0).reshape(1, 1),
                     chosen_mask=torch.tensor([mask]), rejected_mask=torch.ones(1, 1), preference=t(p), **opt)


@pytest.mark.parametrize("p, expected", [(0.8, 0.15 + 0.9), (0.2, 0.15 - 0.9), (0.5, 0.15)])
@pytest.mark.parametrize("extra_token", [False, True])
def test_nash_md_by_hand(p, expected, extra_token):
    # token log-ratios [0.5, -1]: KL term 0.5*-1 + -1*-2 = 1.5 (x beta 0.1); sum log pi = -3: score (p - 0.5) * -3
    batch = nash_batch(p, extra_token)
    loss, m = PREFERENCE_LOSSES["nash_md"](batch, beta=0.1)
    assert loss.item() == pytest.approx(expected, abs=ATOL)
    assert m["preference_prob"] == pytest.approx(p) and m["kl"] == pytest.approx(-0.5)
    loss.backward()
    grad = batch.chosen.grad[0].tolist()
    assert grad[:2] == pytest.approx([0.1 * 0.5 - (p - 0.5), 0.1 * -1.0 - (p - 0.5)], abs=ATOL)
    assert grad[2:] == [0.0] * len(grad[2:])


def test_nash_md_beta_limits():
    assert PREFERENCE_LOSSES["nash_md"](nash_batch(0.8), beta=0.0)[0].item() == pytest.approx(0.9, abs=ATOL)
    assert PREFERENCE_LOSSES["nash_md"](nash_batch(0.8), beta=100.0)[0].item() == pytest.approx(150.9, abs=ATOL)


def test_geometric_mixture_logits():
    pi, ref = torch.tensor([0.2, 0.8]), torch.tensor([0.5, 0.5])
    policy_logits, ref_logits = pi.log() + 3.0, ref.log() - 1.0  # any per-position constant
    mix = geometric_mixture_logits(policy_logits, ref_logits, 0.5).exp()
    # sqrt(0.2*0.5) : sqrt(0.8*0.5) = 1 : 2
    torch.testing.assert_close(mix, torch.tensor([1 / 3, 2 / 3]), atol=ATOL, rtol=0)
    torch.testing.assert_close(geometric_mixture_logits(policy_logits, ref_logits, 0.0).exp(), pi, atol=ATOL, rtol=0)
    torch.testing.assert_close(geometric_mixture_logits(policy_logits, ref_logits, 1.0).exp(), ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("p, score", [(0.8, 0.9), (0.2, -0.9), (0.5, 0.0)])
def test_nash_mp_half_step_by_hand(p, score):
    # prev pi_k tokens [-1, -2.5]: log pi - log pi_k = [0, 0.5]; prox REINFORCE term 0 + 0.5*-2 = -1, / eta 2
    batch = nash_batch(p, extra_token=True, prev=[-1.0, -2.5, -INF])
    loss, m = PREFERENCE_LOSSES["nash_mp"](batch, beta=0.1, eta=2.0)
    assert loss.item() == pytest.approx(0.15 - 0.5 + score, abs=ATOL)
    assert m["kl_prev"] == pytest.approx(0.5)
    loss.backward()
    assert batch.chosen.grad[0].tolist() == pytest.approx([0.05 + 0.0 - (p - 0.5), -0.1 + 0.25 - (p - 0.5), 0.0])


def test_nash_mp_limits():
    prev = [-1.0, -2.5]
    huge_eta, _ = PREFERENCE_LOSSES["nash_mp"](nash_batch(0.8, prev=prev), beta=0.1, eta=1e12)
    md, _ = PREFERENCE_LOSSES["nash_md"](nash_batch(0.8), beta=0.1)
    assert huge_eta.item() == pytest.approx(md.item(), abs=ATOL)  # no proximal pull: Nash-MD without the mixture
    beta0, _ = PREFERENCE_LOSSES["nash_mp"](nash_batch(0.8, prev=prev), beta=0.0, eta=2.0)
    assert beta0.item() == pytest.approx(-0.5 + 0.9, abs=ATOL)


# ---------------------------------------------------------------- INPO


def inpo_batch(pc, pr, p=None):
    opt = {} if p is None else {"preference": p}
    return sums(pc, pr, -3.0, -3.0, prev_chosen=-2.5, prev_rejected=-4.0, **opt)


@pytest.mark.parametrize("pc, pr, p, expected", [
    (-2.0, -5.0, None, 1.25 ** 2),  # h = 3 - 0.5*0 - 0.5*1.5 = 2.25, target eta/2 = 1
    (-2.0, -5.0, 0.0, 3.25 ** 2),  # rejected better (soft label 0): target -1
    (-2.0, -5.0, 0.5, 2.25 ** 2),  # tie: target 0
    (-5.0, -2.0, None, (-3 - 0.75 - 1) ** 2),  # chosen has the lower log-prob: h = -3 - 0.75
    (-3.0, -4.5, None, (0.75 - 1.0) ** 2),  # equal log-ratios to the reference: h = 1.5 - 0.75
])
def test_inpo_by_hand(pc, pr, p, expected):
    loss, _ = PREFERENCE_LOSSES["inpo"](inpo_batch(pc, pr, p), eta=2.0, tau=0.25)
    assert loss.item() == pytest.approx(expected, abs=ATOL)


def test_inpo_limits():
    # eta*tau = 1: IPO with beta = 1/eta on sequence sums; eta*tau = 0: only the previous iterate anchors
    inpo, _ = PREFERENCE_LOSSES["inpo"](inpo_batch(-2.0, -5.0), eta=2.0, tau=0.5)
    ipo, _ = PREFERENCE_LOSSES["ipo"](inpo_batch(-2.0, -5.0), beta=0.5, length_normalize=False)
    assert inpo.item() == pytest.approx(ipo.item(), abs=ATOL) and inpo.item() == pytest.approx(4.0)
    assert PREFERENCE_LOSSES["inpo"](inpo_batch(-2.0, -5.0), eta=2.0, tau=0.0)[0].item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="eta \\* tau"):
        PREFERENCE_LOSSES["inpo"](inpo_batch(-2.0, -5.0), eta=2.0, tau=1.0)


# ---------------------------------------------------------------- P3O


def p3o_batch(r1, r2, ref=(-9.0, -9.0)):
    # log-ratios to pi_old: y1 +0.1, y2 -0.2
    return sums(-2.0, -3.0, ref[0], ref[1], old_chosen=-2.1, old_rejected=-2.8, chosen_reward=r1, rejected_reward=r2)


def test_p3o_separate_by_hand():
    rho1, rho2 = math.exp(0.1), math.exp(-0.2)
    loss, m = PREFERENCE_LOSSES["p3o_v1"](batch := p3o_batch(1.0, 0.0), clip=0.2)
    assert loss.item() == pytest.approx(-(0.5 * rho1 - 0.5 * rho2), abs=ATOL)  # nothing clipped
    assert m["clip_frac"] == 0.0 and m["reward_diff"] == pytest.approx(1.0)
    loss.backward()
    assert batch.chosen.grad.item() == pytest.approx(-0.5 * rho1, abs=ATOL)
    assert batch.rejected.grad.item() == pytest.approx(0.5 * rho2, abs=ATOL)
    clipped, m = PREFERENCE_LOSSES["p3o_v1"](batch := p3o_batch(1.0, 0.0), clip=0.1)
    assert clipped.item() == pytest.approx(-(0.5 * 1.1 - 0.5 * 0.9), abs=ATOL) and m["clip_frac"] == 1.0
    clipped.backward()
    assert batch.chosen.grad.item() == 0.0 and batch.rejected.grad.item() == 0.0
    worse, _ = PREFERENCE_LOSSES["p3o_v1"](p3o_batch(0.0, 1.0), clip=0.1)  # rejected better
    assert worse.item() == pytest.approx(-(-0.5 * rho1 + 0.5 * rho2), abs=ATOL)  # min takes both unclipped


def test_p3o_joint_by_hand():
    rho = math.exp(0.3)
    loss, m = PREFERENCE_LOSSES["p3o_v2"](batch := p3o_batch(1.0, 0.0), clip=0.2)
    assert loss.item() == pytest.approx(-0.5 * 1.2, abs=ATOL) and m["clip_frac"] == 1.0
    loss.backward()
    assert batch.chosen.grad.item() == 0.0
    loss, m = PREFERENCE_LOSSES["p3o_v2"](batch := p3o_batch(0.0, 1.0), clip=0.2)
    assert loss.item() == pytest.approx(0.5 * rho, abs=ATOL) and m["clip_frac"] == 0.0
    loss.backward()
    assert batch.chosen.grad.item() == pytest.approx(0.5 * rho, abs=ATOL)
    assert batch.rejected.grad.item() == pytest.approx(-0.5 * rho, abs=ATOL)


@pytest.mark.parametrize("name", ["p3o_v1", "p3o_v2"])
def test_p3o_equal_rewards_and_kl_limits(name):
    loss, _ = PREFERENCE_LOSSES[name](batch := p3o_batch(0.5, 0.5), clip=0.2)
    assert loss.item() == 0.0
    loss.backward()
    assert batch.chosen.grad.item() == 0.0
    # kl_coef 1 with ref -2.5 on both: r1 = 1 - (-2.1 + 2.5) = 0.6, r2 = 0 - (-2.8 + 2.5) = 0.3
    shaped, m = PREFERENCE_LOSSES[name](p3o_batch(1.0, 0.0, ref=(-2.5, -2.5)), clip=10.0, kl_coef=1.0)
    assert m["reward_diff"] == pytest.approx(0.3, abs=ATOL)
    unclipped = {"p3o_v1": -(0.15 * math.exp(0.1) - 0.15 * math.exp(-0.2)), "p3o_v2": -0.15 * math.exp(0.3)}
    assert shaped.item() == pytest.approx(unclipped[name], abs=ATOL)
    assert PREFERENCE_LOSSES[name](p3o_batch(1.0, 0.0, ref=(-2.5, -2.5)), clip=10.0,
                                   kl_coef=0.0)[1]["reward_diff"] == pytest.approx(1.0)


def test_p3o_on_policy_gradient_is_the_pairwise_policy_gradient():
    for name in ("p3o_v1", "p3o_v2"):
        batch = sums(-2.0, -3.0, 0.0, 0.0, old_chosen=-2.0, old_rejected=-3.0, chosen_reward=2.0, rejected_reward=0.5)
        PREFERENCE_LOSSES[name](batch, clip=0.2)[0].backward()
        assert (batch.chosen.grad.item(), batch.rejected.grad.item()) == pytest.approx((-0.75, 0.75), abs=ATOL)


# ---------------------------------------------------------------- Think-RM


def test_pairwise_difference_advantages_by_hand():
    # s01 = -2 (y0 better), s02 = -1 (y0 better), s12 = +1 (y2 better); lower triangle is ignored
    scores = torch.tensor([[[0.0, -2.0, -1.0], [7.0, 0.0, 1.0], [7.0, 7.0, 0.0]]], dtype=torch.float64)
    adv, m = pairwise_difference_advantages(scores)
    # d rows sum to 3, -3, 0 -> /G = 1, -1, 0; sum d^2 = 12, / (2*3*2) = 1
    torch.testing.assert_close(adv, torch.tensor([[1.0, -1.0, 0.0]], dtype=torch.float64) / math.sqrt(1 + 1e-6))
    assert m["pairwise_scale"] == pytest.approx(math.sqrt(1 + 1e-6))


def test_pairwise_difference_reduces_to_grpo_for_transitive_scores():
    r = torch.tensor([0.3, 1.2, -0.7, 0.1], dtype=torch.float64)
    scores = (r.unsqueeze(0) - r.unsqueeze(1)).unsqueeze(0)  # s_ij = r_j - r_i: negative when y_i is better
    adv, _ = pairwise_difference_advantages(scores, eps=0.0)
    torch.testing.assert_close(adv[0], (r - r.mean()) / r.std(), atol=ATOL, rtol=0)


def test_pairwise_difference_antisymmetrize_averages_both_orders():
    s = torch.tensor([[[0.0, -2.0], [1.0, 0.0]]])  # judged (0, 1): -2; judged (1, 0): +1 -> s01 = (-2 - 1)/2 = -1.5
    adv, _ = pairwise_difference_advantages(s, antisymmetrize=True, eps=0.0)
    # d01 = 1.5, d10 = -1.5: A = [0.75, -0.75] / sqrt(4.5 / 4)
    torch.testing.assert_close(adv, torch.tensor([[0.75, -0.75]]) / math.sqrt(4.5 / 4))


# ---------------------------------------------------------------- every loss: masked tokens


def random_batch(gen, B=4, Tc=5, Tr=3, pad=0):
    """Token tensors with every optional field; `pad` extra masked columns hold +inf / -inf."""
    def tok(T):
        x = -torch.rand(B, T, generator=gen, dtype=torch.float64) * 2
        return torch.cat([x, torch.full((B, pad), INF), torch.full((B, pad), -INF)], dim=1)

    def mask(T):
        m = torch.rand(B, T, generator=gen) > 0.2
        return torch.cat([m, torch.zeros(B, 2 * pad, dtype=torch.bool)], dim=1)

    c, r = tok(Tc).requires_grad_(), tok(Tr).requires_grad_()
    fields = dict(ref_chosen=tok(Tc), ref_rejected=tok(Tr), chosen_mask=mask(Tc), rejected_mask=mask(Tr),
                  prev_chosen=tok(Tc), prev_rejected=tok(Tr), old_chosen=tok(Tc), old_rejected=tok(Tr),
                  preference=torch.rand(B, generator=gen, dtype=torch.float64),
                  chosen_reward=torch.rand(B, generator=gen, dtype=torch.float64),
                  rejected_reward=torch.rand(B, generator=gen, dtype=torch.float64))
    return PairLogps(chosen=c, rejected=r, **fields)


@pytest.mark.parametrize("name", sorted(PREFERENCE_LOSSES))
def test_masked_tokens_change_neither_loss_nor_gradient(name):
    plain, padded = random_batch(torch.Generator().manual_seed(1)), random_batch(torch.Generator().manual_seed(1), pad=2)
    kw = {"clip": 0.05} if name.startswith("p3o") else {}
    (l1, m1), (l2, m2) = PREFERENCE_LOSSES[name](plain, **kw), PREFERENCE_LOSSES[name](padded, **kw)
    assert torch.isfinite(l2) and l1.item() == pytest.approx(l2.item(), abs=ATOL) and m1 == pytest.approx(m2)
    l1.backward()
    l2.backward()
    torch.testing.assert_close(padded.chosen.grad[:, :5], plain.chosen.grad, atol=ATOL, rtol=0)
    assert (padded.chosen.grad[:, 5:] == 0).all()
    if plain.rejected.grad is not None:  # Nash-MD / Nash-MP train on the policy sample only
        torch.testing.assert_close(padded.rejected.grad[:, :3], plain.rejected.grad, atol=ATOL, rtol=0)
        assert (padded.rejected.grad[:, 3:] == 0).all()


def test_dno_beta_large():
    batch = sums(-4.0, -1.0, 0.0, 0.0, prev_chosen=-2.0, prev_rejected=-3.0)  # h = -2 - 2 = -4
    assert PREFERENCE_LOSSES["dno"](batch, beta=1e3)[0].item() == pytest.approx(4000.0, abs=ATOL)
