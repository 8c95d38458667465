"""Discovery-v0: hidden rules act as documented, commits are scored rule by rule, the oracle reads only observations."""

from __future__ import annotations

import json
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longhorizon.envs.discovery.env import DiscoveryEnv
from longhorizon.envs.core.tools import parse_results
from longhorizon.envs.discovery.genetics import GeneticsWorld, alleles
from longhorizon.envs.discovery.grid import EFFECTS, GridWorld, Moment
from longhorizon.envs.discovery.sequence import LIBRARY, Run, probe
from longhorizon.envs.core.tools import ToolCall, ToolError, function_schema, validate_call


def call(name: str, **arguments) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def payload(obs: str) -> dict:
    return parse_results(obs)[0][1]


def run_oracle(env: DiscoveryEnv, seed: int) -> tuple[list[str], list[str], dict]:
    """(actions, observations, last info) of one oracle episode."""
    obs, _ = env.reset(seed=seed)
    actions, observations = [], [obs]
    while True:
        action = env.oracle_action()
        obs, _, terminated, truncated, info = env.step(action)
        actions.append(action)
        observations.append(obs)
        if terminated or truncated:
            return actions, observations, info


def finish_experiments(env: DiscoveryEnv) -> None:
    """Drive the oracle until every required experiment is done (just before its commit)."""
    while env.unwrapped.world.experiments < env.required_steps:
        env.step(env.oracle_action())


# -- grid: the effects ----------------------------------------------------------------------------------


@pytest.mark.parametrize("effect,moment,expected", [
    ("e1", Moment(3, 4, 12, 5, 1), (1, 0)),
    ("e2", Moment(3, 4, 12, 5, 1), (0, 1)),
    ("e3", Moment(3, 4, 12, 5, 1), (1, 0)),  # 3+4 odd
    ("e3", Moment(3, 5, 12, 5, 1), (-1, 0)),
    ("e4", Moment(3, 4, 12, 5, 1), (-1, 0)),
    ("e5", Moment(3, 4, 15, 5, 1), (2, 0)),
    ("e5", Moment(3, 4, 14, 5, 1), (-2, 0)),
    ("e6", Moment(3, 4, 12, 6, 1), (2, 0)),
    ("e6", Moment(3, 4, 12, 7, 1), (-1, 0)),
    ("e7", Moment(0, 9, 12, 5, 1), (6, 0)),  # corner: band + corner
    ("e7", Moment(1, 5, 12, 5, 1), (3, 0)),  # band only
    ("e7", Moment(4, 5, 12, 5, 1), (0, 0)),
    ("e8", Moment(4, 5, 12, 5, 3), (1, 0)),
    ("e8", Moment(4, 5, 12, 5, 2), (0, 0)),
    ("e9", Moment(4, 5, 9, 5, 1), (-2, 10)),
    ("e9", Moment(4, 5, 10, 5, 1), (1, 0)),
    ("e10", Moment(7, 2, 12, 5, 1), (5, 0)),
])
def test_grid_effects_match_the_catalogue(effect, moment, expected):
    assert EFFECTS[effect][1](moment) == expected


def grid_world(rules: dict[str, str], start=(5, 5), required=100) -> GridWorld:
    world = GridWorld(np.random.default_rng(0), len(rules), required)
    world.rules = dict(rules)
    world.grid = [["A"] * 10 for _ in range(10)]
    world.x, world.y = start
    return world


def test_grid_move_applies_the_hidden_effect_after_paying_the_move():
    world = grid_world({"A": "e5"}, start=(5, 5))
    world.energy = 16
    out = json.loads(world.move("up"))  # energy after paying = 15 -> +2
    assert (out["position"], out["tile"], out["score"], out["energy"]) == ([5, 6], "A", 2, 15)
    out = json.loads(world.move("up"))  # energy 14 -> -2
    assert (out["score"], out["energy"]) == (0, 14)
    out = json.loads(world.move("down"))  # back onto (5, 6): now X, no effect
    assert (out["tile"], out["score"], out["energy"]) == ("X", 0, 13)


def test_grid_visit_and_move_count_effects():
    world = grid_world({"A": "e8", "B": "e6"})
    world.grid[6][5] = world.grid[7][5] = world.grid[8][5] = "A"
    scores = [json.loads(world.move("up"))["score"] for _ in range(3)]  # visits 1, 2, 3 -> +1, 0, +1
    assert scores == [1, 1, 2]
    world = grid_world({"A": "e1", "B": "e6"})
    world.grid[6][5], world.grid[7][5], world.grid[8][5] = "B", "B", "B"
    assert [json.loads(world.move("up"))["score"] for _ in range(3)] == [-1, -2, 0]  # moves 1, 2, 3


def test_grid_round_ends_and_moves_are_refused():
    world = grid_world({"A": "e4"}, start=(0, 0), required=100)
    with pytest.raises(ToolError, match="leaves the 10x10 grid"):
        world.move("left")
    world.energy = 1
    assert json.loads(world.move("up"))["round_over"] is True
    with pytest.raises(ToolError, match="round is over"):
        world.move("up")
    world.new_round()
    assert (world.energy, world.score, world.move_count) == (20, 0, 0)
    world.experiments = world.required
    with pytest.raises(ToolError, match="all 100 required moves"):
        world.move("up")


# -- sequence: the rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule,current,expected", [
    ("interleave", "ABC", "AEBDCCBA"),
    ("add_b", "ABCDEA", "EEEEEE"),  # + EDCBA cyclically, mod 5
    ("max_b", "ABCDEA", "EDCDEE"),
    ("reverse", "ABCD", "DCBA"),
    ("sort", "DBCA", "ABCD"),
    ("shift", "ADE", "BEA"),
    ("rotate", "ABCDE", "CDEAB"),
    ("append_a", "XY", "XYBADCE"),
    ("dedupe", "AABBBCA", "ABCA"),
    ("shift_by_run", "ABE", "DEC"),  # run 3
    ("add_prev_a", "ABCDE", "BBCDE"),  # + the previous run's seq_a, BAAAA
])
def test_sequence_rules_match_the_library(rule, current, expected):
    run = Run(a="BADCE", b="EDCBA", number=3, prev_a="BAAAA")
    assert LIBRARY[rule][1](current, run) == expected


def test_add_prev_a_is_identity_on_the_first_run():
    assert LIBRARY["add_prev_a"][1]("ABC", Run("BADCE", "EDCBA", 1, None)) == "ABC"


def test_sequence_run_shows_every_step():
    env = DiscoveryEnv(world="sequence", n_rules=3, required_steps=4)
    env.reset(seed=0)
    env.unwrapped.world.chain = ["reverse", "shift", "append_a"]
    out = payload(env.step(call("run", seq_a="ABCDE", seq_b="EDCBA"))[0])
    assert [s["result"] for s in out["steps"]] == ["ABCDE", "EDCBA", "AEDCB", "AEDCBABCDE"]
    assert out["final"] == "AEDCBABCDE" and out["runs_done"] == 1


@pytest.mark.parametrize("seq_a,message", [("AAAAA", "at least 2 different"), ("ABCD", "exactly 5 letters"),
                                           ("abcde", "exactly 5 letters"), ("ABCDF", "exactly 5 letters")])
def test_sequence_rejects_bad_inputs(seq_a, message):
    env = DiscoveryEnv(world="sequence")
    env.reset(seed=0)
    obs, _, terminated, _, info = env.step(call("run", seq_a=seq_a, seq_b="ABCDE"))
    assert message in info["error"] and info["error"] in obs and not terminated
    assert env.unwrapped.world.experiments == 0


def test_probes_identify_every_chain_of_up_to_4_rules():
    """For every ordered prefix of distinct rules, each rule that may come next disagrees, on the oracle's
    first 8 probes, with every rule that could still be a candidate (the prefix's rules are pinned at their own
    positions and removed). Offline the same check passes for chains of up to 7 rules."""
    ids = list(LIBRARY)
    runs, previous = [], None
    for k in range(8):
        a, b = probe(k)
        runs.append(Run(a, b, k + 1, previous))
        previous = a

    def check(prefix: list[str], currents: list[str], depth: int) -> None:
        outs = {r: tuple(LIBRARY[r][1](c, run) for c, run in zip(currents, runs)) for r in ids}
        for r in ids:
            if r in prefix:
                continue
            clash = [o for o in ids if o != r and o not in prefix and outs[o] == outs[r]]
            assert not clash, f"after {prefix}, {r} looks like {clash}"
            if depth > 1:
                check(prefix + [r], list(outs[r]), depth - 1)

    check([], [run.a for run in runs], 4)


# -- genetics -------------------------------------------------------------------------------------------------


def genetics_world(n_rules=2, noise=0.0, lethal=("C1", "C1", "C2"), order=("C2", "C1", "C3")) -> GeneticsWorld:
    world = GeneticsWorld(np.random.default_rng(1), n_rules, 100, noise)
    world.lethal_gene, world.lethal = "color", tuple(sorted(lethal))
    world.dominance["color"] = list(order)
    return world


def test_genetics_dominance_and_segregation():
    world = genetics_world(lethal=("C2", "C3", "C3"))  # C1 x C2 crosses are all viable
    out = json.loads(world.cross(1, 2))  # C1/C1/C1 x C2/C2/C2
    assert out["viable"] == 20 and {o["color"] for o in out["new_organisms"]} == {"blue"}  # C2 dominates C1
    genotypes = {world.organisms[o["id"]].genotype["color"] for o in out["new_organisms"]}
    assert genotypes == {("C1", "C1", "C2"), ("C1", "C2", "C2")}  # 2 alleles from one parent, 1 from the other
    out = json.loads(world.cross(1, 3))
    assert {o["color"] for o in out["new_organisms"]} == {"red"}  # C1 dominates C3


def test_genetics_lethal_combination_kills():
    world = genetics_world(lethal=("C1", "C1", "C2"))
    outs = [json.loads(world.cross(1, 2)) for _ in range(10)]
    dead = sum(o["non_viable"] for o in outs)
    assert 60 < dead < 140  # about half of 200 get C1/C1/C2
    survivors = {world.organisms[c["id"]].genotype["color"] for o in outs for c in o["new_organisms"]}
    assert survivors == {("C1", "C2", "C2")}


def test_genetics_noise_misreads_at_the_given_rate():
    world = genetics_world(noise=0.2, lethal=("C2", "C3", "C3"))
    readings = [o["color"] for _ in range(50) for o in json.loads(world.cross(1, 2))["new_organisms"]]
    assert 0.15 < sum(r != "blue" for r in readings) / len(readings) < 0.25


def test_genetics_tool_errors():
    env = DiscoveryEnv(world="genetics")
    env.reset(seed=0)
    obs, _, _, _, info = env.step(call("cross", parent1=1, parent2=999))
    assert "no organism with id 999" in info["error"]
    obs, _, _, _, info = env.step(call("list_organisms", first_id=5, last_id=2))
    assert "must be >= first_id" in info["error"]
    assert payload(env.step(call("inspect", organism_id=2))[0])["genotype"]["color"] == "C2/C2/C2"


# -- commits and scoring ------------------------------------------------------------------------------------------


def truth(env: DiscoveryEnv):
    world = env.unwrapped.world
    if env.world_name == "grid":
        return dict(world.rules)
    if env.world_name == "sequence":
        return list(world.chain)
    return {"dominance": {g: list(o) for g, o in world.dominance.items()}, "lethal": list(world.lethal)}


def one_wrong(env: DiscoveryEnv, rules):
    if env.world_name == "grid":
        rules["A"] = next(e for e in EFFECTS if e != rules["A"])
    elif env.world_name == "sequence":
        rules[0] = next(r for r in LIBRARY if r != rules[0])
    else:
        rules["dominance"]["color"] = rules["dominance"]["color"][::-1]
    return rules


WORLDS = [("grid", 5, 30), ("sequence", 4, 8), ("genetics", 3, 10)]


@pytest.mark.parametrize("world,n_rules,steps", WORLDS)
def test_commit_all_right_some_wrong_malformed_and_early(world, n_rules, steps):
    env = DiscoveryEnv(world=world, n_rules=n_rules, required_steps=steps)
    env.reset(seed=4)
    _, reward, terminated, _, info = env.step(call("commit", rules=truth(env)))
    assert not terminated and reward == 0.0
    assert f"run 0 of the {steps} required experiments" in info["error"]
    finish_experiments(env)
    malformed = {"grid": {"A": "e99"}, "sequence": ["reverse"], "genetics": {"dominance": {}}}[world]
    obs, reward, terminated, _, info = env.step(call("commit", rules=malformed))
    assert not terminated and reward == 0.0 and info["error"] in obs
    obs, reward, terminated, _, info = env.step(call("commit", rules=one_wrong(env, truth(env))))
    assert terminated and reward == pytest.approx((n_rules - 1) / n_rules)
    assert info["success"] is False and info["metrics"]["rules_right"] == n_rules - 1
    assert sorted(v for k, v in info["metrics"].items() if k.startswith("rule/")) == [0.0] + [1.0] * (n_rules - 1)
    env.reset(seed=4)
    finish_experiments(env)
    _, reward, terminated, _, info = env.step(call("commit", rules=truth(env)))
    assert terminated and reward == 1.0 and info["success"] is True and info["metrics"]["accuracy"] == 1.0


@pytest.mark.parametrize("rules,message", [
    ({"A": "e1"}, "missing: B"),
    ({"A": "e1", "B": "e2", "F": "e3"}, "not in play: F"),
    ({"A": "e1", "B": "e11"}, "unknown effect id"),
])
def test_grid_malformed_commits_explain(rules, message):
    world = GridWorld(np.random.default_rng(0), 2, 10)
    with pytest.raises(ToolError, match=message):
        world.parse_commit(rules)


@pytest.mark.parametrize("rules,message", [
    ({"dominance": {"color": ["C1", "C2"]}, "lethal": ["C1", "C1", "C2"]}, "list the alleles C1, C2, C3"),
    ({"dominance": {"color": ["C1", "C2", "C3"]}, "lethal": ["C1", "C2"]}, "list of 3 alleles"),
    ({"dominance": {"color": ["C1", "C2", "C3"]}, "lethal": ["C1", "S1", "C2"]}, "not a gene in play|from C1"),
    ({"dominance": {"color": ["C1", "C2", "C3"]}}, "exactly the keys"),
])
def test_genetics_malformed_commits_explain(rules, message):
    world = GeneticsWorld(np.random.default_rng(0), 2, 10, 0.0)
    with pytest.raises(ToolError, match=message):
        world.parse_commit(rules)


def test_genetics_lethal_is_order_free():
    world = genetics_world(lethal=("C1", "C1", "C2"))
    parsed = world.parse_commit({"dominance": {"color": ["C2", "C1", "C3"]}, "lethal": ["C1", "C2", "C1"]})
    assert world.grade(parsed) == {"dominance_color": True, "lethal": True}


def test_truncated_episode_scores_zero():
    env = DiscoveryEnv(world="sequence", required_steps=5, max_turns=2)
    env.reset(seed=0)
    env.step(call("notes", action="add", text="first idea"))
    _, reward, terminated, truncated, info = env.step(call("notes", action="read"))
    assert truncated and not terminated and reward == 0.0
    assert info["success"] is False and info["metrics"]["committed"] == 0.0 and info["metrics"]["accuracy"] == 0.0


def test_notes_keep_what_was_written():
    env = DiscoveryEnv()
    env.reset(seed=0)
    env.step(call("notes", action="add", text="A might be e3"))
    assert payload(env.step(call("notes", action="read"))[0])["notes"] == ["A might be e3"]
    assert "non-empty" in env.step(call("notes", action="add"))[4]["error"]


# -- the oracle ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("world,n_rules,steps", WORLDS)
def test_oracle_runs_exactly_the_required_experiments(world, n_rules, steps):
    env = DiscoveryEnv(world=world, n_rules=n_rules, required_steps=steps)
    actions, _, info = run_oracle(env, seed=11)
    assert info["success"] and info["metrics"]["experiments"] == steps
    experiment = {"grid": "move", "sequence": "run", "genetics": "cross"}[world]
    assert sum(f'"name": "{experiment}"' in a for a in actions) == steps


@pytest.mark.parametrize("world", ["grid", "sequence", "genetics"])
def test_oracle_infers_rules_changed_after_reset(world):
    """Swap the hidden rules after reset: the oracle still commits the new ones, so it reads only observations."""
    env = DiscoveryEnv(world=world)
    env.reset(seed=5)
    w = env.unwrapped.world
    if world == "grid":
        w.rules = dict(zip(w.letters, ["e10", "e9", "e8", "e7", "e6"]))
    elif world == "sequence":
        w.chain = ["dedupe", "add_prev_a", "max_b", "rotate", "interleave"]
    else:
        w.dominance = {g: alleles(i)[::-1] for i, g in enumerate(w.genes)}
        w.lethal_gene, w.lethal = "size", ("S1", "S2", "S3")
    while True:
        _, _, terminated, truncated, info = env.step(env.oracle_action())
        if terminated or truncated:
            break
    assert info["success"] is True


@pytest.mark.parametrize("world", ["grid", "sequence", "genetics"])
def test_oracle_is_a_function_of_the_observations(world):
    """A fresh experimenter fed the same observations makes the same calls (it holds no env reference)."""
    env = DiscoveryEnv(world=world)
    actions, observations, _ = run_oracle(env, seed=2)
    fresh = type(env.unwrapped._oracle)()
    replay = [fresh.next_call(obs) for obs in observations[:-1]]
    assert [json.loads(a.split("<tool_call>")[1].split("</tool_call>")[0])["name"] for a in actions] == \
        [c.name for c in replay]


def test_knobs_change_the_oracle_episode_length_and_the_commit():
    lengths = {steps: len(run_oracle(DiscoveryEnv(world="grid", required_steps=steps), 0)[0]) for steps in (20, 40)}
    assert lengths[40] >= lengths[20] + 20
    for n_rules in (2, 4):
        env = DiscoveryEnv(world="sequence", n_rules=n_rules, required_steps=8)
        actions, _, info = run_oracle(env, 0)
        assert len(json.loads(actions[-1].split("<tool_call>")[1].split("</tool_call>")[0])["arguments"]["rules"]) \
            == n_rules == info["metrics"]["n_rules"]


@pytest.mark.parametrize("kwargs,knob", [
    ({"world": "maze"}, "world"), ({"n_rules": 6}, "n_rules"), ({"world": "genetics", "n_rules": 1}, "n_rules"),
    ({"required_steps": 0}, "required_steps"), ({"noise": 0.5}, "noise"), ({"max_turns": 0}, "max_turns"),
    ({"n_rules": True}, "n_rules"),
])
def test_bad_knobs_raise(kwargs, knob):
    with pytest.raises(ValueError, match=knob):
        DiscoveryEnv(**kwargs)


# -- fuzzing the tool calls -------------------------------------------------------------------------------------------

TOOL_NAMES = ["move", "look", "reset", "run", "cross", "inspect", "list_organisms", "notes", "commit", "bogus"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12) | st.sampled_from(["up", "ABCDE", "AAAAA", "e3", "C1", "read", "add"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ARGS = st.dictionaries(st.sampled_from(["direction", "seq_a", "seq_b", "parent1", "parent2", "organism_id",
                                        "first_id", "last_id", "action", "text", "rules", "x"]), JSON_VALUES,
                       max_size=4)


@pytest.mark.parametrize("world", ["grid", "sequence", "genetics"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(st.tuples(st.sampled_from(TOOL_NAMES), ARGS), min_size=1, max_size=6))
def test_malformed_tool_calls_get_explanatory_errors(world, calls):
    env = DiscoveryEnv(world=world, required_steps=50)
    env.reset(seed=0)
    for name, arguments in calls:
        obs, reward, terminated, truncated, info = env.step(call(name, **arguments))
        assert np.isfinite(reward)
        assert not terminated, "no commit can be accepted before the required experiments"
        if not info["tool_calls"] or not info["tool_calls"][0]["ok"]:  # unparseable message, or a refused call
            assert info["error"] and info["error"] in obs


@pytest.mark.parametrize("world", ["grid", "sequence", "genetics"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=JSON_VALUES)
def test_any_commit_after_the_experiments_is_scored_or_explained(world, rules):
    env = DiscoveryEnv(world=world, required_steps=4)
    env.reset(seed=0)
    finish_experiments(env)
    obs, reward, terminated, _, info = env.step(call("commit", rules=rules))
    assert 0.0 <= reward <= 1.0
    if not terminated:
        assert info["error"] in obs and reward == 0.0


@pytest.mark.parametrize("world", ["sequence", "genetics"])
def test_every_world_is_seeded_and_passes_check_env(world):
    from gymnasium.utils.env_checker import check_env

    check_env(DiscoveryEnv(world=world), skip_render_check=True)
    assert run_oracle(DiscoveryEnv(world=world), 7)[1] == run_oracle(DiscoveryEnv(world=world), 7)[1]


# The hand-written schemas the generated ones replaced (copied here as the reference).
_ID = {"type": "integer", "minimum": 1}
_SEQ = {"type": "string", "description": "exactly 5 letters from A-E, at least 2 different"}
_NOTES = function_schema("notes", "notebook", {"action": {"type": "string", "enum": ["add", "read"]},
                                               "text": {"type": "string"}}, required=["action"])
OLD_TOOLS = {
    "grid": [function_schema("move", "m", {"direction": {"type": "string", "enum": ["up", "down", "left", "right"]}}),
             function_schema("look", "l", {}), function_schema("reset", "r", {}), _NOTES,
             function_schema("commit", "c", {"rules": {"type": "object"}})],
    "sequence": [function_schema("run", "r", {"seq_a": _SEQ, "seq_b": _SEQ}), _NOTES,
                 function_schema("commit", "c", {"rules": {"type": "array", "items": {"type": "string"}}})],
    "genetics": [function_schema("list_organisms", "l", {"first_id": _ID, "last_id": _ID}, required=[]),
                 function_schema("cross", "c", {"parent1": _ID, "parent2": _ID}),
                 function_schema("inspect", "i", {"organism_id": _ID}), _NOTES,
                 function_schema("commit", "c", {"rules": {"type": "object"}})],
}
ARG_NAMES = ["direction", "seq_a", "seq_b", "first_id", "last_id", "parent1", "parent2", "organism_id", "action",
             "text", "rules", "x"]
ARG_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 60) | st.floats(allow_nan=True) | st.text(max_size=6)
    | st.sampled_from(["up", "left", "north", "ABCDE", "add", "read", "e3"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["A", "B", "lethal"]), inner,
                                                                max_size=2),
    max_leaves=6)
GOOD_AND_BAD = [("move", {"direction": "up"}), ("move", {"direction": "north"}), ("move", {}), ("look", {}),
                ("look", {"x": 1}), ("reset", {}), ("run", {"seq_a": "ABCDE", "seq_b": "EDCBA"}),
                ("run", {"seq_a": "ABCDE"}), ("run", {"seq_a": 5, "seq_b": "A"}), ("list_organisms", {}),
                ("list_organisms", {"first_id": 0}), ("list_organisms", {"first_id": 3, "last_id": 9}),
                ("list_organisms", {"last_id": None}), ("cross", {"parent1": 1, "parent2": 2}),
                ("cross", {"parent1": 1.5, "parent2": 2}), ("cross", {"parent1": True, "parent2": 2}),
                ("inspect", {"organism_id": 1}), ("inspect", {"organism_id": -1}), ("notes", {"action": "read"}),
                ("notes", {"action": "add", "text": "hi"}), ("notes", {"action": "delete"}), ("notes", {"text": "x"}),
                ("commit", {"rules": {"A": "e3"}}), ("commit", {"rules": ["r1"]}), ("commit", {"rules": [1]}),
                ("commit", {"rules": "A=e3"}), ("commit", {}), ("bogus", {})]


@pytest.mark.parametrize("world", ["grid", "sequence", "genetics"])
@settings(max_examples=60, deadline=None)
@given(random_calls=st.lists(st.tuples(st.sampled_from(sorted({n for n, _ in GOOD_AND_BAD})),
                                       st.dictionaries(st.sampled_from(ARG_NAMES), ARG_VALUES, max_size=3)),
                             max_size=6))
def test_generated_tool_schemas_validate_as_the_hand_written_ones_did(world, random_calls):
    tools = DiscoveryEnv(world=world).tools
    assert [t["function"]["name"] for t in tools] == [t["function"]["name"] for t in OLD_TOOLS[world]]
    for name, arguments in GOOD_AND_BAD + random_calls:
        call = ToolCall(name, arguments)
        assert validate_call(call, tools) == validate_call(call, OLD_TOOLS[world]), (name, arguments)
    assert all(t["function"]["description"] for t in tools)


def test_generated_descriptions_state_the_constants():
    from longhorizon.envs.discovery import genetics
    by_name = {t["function"]["name"]: t["function"]["description"] for t in genetics.TOOLS}
    assert f"at most {genetics.LIST_LIMIT};" in by_name["list_organisms"]
    assert f": {genetics.OFFSPRING_PER_CROSS} offspring" in by_name["cross"]
    from longhorizon.envs.discovery import grid
    assert grid.TOOLS[0]["function"]["parameters"]["properties"]["direction"]["enum"] == list(grid.DIRECTIONS)
