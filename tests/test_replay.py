"""ARPO replay buffer and task filtering: all-failed groups, all-succeeded groups, FIFO, exact state round trip."""

from __future__ import annotations

from longhorizon.train.replay import ReplayBuffer, TaskFilter, select_tasks
from longhorizon.types import Trajectory, Turn


def episode(seed: int, success: bool, group: int, tag: str = "") -> Trajectory:
    turn = Turn(observation="o", action=tag or ("win" if success else "lose"), reward=float(success),
                action_ids=[1, 2], action_logprobs=[-0.5, -0.25])
    return Trajectory(env_id="env", seed=seed, turns=[turn], group_id=group, success=success)


def actions(trajs):
    return [t.turns[0].action for t in trajs]


def test_all_failed_group_gets_a_stored_success_in_its_first_slot():
    buffer = ReplayBuffer(size=8)
    buffer.apply([episode(7, True, group=0, tag="old win"), episode(7, False, group=0)])  # stores one success
    batch = [episode(7, False, group=3, tag=f"fail {i}") for i in range(4)]
    out, metrics = buffer.apply(batch)
    assert actions(out) == ["old win", "fail 1", "fail 2", "fail 3"]
    assert out[0].group_id == 3 and out[0].metadata["replayed"] is True
    assert out[0].turns[0].action_logprobs == [-0.5, -0.25]  # its behaviour log-probs travel with it
    assert metrics == {"all_failed_group_frac": 1.0, "replay_rate": 1.0, "buffered_tasks": 1.0}
    assert batch[0].turns[0].action == "fail 0"  # the input list is not modified


def test_all_failed_group_without_a_stored_success_is_unchanged():
    buffer = ReplayBuffer()
    batch = [episode(1, False, group=0), episode(1, False, group=0)]
    out, metrics = buffer.apply(batch)
    assert out == batch and metrics["replay_rate"] == 0.0 and metrics["all_failed_group_frac"] == 1.0
    assert buffer.buffers == {}


def test_all_succeeded_group_is_unchanged_and_stored_fifo():
    buffer = ReplayBuffer(size=3)
    batch = [episode(2, True, group=0, tag=f"win {i}") for i in range(5)]
    out, metrics = buffer.apply(batch)
    assert out == batch and metrics["replay_rate"] == 0.0 and metrics["all_failed_group_frac"] == 0.0
    assert actions(buffer.buffers[("env", 2)]) == ["win 2", "win 3", "win 4"]  # the newest three


def test_mixed_group_and_other_task_are_not_replayed():
    buffer = ReplayBuffer()
    buffer.apply([episode(1, True, group=0)])
    batch = [episode(1, True, group=5), episode(1, False, group=5), episode(2, False, group=6)]
    out, metrics = buffer.apply(batch)
    assert out == batch  # group 5 has a success; task 2 has nothing stored
    assert metrics["all_failed_group_frac"] == 0.5 and metrics["replay_rate"] == 0.0


def test_state_dict_round_trip_draws_the_same_success():
    buffer = ReplayBuffer(seed=3)
    buffer.apply([episode(4, True, group=0, tag=f"win {i}") for i in range(6)])
    copy = ReplayBuffer(seed=99)
    copy.load_state_dict(buffer.state_dict())
    batch = [episode(4, False, group=1), episode(4, False, group=1)]
    draws = [actions(b.apply(batch)[0])[0] for b in (buffer, copy)]
    assert draws[0] == draws[1] and draws[0].startswith("win")


def test_task_filter_skips_always_and_never_solved_tasks():
    tasks = TaskFilter(threshold=0.1, min_attempts=4)
    tasks.record([episode(1, True, 0)] * 4 + [episode(2, False, 1)] * 4 + [episode(3, i < 2, 2) for i in range(4)])
    tasks.record([episode(5, True, 3)] * 3)  # too few attempts yet
    assert [tasks.keep(("env", s)) for s in (1, 2, 3, 5, 6)] == [False, False, True, True, True]
    assert tasks.filtered_tasks() == 2
    copy = TaskFilter(threshold=0.1, min_attempts=4)
    copy.load_state_dict(tasks.state_dict())
    assert [copy.keep(("env", s)) for s in (1, 2, 3, 5)] == [False, False, True, True]


def test_select_tasks_skips_filtered_tasks_over_a_pool_and_never_stalls():
    keep = lambda task: task != 1  # noqa: E731
    assert select_tasks(0, 2, pool=3, keep=keep) == ([0, 2], 3)
    assert select_tasks(3, 2, pool=3, keep=keep) == ([3, 5], 6)  # positions 3, 4, 5 are tasks 0, 1, 2
    assert select_tasks(0, 2, pool=3, keep=lambda task: False) == ([0, 1], 5)  # all filtered: take them anyway
    assert select_tasks(10, 3, pool=None, keep=lambda task: True) == ([10, 11, 12], 13)
