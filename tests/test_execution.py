import gymnasium as gym
import pytest

import longhorizon.envs  # noqa: F401
from longhorizon.envs.execution.env import parse_answer


def make(**kw):
    env = gym.make("longhorizon/Execution-v0", **kw)
    return env, env.unwrapped


@pytest.mark.parametrize("text,value", [("<answer>12</answer>", 12), ("think... <answer> -7 </answer>", -7),
                                        ("<answer>+3</answer>", 3)])
def test_parse_accepts_one_integer(text, value):
    assert parse_answer(text) == (value, None)


@pytest.mark.parametrize("text,reason", [
    ("12", "no <answer>"), ("<answer>1</answer><answer>2</answer>", "found 2"),
    ("<answer>1.5</answer>", "not an integer"), ("<answer></answer>", "not an integer"),
    ("<answer>twelve</answer>", "not an integer"), ("<answer>12", "no <answer>"),
])
def test_parse_rejects_malformed(text, reason):
    value, error = parse_answer(text)
    assert value is None and reason in error


def test_running_sum_and_rewards_by_hand():
    env, raw = make(horizon=3, turn_complexity=2, dict_size=6, value_range=9)
    env.reset(seed=5)
    sums = [sum(raw.dictionary[k] for k in row) for row in raw.keys]
    expected = [sums[0], sums[0] + sums[1], sums[0] + sums[1] + sums[2]]
    _, r1, term, _, info = env.step(f"<answer>{expected[0]}</answer>")
    assert (r1, term, info["correct"]) == (1.0, False, True)
    _, r2, term, _, info = env.step(f"<answer>{expected[1] + 1}</answer>")  # wrong total
    assert (r2, term, info["correct"], info["step_correct"]) == (0.0, False, False, False)
    # a correct update of its own (wrong) total: step-correct but not correct
    _, r3, term, _, info = env.step(f"<answer>{expected[1] + 1 + sums[2]}</answer>")
    assert (r3, term, info["correct"], info["step_correct"], info["success"]) == (0.0, True, False, True, False)


def test_unparseable_answer_is_a_wrong_turn_with_explanation():
    env, _ = make(horizon=2)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step("the total is 5")
    assert reward == 0.0 and not terminated and info["correct"] is False
    assert "could not be read" in obs and info["error"] in obs and "Turn 2 of 2" in obs


def test_stop_on_error_ends_at_first_mistake():
    env, raw = make(horizon=5, stop_on_error=True)
    env.reset(seed=1)
    env.step(raw.oracle_action())
    _, _, terminated, _, info = env.step("<answer>999999</answer>")
    assert terminated and info["success"] is False and info["turn"] == 2


def test_horizon_and_turn_complexity_shape_the_task():
    env, raw = make(horizon=7, turn_complexity=3, dict_size=20)
    obs, _ = env.reset(seed=2)
    assert len(raw.keys) == 7 and all(len(row) == 3 for row in raw.keys)
    assert len(raw.dictionary) == 20 and all(-99 <= v <= 99 for v in raw.dictionary.values())
    assert f"Keys: {', '.join(raw.keys[0])}" in obs


@pytest.mark.parametrize("kw", [{"horizon": 0}, {"turn_complexity": -1}, {"dict_size": 10_000}, {"horizon": 2.5}])
def test_bad_knobs_fail_with_the_knob_name(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        make(**kw)


def test_step_after_end_raises():
    env, raw = make(horizon=1)
    env.reset(seed=0)
    env.step(raw.oracle_action())
    with pytest.raises(RuntimeError):
        env.step("<answer>1</answer>")
