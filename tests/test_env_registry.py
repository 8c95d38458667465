"""Checks every registered env passes automatically: add an env to the registry and it is covered."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longhorizon.envs import env_class, knobs, list_envs

ENV_LEVELS = [(env_id, level) for env_id in list_envs() for level in env_class(env_id).LEVELS]
ORACLE_SEEDS = range(100)
MAX_ORACLE_STEPS = 100_000


def run_oracle(env: gym.Env, seed: int) -> tuple[list[str], dict, int]:
    """Play the oracle to the end; return the observations, the last info and the step count."""
    obs, info = env.reset(seed=seed)
    observations, steps = [obs], 0
    while True:
        obs, _, terminated, truncated, info = env.step(env.unwrapped.oracle_action())
        observations.append(obs)
        steps += 1
        if terminated or truncated or steps >= MAX_ORACLE_STEPS:
            return observations, info, steps


@pytest.mark.parametrize("env_id", list_envs())
def test_check_env(env_id):
    check_env(gym.make(env_id).unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id,level", ENV_LEVELS)
def test_oracle_solves_every_seed(env_id, level):
    env = gym.make(env_id, **env_class(env_id).LEVELS[level])
    for seed in ORACLE_SEEDS:
        _, info, steps = run_oracle(env, seed)
        assert steps < MAX_ORACLE_STEPS, f"{env_id}/{level} seed {seed}: oracle never finished"
        assert info.get("success") is True, f"{env_id}/{level} seed {seed}: oracle failed: {info}"


@pytest.mark.parametrize("env_id", list_envs())
def test_seeded_determinism(env_id):
    env_a, env_b = gym.make(env_id), gym.make(env_id)
    assert run_oracle(env_a, 7)[0] == run_oracle(env_b, 7)[0]
    assert env_a.reset(seed=1)[0] != env_a.reset(seed=2)[0], "different seeds should give different tasks"


@pytest.mark.parametrize("env_id", list_envs())
def test_wrong_action_is_rejected(env_id):
    env = gym.make(env_id)
    env.reset(seed=3)
    _, _, _, _, info = env.step(env.unwrapped.wrong_action(np.random.default_rng(0)))
    assert info.get("correct") is not True


ADVERSARIAL = st.one_of(
    st.text(max_size=300),
    st.just(""),
    st.just("x" * 200_000),
    st.sampled_from(["<answer></answer>", "<answer><answer>1</answer></answer>", "</answer>3<answer>",
                     '{"name": "x", "arguments": {', "<tool_call>{}</tool_call>", '{"a": [1, 2', "null",
                     "\x00\x01\ufeff", "🙂" * 50, "<answer>1e999</answer>", "<answer>99999999999999999999999</answer>"]),
)


@pytest.mark.parametrize("env_id", list_envs())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(ADVERSARIAL, min_size=1, max_size=4))
def test_garbage_actions_never_raise(env_id, actions):
    env = gym.make(env_id)
    env.reset(seed=0)
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        assert isinstance(obs, str) and np.isfinite(reward)
        if "error" in info:
            assert isinstance(info["error"], str) and info["error"] in obs, "the observation must say what was wrong"
        if terminated or truncated:
            break


@pytest.mark.parametrize("env_id", list_envs())
def test_knobs_are_declared_once_in_a_typed_model(env_id):
    cls = env_class(env_id)
    table = knobs(env_id)
    assert list(table) == list(cls.Knobs.model_fields) and all(v["description"] for v in table.values())
    if cls.HORIZON_KNOB is not None:
        assert cls.HORIZON_KNOB in table
        with pytest.raises(ValueError, match=cls.HORIZON_KNOB) as bad:
            gym.make(env_id, **{cls.HORIZON_KNOB: -1})
        assert "\n" not in str(bad.value)  # one line, naming the knob
    env = gym.make(env_id).unwrapped
    assert all(getattr(env.knobs, name) == v["default"] for name, v in table.items())
    with pytest.raises(ValueError, match=f"unknown knob 'bogus_knob' for {env_id}; valid knobs: {', '.join(table)}$"):
        gym.make(env_id, bogus_knob=1)
    for level in cls.LEVELS.values():  # every level is a valid knob setting
        cls.Knobs.parse(level)


@pytest.mark.parametrize("env_id", list_envs())
def test_every_env_states_its_reward_scale(env_id):
    reward = env_class(env_id).REWARD
    assert isinstance(reward, str) and reward.strip() and "\n" not in reward, f"{env_id} must set REWARD (one line)"


def test_a_knob_typo_suggests_the_closest_and_lists_the_valid_knobs():
    from longhorizon.envs.core.knobs import KnobError

    with pytest.raises(KnobError) as err:
        gym.make("longhorizon/Execution-v0", horizn=4)
    assert str(err.value) == ("unknown knob 'horizn' for longhorizon/Execution-v0 (did you mean 'horizon'?); "
                              "valid knobs: horizon, turn_complexity, dict_size, value_range, stop_on_error")
    with pytest.raises(KnobError, match="^knob 'horizon' of longhorizon/Execution-v0: must be an integer"):
        gym.make("longhorizon/Execution-v0", horizon="x")
    with pytest.raises(KnobError, match="for longhorizon/Discovery-v0 \\(did you mean 'world'\\?\\)"):
        gym.make("longhorizon/Discovery-v0", wrld="grid")
