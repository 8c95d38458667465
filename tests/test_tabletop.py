"""Tabletop-v0: goal verifiers on hand-built scenes, strict parsing, illegal moves, knobs and the oracle."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import longhorizon.envs  # noqa: F401  (registers the envs)
from longhorizon.envs.tabletop.env import TabletopEnv
from longhorizon.envs.tabletop.goals import CountGoal, GatherGoal, ReferenceGoal, StackGoal
from longhorizon.envs.tabletop.world import TABLE, Block, Scene

SIZE = {"small": 0, "medium": 1, "large": 2}


def scene(**support: str) -> Scene:
    """A scene from `name=support` pairs; block names are `<colour>_<size>_<k>`."""
    blocks = {}
    for name in support:
        colour, size, _ = name.split("_")
        blocks[name] = Block(name, colour, SIZE[size])
    return Scene(blocks, dict(support))


def set_state(env: TabletopEnv, sc: Scene, goals: list) -> None:
    env.reset(seed=0)
    env.scene, env.goals, env.n_goals = sc, goals, len(goals)


def play_oracle(env: gym.Env, seed: int) -> tuple[int, dict, float]:
    env.reset(seed=seed)
    steps, ret = 0, 0.0
    while True:
        _, reward, terminated, truncated, info = env.step(env.unwrapped.oracle_action())
        steps, ret = steps + 1, ret + reward
        if terminated or truncated:
            return steps, info, ret


# -- verifiers on hand-built scenes ----------------------------------------------------


def test_gather_goal_counts_stacked_blocks_by_the_region_of_their_stack():
    sc = scene(blue_large_1="left_zone", red_small_1="blue_large_1", red_medium_1="left_zone")
    assert GatherGoal("colour", "red", "left_zone").satisfied(sc, None)
    sc.support["red_medium_1"] = TABLE
    assert not GatherGoal("colour", "red", "left_zone").satisfied(sc, None)
    assert GatherGoal("size", 2, "left_zone").satisfied(sc, None)
    assert not GatherGoal("size", 0, TABLE).satisfied(sc, None)
    assert GatherGoal("colour", "red", "left_zone").text == "Put all red blocks in the left zone (left_zone)."
    assert GatherGoal("size", 2, TABLE).text == "Put all large blocks on the table."


def test_stack_goal_needs_one_stack_of_exactly_the_blocks_in_size_order():
    goal = StackGoal(None)
    good = scene(red_large_1=TABLE, blue_medium_1="red_large_1", green_medium_1="blue_medium_1",
                 red_small_1="green_medium_1")
    assert goal.satisfied(good, None)
    good.support.update(green_medium_1="red_large_1", blue_medium_1="green_medium_1", red_small_1="blue_medium_1")
    assert goal.satisfied(good, None), "equal sizes may come in any order"
    wrong_order = scene(red_small_1=TABLE, red_large_1="red_small_1")
    assert not goal.satisfied(wrong_order, None)
    two_stacks = scene(red_large_1=TABLE, red_small_1="right_zone")
    assert not goal.satisfied(two_stacks, None)
    assert goal.satisfied(scene(red_large_1="middle_zone", red_small_1="red_large_1"), None)


def test_colour_stack_goal_rejects_other_colours_in_the_stack():
    goal = StackGoal("red")
    assert goal.satisfied(scene(red_large_1=TABLE, red_small_1="red_large_1", blue_small_1=TABLE), None)
    assert not goal.satisfied(scene(red_large_1=TABLE, red_small_1="red_large_1", blue_small_1="red_small_1"), None)
    assert not goal.satisfied(scene(red_large_1=TABLE, blue_small_1="red_large_1", red_small_1="blue_small_1"), None)


def test_count_goal_compares_the_two_counts_at_check_time():
    goal = CountGoal("red", "left_zone", "blue")
    sc = scene(red_large_1="left_zone", red_small_1="red_large_1", blue_small_1=TABLE, blue_large_1="right_zone")
    assert not goal.satisfied(sc, None)  # 2 red in the zone, 1 blue on the table
    sc.support["blue_large_1"] = "blue_small_1"  # now 2 blue blocks stand on the table
    assert goal.satisfied(sc, None)
    empty = scene(red_large_1=TABLE, blue_small_1="left_zone")
    assert goal.satisfied(empty, None), "0 == 0"


def test_reference_goal_uses_the_first_moved_block_and_its_fallback():
    goal = ReferenceGoal("green_small_1", "right_zone")
    sc = scene(green_small_1=TABLE, red_large_1="green_small_1", blue_small_1="left_zone")
    assert goal.satisfied(sc, "red_large_1")
    assert not goal.satisfied(sc, "blue_small_1")
    assert not goal.satisfied(sc, None), "no block moved yet: cannot hold"
    assert not goal.satisfied(sc, "green_small_1")  # it is its own target: must be in the right zone
    sc.support["green_small_1"], sc.support["red_large_1"] = "right_zone", TABLE
    assert goal.satisfied(sc, "green_small_1")
    zone_goal = ReferenceGoal("left_zone", "middle_zone")
    assert zone_goal.satisfied(sc, "blue_small_1") and not zone_goal.satisfied(sc, "red_large_1")


# -- the env: parsing, illegal moves, rewards, metrics ----------------------------------


def test_illegal_moves_are_explained_and_leave_the_state_unchanged():
    env = TabletopEnv()
    set_state(env, scene(red_large_1=TABLE, blue_small_1="red_large_1", green_medium_1="left_zone"),
              [GatherGoal("colour", "red", "right_zone")])
    cases = {
        "pick red_large_1 place table": "cannot pick red_large_1: blue_small_1 is on top of it",
        "pick green_medium_1 place red_large_1": "cannot place onto red_large_1: blue_small_1 is on top of it",
        "pick purple_small_9 place table": "unknown block 'purple_small_9'",
        "pick blue_small_1 place roof": "unknown target 'roof'",
        "pick blue_small_1 place blue_small_1": "cannot place blue_small_1 on itself",
        "pick green_medium_1 place left_zone": "green_medium_1 is already directly on left_zone",
        "pick blue_small_1 place table please": "could not parse the action",
        "pick blue_small_1": "could not parse the action",
        "move blue_small_1 to table": "could not parse the action",
        "": "could not parse the action",
    }
    before = dict(env.scene.support)
    for action, expected in cases.items():
        obs, reward, terminated, truncated, info = env.step(action)
        assert expected in info["error"] and info["error"] in obs and info["legal"] is False
        assert env.scene.support == before and reward == 0.0 and not (terminated or truncated)
    assert env.progress.illegal == len(cases) and env.progress.steps == len(cases)


def test_legal_move_is_case_insensitive_and_updates_the_caption():
    env = TabletopEnv()
    set_state(env, scene(red_large_1=TABLE, blue_small_1="red_large_1"), [GatherGoal("colour", "blue", "left_zone")])
    obs, _, _, _, info = env.step("  PICK Blue_Small_1   place LEFT_ZONE \n")
    assert info["legal"] is True and "error" not in info
    assert "You moved blue_small_1 to left_zone." in obs and "left_zone: [blue_small_1]" in obs
    assert "table: [red_large_1]" in obs and env.progress.first_moved == "blue_small_1"


def test_done_scores_each_goal_and_gives_partial_credit():
    env = TabletopEnv()
    sc = scene(red_large_1=TABLE, blue_small_1="left_zone")
    set_state(env, sc, [GatherGoal("colour", "red", TABLE), GatherGoal("colour", "red", "left_zone"),
                        GatherGoal("colour", "blue", "left_zone")])
    rewards, infos = [], []
    for action in ["done", "done", "done"]:
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        infos.append(info)
    assert rewards == pytest.approx([1 / 3, 0.0, 1 / 3])
    assert [i["correct"] for i in infos] == [True, False, True]
    assert terminated and not truncated and "episode is over" in obs
    assert infos[-1]["success"] is False
    assert infos[-1]["metrics"] == {"goals_satisfied_fraction": pytest.approx(2 / 3), "moves": 0.0,
                                    "illegal_actions": 0.0}


def test_reference_goal_refers_to_the_first_move_of_the_episode():
    env = TabletopEnv()
    sc = scene(red_large_1=TABLE, blue_small_1=TABLE, green_small_1="right_zone")
    set_state(env, sc, [GatherGoal("colour", "blue", "left_zone"), ReferenceGoal("green_small_1", "middle_zone")])
    env.step("pick blue_small_1 place left_zone")
    env.step("pick red_large_1 place middle_zone")
    env.step("done")
    assert env.oracle_action() == "pick blue_small_1 place green_small_1"
    env.step("pick red_large_1 place green_small_1")  # the wrong block
    _, reward, terminated, _, info = env.step("done")
    assert terminated and reward == 0.0 and info["metrics"]["goals_satisfied_fraction"] == 0.5


def test_turn_limit_truncates_with_failure():
    env = TabletopEnv(n_blocks=4, n_goals=1, max_steps=2)
    env.reset(seed=0)
    env.step("nonsense")
    obs, reward, terminated, truncated, info = env.step("nonsense")
    assert truncated and not terminated and info["success"] is False
    assert "turn limit (2)" in obs and info["metrics"]["illegal_actions"] == 2.0


def test_wrong_action_is_a_premature_done_then_an_illegal_move():
    env = TabletopEnv()
    set_state(env, scene(red_large_1=TABLE, blue_small_1=TABLE), [GatherGoal("colour", "red", "left_zone"),
                                                                  GatherGoal("colour", "red", TABLE)])
    rng = np.random.default_rng(0)
    assert env.wrong_action(rng) == "done"
    env.step("done")
    action = env.wrong_action(rng)
    assert "error" in env.step(action)[4]


# -- oracle and knobs -------------------------------------------------------------------------


GOAL_MIXES = [("gather",), ("stack",), ("count",), ("gather", "reference"), ("stack", "reference")]


@pytest.mark.parametrize("kinds", GOAL_MIXES)
def test_oracle_solves_each_goal_type(kinds):
    env = gym.make("longhorizon/Tabletop-v0", n_blocks=7, n_goals=3, goal_types=kinds)
    for seed in range(40):
        steps, info, ret = play_oracle(env, seed)
        assert info["success"] is True and ret == pytest.approx(1.0), (kinds, seed)
        assert info["metrics"]["goals_satisfied_fraction"] == 1.0 and info["metrics"]["illegal_actions"] == 0.0


def test_first_goal_is_never_reference_and_never_already_satisfied():
    env = TabletopEnv(n_blocks=5, n_goals=3)
    for seed in range(50):
        env.reset(seed=seed)
        assert not isinstance(env.goals[0], ReferenceGoal)
        assert not env.goals[0].satisfied(env.scene, None)


def mean_oracle_length(**knobs) -> float:
    env = gym.make("longhorizon/Tabletop-v0", **knobs)
    return float(np.mean([play_oracle(env, seed)[0] for seed in range(40)]))


def test_more_blocks_make_longer_episodes():
    lengths = [mean_oracle_length(n_blocks=n, n_goals=2) for n in (3, 8, 16)]
    assert lengths[0] < lengths[1] < lengths[2]


def test_more_goals_make_longer_episodes():
    lengths = [mean_oracle_length(n_blocks=6, n_goals=n) for n in (1, 3, 6)]
    assert lengths[0] < lengths[1] < lengths[2]
    assert lengths[2] >= 6  # at least one `done` per goal


def test_default_turn_limit_follows_the_knobs():
    assert TabletopEnv(n_blocks=5, n_goals=3).max_steps == 3 * (4 * 5 + 2)
    assert TabletopEnv(max_steps=7).max_steps == 7


@pytest.mark.parametrize("knobs,name", [
    ({"n_blocks": 1}, "n_blocks"), ({"n_blocks": 2.5}, "n_blocks"), ({"n_goals": 0}, "n_goals"),
    ({"n_colours": 7}, "n_colours"), ({"max_steps": 0}, "max_steps"), ({"goal_types": ("fly",)}, "goal_types"),
    ({"goal_types": ("reference",)}, "goal_types"), ({"goal_types": ()}, "goal_types"),
])
def test_bad_knobs_raise_naming_the_knob(knobs, name):
    with pytest.raises(ValueError, match=name):
        TabletopEnv(**knobs)


def test_task_statement_lists_all_goals():
    env = TabletopEnv(n_goals=3)
    obs, _ = env.reset(seed=4)
    statement = env.task_statement
    assert all(f"{i + 1}. {g.text}" in statement for i, g in enumerate(env.goals))
    assert statement in obs
