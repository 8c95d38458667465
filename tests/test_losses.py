"""Losses and aggregations against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from longhorizon.algorithms.losses import (
    AGGREGATIONS,
    KL_ESTIMATORS,
    POLICY_LOSSES,
    aggregate,
    entropy_from_logits,
    kl_loss,
    kl_penalty,
    loop_loss,
    ppo_clip_loss,
    reinforce_loss,
    value_loss,
)

ATOL = 1e-6


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


def close(actual, expected):
    torch.testing.assert_close(actual, t(expected, actual.dtype), atol=ATOL, rtol=0)


# ------------------------------------------------------------------ PPO clip, eps = 0.2
# (ratio, A) -> -min(ratio*A, clip(ratio, 0.8, 1.2)*A), and whether the clip binds
PPO_CASES = {
    "upper_active": (1.5, 2.0, -2.4, True),  # min(3.0, 1.2*2 = 2.4) = 2.4
    "lower_active": (0.5, -1.0, 0.8, True),  # min(-0.5, 0.8*-1 = -0.8) = -0.8
    "inside_pos": (1.1, 1.0, -1.1, False),  # min(1.1, 1.1)
    "inside_neg": (0.9, -2.0, 1.8, False),  # min(-1.8, -1.8)
    "low_ratio_pos_adv": (0.5, 1.0, -0.5, False),  # min(0.5, 0.8) = 0.5: unclipped term used
    "high_ratio_neg_adv": (1.5, -1.0, 1.5, False),  # min(-1.5, -1.2) = -1.5: unclipped term used
}


@pytest.mark.parametrize("case", list(PPO_CASES))
def test_ppo_clip_single_token(case):
    ratio, adv, expected, binds = PPO_CASES[case]
    loss, metrics = ppo_clip_loss(t([[math.log(ratio)]]), t([[0.0]]), t([[adv]]), t([[1.0]]))
    assert loss.item() == pytest.approx(expected, abs=ATOL)
    assert metrics["clip_frac"] == (1.0 if binds else 0.0)


def test_ppo_clip_batch_loss_metrics_and_grad():
    ratios = [1.5, 0.5, 1.1, 0.9, 0.5, 1.5]
    advs = [2.0, -1.0, 1.0, -2.0, 1.0, -1.0]
    logprobs = t([[math.log(r) for r in ratios]]).requires_grad_()
    loss, m = ppo_clip_loss(logprobs, t([[0.0] * 6]), t([advs]), t([[1.0] * 6]))
    # (-2.4 + 0.8 - 1.1 + 1.8 - 0.5 + 1.5) / 6 = 0.1 / 6
    assert loss.item() == pytest.approx(0.1 / 6, abs=ATOL)
    assert m["clip_frac"] == pytest.approx(2 / 6, abs=ATOL)
    assert m["clip_frac_high"] == pytest.approx(1 / 6, abs=ATOL)
    assert m["clip_frac_low"] == pytest.approx(1 / 6, abs=ATOL)
    assert m["ratio_outside_band_frac"] == pytest.approx(4 / 6, abs=ATOL)
    assert m["ratio_mean"] == pytest.approx((1.5 + 0.5 + 1.1 + 0.9 + 0.5 + 1.5) / 6, abs=ATOL)
    # k1 = mean(old - new) = -mean(log r); k3 = mean(r - 1 - log r)
    logs = [math.log(1.5), math.log(0.5), math.log(1.1), math.log(0.9), math.log(0.5), math.log(1.5)]
    assert m["approx_kl_k1"] == pytest.approx(-sum(logs) / 6, abs=ATOL)
    k3 = [0.5 - logs[0], -0.5 - logs[1], 0.1 - logs[2], -0.1 - logs[3], -0.5 - logs[4], 0.5 - logs[5]]
    assert m["approx_kl"] == pytest.approx(sum(k3) / 6, abs=ATOL)
    loss.backward()
    # d/dlogp of -ratio*A is -A*ratio where the unclipped term is used, 0 where the clip binds
    close(logprobs.grad, [[0.0, 0.0, -1.1 / 6, 1.8 / 6, -0.5 / 6, 1.5 / 6]])


def test_ppo_approx_kl_to_behaviour_policy():
    # one token with ratio 2 (and one masked token that must not count)
    logprobs = t([[math.log(2.0), 0.0]])
    _, m = ppo_clip_loss(logprobs, t([[0.0, -3.0]]), t([[1.0, 1.0]]), t([[1, 0]]))
    assert m["approx_kl"] == pytest.approx(2.0 - 1.0 - math.log(2.0), abs=ATOL)  # k3: r - 1 - log r
    assert m["approx_kl_k1"] == pytest.approx(-math.log(2.0), abs=ATOL)  # old - new
    assert m["ratio_mean"] == pytest.approx(2.0, abs=ATOL)
    assert m["clip_frac"] == 1.0


def _masked_batch(garbage=None):
    """Small batch; `garbage = (logprob, old_logprob, advantage)` is written on masked tokens."""
    logprobs = t([[-1.0, -0.5, -2.0, -0.1], [-0.3, -0.7, -1.2, -0.9]])
    old = t([[-1.2, -0.4, -2.0, -0.3], [-0.3, -0.9, -1.0, -0.5]])
    adv = t([[1.0, -0.5, 2.0, 0.3], [-1.0, 0.7, 0.2, 1.5]])
    mask = torch.tensor([[True, True, False, False], [True, False, True, False]])
    for x, v in zip((logprobs, old, adv), garbage or ()):
        x[~mask] = v
    return logprobs.requires_grad_(), old, adv, mask


# exp(1e4 - -1e4) overflows to inf; NaN / inf advantages would poison the gradient (0 * inf = NaN)
GARBAGE = [(1e4, -1e4, math.nan), (math.nan, 0.0, math.inf), (-1e4, 1e4, -1e30)]


@pytest.mark.parametrize("garbage", GARBAGE)
@pytest.mark.parametrize("name", ["ppo_clip", "loop", "reinforce"])
@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_masked_tokens_contribute_nothing(name, agg, garbage):
    results = []
    for g in (None, garbage):
        logprobs, old, adv, mask = _masked_batch(g)
        loss, _ = POLICY_LOSSES[name](logprobs, old, adv, mask, agg=agg)
        loss.backward()
        results.append((loss.detach(), logprobs.grad))
    assert torch.isfinite(results[1][0])
    torch.testing.assert_close(results[0][0], results[1][0], atol=ATOL, rtol=0)
    torch.testing.assert_close(results[0][1], results[1][1], atol=ATOL, rtol=0)
    assert (results[1][1][~_masked_batch()[3]] == 0).all()


# ------------------------------------------------------------------ LOOP: clip to [1/1.1, 1.1]


def test_loop_asymmetric_bounds():
    # ratio 0.905 lies in (0.9, 1/1.1 = 0.90909...): LOOP clips it, PPO's 1 - eps would not
    loss, m = loop_loss(t([[math.log(0.905)]]), t([[0.0]]), t([[-1.0]]), t([[1.0]]), eps=0.1)
    assert loss.item() == pytest.approx(1 / 1.1, abs=ATOL)  # -min(-0.905, -1/1.1)
    assert m["clip_frac"] == 1.0
    sym, m_sym = ppo_clip_loss(
        t([[math.log(0.905)]]), t([[0.0]]), t([[-1.0]]), t([[1.0]]), clip_low=0.1, clip_high=0.1
    )
    assert sym.item() == pytest.approx(0.905, abs=ATOL) and m_sym["clip_frac"] == 0.0
    # upper bound 1.1: ratio 1.15, A = 1 -> -1.1
    loss, m = loop_loss(t([[math.log(1.15)]]), t([[0.0]]), t([[1.0]]), t([[1.0]]))
    assert loss.item() == pytest.approx(-1.1, abs=ATOL) and m["clip_frac"] == 1.0


def test_loop_default_aggregation_is_per_sequence_mean():
    logprobs = t([[math.log(1.15), math.log(0.905)], [math.log(0.95), 5.0]])
    advantages = t([[1.0, -1.0], [-1.0, 3.0]])
    mask = t([[1, 1], [1, 0]])
    loss, _ = loop_loss(logprobs, torch.zeros(2, 2, dtype=torch.float64), advantages, mask)
    # row0 tokens: -1.1 and 1/1.1; row1: 0.95 (inside band). Mean per row, then over rows.
    assert loss.item() == pytest.approx(((-1.1 + 1 / 1.1) / 2 + 0.95) / 2, abs=ATOL)


# ------------------------------------------------------------------ REINFORCE


def test_reinforce_loss_and_grad():
    logprobs = t([[-1.0, -2.0]]).requires_grad_()
    loss, _ = reinforce_loss(logprobs, t([[0.5, -1.0]]), t([[1, 1]]))
    # (-0.5*-1 + 1*-2) / 2 = (0.5 - 2) / 2
    assert loss.item() == pytest.approx(-0.75, abs=ATOL)
    loss.backward()
    close(logprobs.grad, [[-0.5 / 2, 1.0 / 2]])


# ------------------------------------------------------------------ KL


def test_kl_estimators_k1_k2_k3():
    logprobs = t([[-1.0, -2.0, 3.0]])
    ref = t([[-1.5, -1.0, 3.0]])
    mask = t([[1, 1, 0]])
    # log ratios: 0.5 and -1.0 (third token masked)
    close(kl_penalty(logprobs, ref, mask, estimator="k1"), [[0.5, -1.0, 0.0]])
    close(kl_penalty(logprobs, ref, mask, estimator="k2"), [[0.125, 0.5, 0.0]])
    # k3 = exp(ref - logp) - (ref - logp) - 1: exp(-0.5) + 0.5 - 1, exp(1) - 1 - 1
    close(kl_penalty(logprobs, ref, mask, estimator="k3"), [[math.exp(-0.5) - 0.5, math.e - 2.0, 0.0]])
    loss, m = kl_loss(logprobs, ref, mask, estimator="k3")
    assert loss.item() == pytest.approx((math.exp(-0.5) - 0.5 + math.e - 2.0) / 2, abs=ATOL)
    assert m["kl"] == pytest.approx(loss.item(), abs=ATOL)
    assert set(KL_ESTIMATORS) == {"k1", "k2", "k3"}


# ------------------------------------------------------------------ value loss


def test_value_loss_clipped():
    values = t([[1.0, 0.6, 1.0, 77.0]])
    old_values = t([[0.5, 0.5, 0.5, 0.0]])
    returns = t([[1.2, 0.0, 0.0, 0.0]])
    mask = t([[1, 1, 1, 0]])
    loss, m = value_loss(values, old_values, returns, mask, clip=0.2)
    # tok0: (1.0-1.2)^2 = 0.04 vs (0.7-1.2)^2 = 0.25 -> 0.5*0.25 = 0.125 (clipped term larger)
    # tok1: V moved 0.1 < 0.2, both 0.36                -> 0.18
    # tok2: (1.0-0)^2 = 1 vs (0.7-0)^2 = 0.49           -> 0.5
    assert loss.item() == pytest.approx((0.125 + 0.18 + 0.5) / 3, abs=ATOL)
    assert m["vf_clip_frac"] == pytest.approx(1 / 3, abs=ATOL)


# ------------------------------------------------------------------ entropy


def test_entropy_from_logits():
    logits = t(
        [
            [[0.0, math.log(3.0), -math.inf], [2.0, 2.0, 2.0]],
            [[1000.0, 0.0, 0.0], [0.0, 0.0, -math.inf]],
        ]
    )
    h = entropy_from_logits(logits)
    # p = [1/4, 3/4, 0]; uniform over 3; one-hot; uniform over 2
    close(h, [[-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), math.log(3.0)], [0.0, math.log(2.0)]])


# ------------------------------------------------------------------ aggregation

LOSS_TOK = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0], [50.0, 50.0, 50.0, 50.0]]
AGG_MASK = [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]]  # last row: no sampled token


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("token-mean", (1 + 2 + 5 + 6 + 7 + 8 + 9) / 7),  # 38 / 7
        ("seq-mean-token-mean", (1.5 + 6.5 + 9.0) / 3),  # row means, empty row ignored
        ("seq-mean-token-sum", (3.0 + 26.0 + 9.0) / 3),  # row sums
    ],
)
def test_aggregation_modes(mode, expected):
    assert aggregate(t(LOSS_TOK), t(AGG_MASK), mode).item() == pytest.approx(expected, abs=ATOL)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "trace-length"])
def test_aggregation_ignores_nan_on_masked_tokens(mode):
    mask = t(AGG_MASK)
    poisoned = t(LOSS_TOK).masked_fill(mask == 0, math.nan)
    trace_ids = torch.tensor([7, 3, 7, 11])
    want = aggregate(t(LOSS_TOK), mask, mode, trace_ids=trace_ids)
    got = aggregate(poisoned, mask, mode, trace_ids=trace_ids)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_trace_length_two_traces_three_chunks():
    # trace 7 = rows 0 and 2 (chunks), trace 3 = row 1; row 3 is empty and in its own trace
    trace_ids = torch.tensor([7, 3, 7, 11])
    out = aggregate(t(LOSS_TOK), t(AGG_MASK), "trace-length", trace_ids=trace_ids)
    # trace 7: (3 + 9) / (2 + 1) = 4;  trace 3: 26 / 4 = 6.5;  mean over 2 traces = 5.25
    # Delethink's row form: rows 0..2 with L scaled by B_traces/B_rows = 2/3:
    #   (3/(3*2/3) + 26/(4*2/3) + 9/(3*2/3)) / 3 = (1.5 + 9.75 + 4.5) / 3 = 5.25
    assert out.item() == pytest.approx(5.25, abs=ATOL)
    with pytest.raises(ValueError):
        aggregate(t(LOSS_TOK), t(AGG_MASK), "trace-length")


def test_trace_length_matches_python_loop():
    g = torch.Generator().manual_seed(0)
    loss_tok = torch.randn(7, 5, generator=g, dtype=torch.float64)
    mask = torch.rand(7, 5, generator=g) > 0.4
    trace_ids = torch.tensor([2, 0, 2, 5, 0, 2, 9])
    per_trace = []
    for tid in sorted(set(trace_ids.tolist())):
        rows = [b for b in range(7) if trace_ids[b] == tid]
        toks = [loss_tok[b, i].item() for b in rows for i in range(5) if mask[b, i]]
        if toks:
            per_trace.append(sum(toks) / len(toks))
    out = aggregate(loss_tok, mask, "trace-length", trace_ids=trace_ids)
    assert out.item() == pytest.approx(sum(per_trace) / len(per_trace), abs=ATOL)


def test_registries():
    assert set(AGGREGATIONS) == {"token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "trace-length"}
    assert set(POLICY_LOSSES) == {"ppo_clip", "loop", "reinforce"}


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "trace-length"])
def test_weights_sliced_over_shuffled_micro_batches_add_up_to_the_whole_batch(mode):
    """1 x 8 == 8 x 1 (and 3 + 3 + 2) at the level of the pure functions, traces split across micro-batches."""
    from longhorizon.algorithms import token_weights, weighted_sum

    gen = torch.Generator().manual_seed(0)
    loss_tok = torch.randn(8, 5, generator=gen, dtype=torch.float64)
    mask = (torch.rand(8, 5, generator=gen) > 0.4).float()
    mask[3] = 0.0  # a row with no sampled token
    trace_ids = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3])
    whole = aggregate(loss_tok, mask, mode, trace_ids=trace_ids)
    perm = torch.randperm(8, generator=gen)
    weights = token_weights(mask[perm], trace_ids[perm], mode)
    if mode != "seq-mean-token-sum":  # that one sums to the mean row length
        assert weights.sum().item() == pytest.approx(1.0, abs=1e-6)
    for size in (1, 3, 8):
        parts = [weighted_sum(loss_tok[perm][i:i + size], weights[i:i + size]) for i in range(0, 8, size)]
        assert sum(parts).item() == pytest.approx(whole.item(), abs=1e-6)
