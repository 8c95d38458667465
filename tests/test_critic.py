"""DeepCritic-style step critic (issue 15 item 3): the first wrong step of episodes on Execution, Compose and
Countdown from their verifiers (episodes played by hand with a known wrong step), critique parsing on hand-made and
hostile outputs, the critic's RL reward, and the critic as a reward component on the tiny random model."""

from __future__ import annotations

import gymnasium as gym
import pytest

import longhorizon.envs  # noqa: F401 (registers the envs)
from longhorizon.envs.compose.env import format_answers
from longhorizon.feedback.critic import (critic_reward, critique_messages, first_error, parse_critique,
                                         solution_steps, steps_before_error)
from longhorizon.types import Trajectory, Turn


def play(env_id: str, knobs: dict, actions) -> Trajectory:
    """An episode where `actions(env, turn)` gives each action; infos recorded as the runner records them."""
    env = gym.make(env_id, **knobs)
    obs, _ = env.reset(seed=3)
    traj = Trajectory(env_id=env_id, seed=3)
    done, turn = False, 0
    while not done:
        action = actions(env.unwrapped, turn)
        nxt, reward, terminated, truncated, info = env.step(action)
        traj.turns.append(Turn(observation=obs, action=action, reward=reward, info=info))
        obs, done, turn = nxt, terminated or truncated, turn + 1
    traj.success = traj.turns[-1].info.get("success")
    return traj


def wrong_at(k: int | None):
    """Oracle actions, except a well-formed wrong one at turn k (0-indexed)."""
    import numpy as np

    return lambda env, turn: env.wrong_action(np.random.default_rng(turn)) if turn == k else env.oracle_action()


@pytest.mark.parametrize("k", [None, 0, 2, 4])
def test_execution_first_wrong_turn(k):
    traj = play("longhorizon/Execution-v0", {"horizon": 5, "stop_on_error": False}, wrong_at(k))
    assert first_error(traj) == (-1 if k is None else k + 1)
    assert len(solution_steps(traj)) == 5


@pytest.mark.parametrize("k", [None, 0, 3])
def test_compose_multi_first_wrong_problem(k):
    traj = play("longhorizon/Compose-v0", {"n_problems": 4, "mode": "multi"}, wrong_at(k))
    assert first_error(traj) == (-1 if k is None else k + 1)


@pytest.mark.parametrize("k", [None, 1, 3])
def test_compose_single_first_wrong_answer(k):
    def answers(env, turn):
        values = list(env.answers)
        if k is not None:
            values[k] += 7
        return format_answers(values)

    traj = play("longhorizon/Compose-v0", {"n_problems": 4, "mode": "single"}, answers)
    assert first_error(traj) == (-1 if k is None else k + 1)
    assert solution_steps(traj)[0].startswith("Problem 1:") and len(solution_steps(traj)) == 4


@pytest.mark.parametrize("wrong, expected", [(None, -1), (1, 2), (2, 3), ("unreadable", 1)])
def test_countdown_first_wrong_equation(wrong, expected):
    def solution(env, turn):
        if wrong == "unreadable":
            return "no solution here"
        lines = list(env.solution)
        if wrong is not None:
            lhs, rhs = lines[wrong].split(" = ")
            lines[wrong] = f"{lhs} = {int(rhs) + 1}"
        return "<Solution>\n" + "\n".join(lines) + "\n</Solution>"

    traj = play("longhorizon/Countdown-v0", {"level": "0.5k"}, solution)
    assert first_error(traj) == expected
    if wrong != "unreadable":
        assert len(solution_steps(traj)) == 3 and "=" in solution_steps(traj)[0]


def test_other_envs_have_no_step_labels():
    with pytest.raises(ValueError, match="no step labels"):
        first_error(Trajectory(env_id="longhorizon/Travel-v0", seed=0, turns=[Turn("o", "a")]))


@pytest.mark.parametrize("text, k, steps, parsed", [
    ("#### The correctness of Step 1 is: \\boxed{1}\n#### The correctness of Step 2 is: \\boxed{-1}\n"
     "**Answer**: \\boxed{2}", 2, {1: True, 2: False}, True),
    ("All fine. **Answer**: \\boxed{-1}", -1, {}, True),
    ("**Answer**: \\boxed{1} then **Answer**: \\boxed{3}", 3, {}, True),  # the last answer counts
    ("**Answer**: \\boxed{0}", None, {}, False),
    ("**Answer**: \\boxed{9}", None, {}, False),  # past the 4 steps
    ("Step 2 looks wrong", None, {}, False),
    ("**Answer**: \\boxed{" * 20_000, None, {}, False),
])
def test_critique_parsing_never_raises(text, k, steps, parsed):
    c = parse_critique(text, n_steps=4)
    assert (c.first_error, c.steps) == (k, steps) and bool(c.reason) != parsed


def test_critic_reward_and_steps_before_the_error():
    assert critic_reward("**Answer**: \\boxed{2}", 2) == 1.0
    assert critic_reward("**Answer**: \\boxed{-1}", 2) == 0.0
    assert critic_reward("nothing", -1) == 0.0
    assert [steps_before_error(k, 4) for k in (-1, 1, 3, None)] == [1.0, 0.0, 0.5, 0.0]
    messages = critique_messages("add", ["1", "2"])
    assert messages[1]["content"].endswith("Step 1: 1\nStep 2: 2") and "boxed" in messages[0]["content"]


def test_the_critic_is_a_reward_component(tmp_path):
    from longhorizon.train import train
    from longhorizon.train.metrics import read_records
    from test_train import tiny_cfg

    component = "{name: critic, model: tiny-random, max_new_tokens: 6}"
    result = train(tiny_cfg(tmp_path, f"algorithm.rewards.components=[{{name: env}}, {component}]",
                            "env_id=longhorizon/Execution-v0", "env_kwargs={horizon: 2, dict_size: 2}"))
    records = [r for r in read_records(result.run_dir) if "charts/reward_mean" in r]
    assert [r["step"] for r in records] == [1, 2]
    assert all("rewards/return_critic" in r and 0.0 <= r["rewards/judge_parsed_frac"] <= 1.0 for r in records)
