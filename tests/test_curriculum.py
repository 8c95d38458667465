"""Curricula (issue 14 item 8): the knob follows the rolling success rate inside its range, hints anneal and are
prompt only, the state resumes exactly, and a knob the env does not have is a one-line error."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest

import longhorizon.envs  # noqa: F401 (registers the envs)
from longhorizon.envs.core.wrappers import PrivilegedHint
from longhorizon.errors import UserError
from longhorizon.rollout import EpisodeSpec
from longhorizon.train import train
from longhorizon.train import curriculum
from longhorizon.train.metrics import read_records
from longhorizon.types import Trajectory, Turn
from test_train import assert_same_weights, crash_then_resume, tiny_cfg

EXECUTION = ["env_id=longhorizon/Execution-v0", "env_kwargs={horizon: 2, dict_size: 2}"]


def episodes(successes: list[bool]) -> list[Trajectory]:
    return [Trajectory(env_id="e", seed=i, turns=[Turn("o", "a")], success=s) for i, s in enumerate(successes)]


def test_the_knob_rises_and_falls_with_the_rolling_success_rate_inside_its_range(tmp_path):
    cfg = tiny_cfg(tmp_path, *EXECUTION, "algorithm.curriculum={knob: horizon, window: 4, raise_at: 0.75, "
                                         "lower_at: 0.25, max: 4}")
    state = curriculum.start_state(cfg)
    assert state == {"value": 2, "window": []}  # the env_kwargs value
    m = curriculum.update(cfg, state, 0, episodes([True, True, True]))
    assert state["value"] == 2 and m["curriculum/success_window"] == 1.0  # the window is not full yet
    curriculum.update(cfg, state, 1, episodes([True, False]))  # last 4: T T T F = 0.75 -> up, window cleared
    assert state == {"value": 3, "window": []}
    curriculum.update(cfg, state, 2, episodes([True] * 4))
    curriculum.update(cfg, state, 3, episodes([True] * 4))
    assert state["value"] == 4  # max 4: stays
    curriculum.update(cfg, state, 4, episodes([False] * 4))
    assert state["value"] == 3
    for step in range(5, 10):
        curriculum.update(cfg, state, step, episodes([False] * 4))
    assert state["value"] == 2 and isinstance(state["value"], int)  # never below the start


def test_the_knob_never_leaves_its_own_range(tmp_path):
    lo, hi, integer, default = curriculum.knob_bounds("longhorizon/Compose-v0", "n_problems")
    assert (lo, hi, integer) == (1, 32, True)
    cfg = tiny_cfg(tmp_path, "env_id=longhorizon/Compose-v0", "env_kwargs={n_problems: 31}",
                   "algorithm.curriculum={knob: n_problems, window: 1, step: 5}")
    state = curriculum.start_state(cfg)
    curriculum.update(cfg, state, 0, episodes([True]))
    assert state["value"] == 32


def test_specs_take_the_knob_and_an_annealed_hint(tmp_path):
    cfg = tiny_cfg(tmp_path, *EXECUTION, "algorithm.curriculum={knob: horizon, start: 3, hint_prob: 0.8, hint_steps: 4}")
    state = curriculum.start_state(cfg)
    specs = [EpisodeSpec("longhorizon/Execution-v0", seed=0, env_kwargs={"horizon": 2, "dict_size": 2})]
    (spec,) = curriculum.apply(cfg, state, 1, specs)
    assert spec.env_kwargs == {"horizon": 3, "dict_size": 2}
    assert spec.wrappers == [{"name": "hint", "prob": pytest.approx(0.6), "seed": cfg.seed}]
    assert curriculum.apply(cfg, state, 4, specs)[0].wrappers == []  # annealed to 0
    assert [curriculum.hint_prob(cfg.algorithm.curriculum, t) for t in (0, 2, 4, 9)] == [0.8, 0.4, 0.0, 0.0]


def test_a_hint_is_the_oracle_action_in_the_observation():
    env = PrivilegedHint(gym.make("longhorizon/Execution-v0", horizon=3), prob=1.0)
    obs, _ = env.reset(seed=5)
    oracle = env.get_wrapper_attr("oracle_action")()
    assert obs.endswith(f"Hint: a correct next answer is: {oracle}")
    _, _, _, _, info = env.step(oracle)
    assert info["hinted"] is True
    never = PrivilegedHint(gym.make("longhorizon/Execution-v0", horizon=3), prob=0.0)
    assert "Hint" not in never.reset(seed=5)[0]
    with pytest.raises(ValueError, match="hint prob"):
        PrivilegedHint(gym.make("longhorizon/Execution-v0"), prob=1.5)


def test_a_curriculum_run_logs_its_state_and_resumes_exactly(tmp_path):
    sets = [*EXECUTION, "steps=4", "checkpoint_every=2", "algorithm.entropy.method=epo",
            "algorithm.curriculum={knob: horizon, window: 2, raise_at: 0.5, lower_at: 0.0, hint_prob: 1.0, hint_steps: 3}"]
    straight = train(tiny_cfg(tmp_path / "straight", *sets))
    records = [r for r in read_records(straight.run_dir) if "charts/reward_mean" in r]
    assert all(math.isfinite(v) for r in records for v in r.values())
    assert [r["curriculum/hint_prob"] for r in records] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert records[0]["curriculum/hinted_frac"] == 1.0 and records[-1]["curriculum/hinted_frac"] == 0.0
    assert records[-1]["curriculum/level"] == 2.0  # tiny-random never succeeds: the knob stays at its start
    cfg = tiny_cfg(tmp_path / "broken", *sets)
    resumed = crash_then_resume(cfg)
    assert_same_weights(straight, resumed)
    again = [r for r in read_records(resumed.run_dir) if "charts/reward_mean" in r]
    keys = [k for k in records[-1] if k.startswith("curriculum/")]
    assert [r[k] for r in records for k in keys] == [r[k] for r in again for k in keys]


def test_a_knob_the_env_does_not_have_is_one_line(tmp_path):
    cfg = tiny_cfg(tmp_path, *EXECUTION, "algorithm.curriculum={knob: difficulty}")
    with pytest.raises(UserError, match="has no knob 'difficulty'"):
        train(cfg)
    with pytest.raises(Exception, match="lower_at"):
        tiny_cfg(tmp_path, "algorithm.curriculum={knob: horizon, raise_at: 0.2, lower_at: 0.5}")
