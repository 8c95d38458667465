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


# -- chance-corrected step accuracy ----------------------------------------------------------------
def law(values, k):
    from longhorizon.envs.execution.env import sum_distribution

    lowest, pmf = sum_distribution(values, k)
    return {lowest + i: float(p) for i, p in enumerate(pmf) if p > 0}


def test_sum_distribution_by_hand():
    assert law([1, -1, 0, 1], 1) == pytest.approx({1: 0.5, -1: 0.25, 0: 0.25}, abs=1e-12)
    # two draws: (1,1) .25; (1,0),(0,1) .25; (1,-1),(-1,1),(0,0) .3125; (-1,0),(0,-1) .125; (-1,-1) .0625
    expected = {2: 0.25, 1: 0.25, 0: 0.3125, -1: 0.125, -2: 0.0625}
    assert law([1, -1, 0, 1], 2) == pytest.approx(expected, abs=1e-12)
    assert law([7], 3) == pytest.approx({21: 1.0}, abs=1e-12)
    assert law([-5, 5], 3) == pytest.approx({-15: 1 / 8, -5: 3 / 8, 5: 3 / 8, 15: 1 / 8}, abs=1e-12)


def test_sum_distribution_equals_a_plain_loop():
    import itertools

    import numpy as np

    values = [int(v) for v in np.random.default_rng(0).integers(-9, 10, size=7)]
    counts: dict[int, int] = {}
    for draw in itertools.product(values, repeat=3):
        counts[sum(draw)] = counts.get(sum(draw), 0) + 1
    assert law(values, 3) == pytest.approx({s: c / 7**3 for s, c in counts.items()}, abs=1e-12)


def test_a_huge_value_range_reports_no_chance():
    from longhorizon.envs.execution.env import sum_distribution

    assert sum_distribution([-10**9, 10**9], 2) is None
    env, raw = make(horizon=1, value_range=10**9)
    env.reset(seed=0)
    *_, info = env.step(raw.oracle_action())
    assert info["step_correct"] and info["step_chance"] is None and info["step_chance_corrected"] is None


def test_step_chance_by_hand():
    env, raw = make(horizon=3, dict_size=4, value_range=2)
    env.reset(seed=0)
    values = list(raw.dictionary.values())
    _, _, _, _, info = env.step("<answer>0</answer>")  # no update: right iff the key's value is 0
    chance = values.count(0) / 4
    assert info["step_chance"] == pytest.approx(chance, abs=1e-12)
    expected = 1.0 if info["step_correct"] else -chance / (1 - chance)
    assert info["step_chance_corrected"] == pytest.approx(expected, abs=1e-12)
    _, _, _, _, info = env.step("no answer")
    assert (info["step_chance"], info["step_chance_corrected"]) == (0.0, 0.0)


def test_a_constant_dictionary_judges_nothing():
    env, raw = make(horizon=2, dict_size=1)
    env.reset(seed=0)
    _, _, _, _, info = env.step(raw.oracle_action())
    assert info["step_chance"] == pytest.approx(1.0, abs=1e-12) and info["step_chance_corrected"] is None


def play_policy(answer, seeds=range(400), **knobs) -> tuple[list[bool], list[float]]:
    """Step accuracy and chance-corrected step verdicts of `answer(raw, turn) -> int` over many episodes."""
    env, raw = make(horizon=8, **knobs)
    step_correct, corrected = [], []
    for seed in seeds:
        env.reset(seed=seed)
        for turn in range(8):
            *_, info = env.step(f"<answer>{answer(raw, turn)}</answer>")
            step_correct.append(info["step_correct"])
            corrected.append(info["step_chance_corrected"])
    return step_correct, corrected


@pytest.mark.parametrize("name,answer", [
    ("constant 12", lambda raw, turn: 12),  # the prompt's example answer, copied every turn
    ("constant 0", lambda raw, turn: 0),
    ("repeat the last total", lambda raw, turn: raw.own_total),
    ("add the commonest turn sum", lambda raw, turn: raw.own_total + raw.turn_sum_law[0] + int(raw.turn_sum_law[1].argmax())),
])
def test_chance_corrected_step_accuracy_of_a_key_blind_policy_is_about_zero(name, answer):
    import numpy as np

    step_correct, corrected = play_policy(answer, dict_size=10, value_range=9)
    se = np.std(corrected) / np.sqrt(len(corrected))
    assert abs(np.mean(corrected)) < max(3 * se, 1e-3), (name, np.mean(corrected), se)
    if name != "constant 12":  # key-blind, yet credited by the raw step accuracy
        assert np.mean(step_correct) > 0.04


def test_chance_corrected_step_accuracy_of_the_oracle_is_one():
    step_correct, corrected = play_policy(lambda raw, turn: raw._own_update(), seeds=range(50), dict_size=10,
                                          value_range=9, turn_complexity=2)
    assert all(step_correct) and corrected == [1.0] * len(corrected)


def test_eval_reports_the_chance_corrected_step_accuracy():
    from longhorizon.eval import horizon_summary
    from longhorizon.rollout import EpisodeSpec, run_episodes, scripted_policy

    specs = [EpisodeSpec("longhorizon/Execution-v0", seed=s, env_kwargs={"horizon": 3, "dict_size": 5}) for s in range(4)]
    row = horizon_summary(run_episodes(specs, scripted_policy("oracle")), 3)
    assert row["per_step_accuracy_chance_corrected"] == [1.0, 1.0, 1.0]
    row = horizon_summary(run_episodes(specs, scripted_policy("noisy-oracle:0")), 3)
    assert all(a <= 0 for a in row["per_step_accuracy_chance_corrected"])  # every update wrong: at most chance
