"""Horizon metrics against hand-worked values and against theory (noisy oracle: success(H) = p^H)."""

import math

import pytest

from longhorizon.eval import HorizonEvalConfig, horizon_length, horizon_summary, run_horizon_eval
from longhorizon.rollout import scripted_policy
from longhorizon.types import Trajectory, Turn


def traj(correct: list[bool], step_correct: list[bool] | None = None) -> Trajectory:
    step_correct = step_correct or correct
    turns = [Turn(observation="", action="", info={"correct": c, "step_correct": s}) for c, s in zip(correct, step_correct)]
    return Trajectory(env_id="e", seed=0, turns=turns, success=all(correct))


def test_horizon_summary_by_hand():
    trajs = [traj([True, True, True]), traj([True, False, False], [True, False, True]), traj([False, True, True])]
    r = horizon_summary(trajs, 3)
    assert r["success_rate"] == pytest.approx(1 / 3)
    assert r["success_se"] == pytest.approx(math.sqrt((1 / 3) * (2 / 3) / 3))
    assert r["mean_turns_survived"] == pytest.approx((3 + 1 + 0) / 3)
    assert r["per_step_accuracy"] == pytest.approx([2 / 3, 2 / 3, 1.0])
    assert r["prefix_accuracy"] == pytest.approx([2 / 3, 1 / 3, 1 / 3])
    for t, reward in zip(trajs, [3.0, 0.0, 1.5]):
        t.turns[0].reward = reward
    r = horizon_summary(trajs, 3)  # rewards 3, 0, 1.5: mean 1.5, sample sd 1.5, SE 1.5 / sqrt(3)
    assert r["mean_reward"] == pytest.approx(1.5) and r["reward_se"] == pytest.approx(1.5 / math.sqrt(3))


def test_horizon_length_interpolates_log_success():
    # geometric decay is recovered exactly: 0.9^H crosses 0.5 at ln 0.5 / ln 0.9
    hs = [1, 2, 4, 8, 16]
    h = horizon_length(hs, [0.9**x for x in hs], 0.5)
    assert h["value"] == pytest.approx(math.log(0.5) / math.log(0.9), abs=1e-9) and h["censored"] is None
    assert horizon_length([1, 2], [1.0, 0.9], 0.5) == {"s": 0.5, "value": 2.0, "censored": "above"}
    # below the first horizon: interpolate from success 1 at H = 0
    below = horizon_length([2, 4], [0.25, 0.0], 0.5)
    assert below["value"] == pytest.approx(2 * math.log(2) / math.log(4)) and below["censored"] is None
    # zero success already at the smallest horizon: censored below it
    assert horizon_length([1, 2], [0.0, 0.0], 0.5) == {"s": 0.5, "value": 1.0, "censored": "below"}
    # a drop to exactly zero falls back to linear interpolation
    assert horizon_length([1, 3], [0.75, 0.0], 0.5)["value"] == pytest.approx(1 + (0.25 / 0.75) * 2)


def test_noisy_oracle_matches_theory():
    p, horizons = 0.9, [1, 2, 4, 8, 16, 32]
    cfg = HorizonEvalConfig(model=f"noisy-oracle:{p}", horizons=horizons, episodes=1500, seed=0)
    _, metrics = run_horizon_eval(cfg, scripted_policy(cfg.model, cfg.seed))
    theory = math.log(0.5) / math.log(p)  # 6.58
    assert abs(metrics["horizon_length"]["value"] - theory) <= 0.15 * theory
    for row in metrics["horizons"]:
        expected = p ** row["horizon"]
        se = math.sqrt(expected * (1 - expected) / row["episodes"])
        assert abs(row["success_rate"] - expected) <= 3 * se, row
        # each step is right with probability p, wherever it is
        assert all(abs(a - p) < 0.05 for a in row["per_step_accuracy"][:8])


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="horizons"):
        HorizonEvalConfig(horizons=[0, 2])
    with pytest.raises(ValueError, match="bogus"):
        HorizonEvalConfig(bogus=1)
