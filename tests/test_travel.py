"""Travel-v0: each TravelPlanner constraint on hand-built plans, the metrics, delivery, knobs and the oracle."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longhorizon.envs.core.tools import parse_results
from longhorizon.envs.travel.env import TravelEnv
from longhorizon.envs.travel.generator import make_query
from longhorizon.envs.travel.oracle import Planner
from longhorizon.envs.travel.solver import solve
from longhorizon.envs.travel.verifier import _valid_city_sequence, evaluate_plan
from longhorizon.envs.travel.world import (
    COMMONSENSE,
    Attraction,
    Database,
    Drive,
    Flight,
    Hotel,
    Query,
    Restaurant,
    query_text,
    read_query,
)

DATES = ("2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05")


def small_db() -> Database:
    """Origin in Homeland; Alpha, Beta, Gamma in Sunland."""
    cities = ["Origin", "Alpha", "Beta", "Gamma"]
    drives = {(a, b): Drive(a, b, 100, "1 hours 15 mins", 25, 90) for a in cities for b in cities if a != b}
    flights = [Flight("F100", "Origin", "Alpha", DATES[0], "08:00", "09:00", 100),
               Flight("F101", "Alpha", "Beta", DATES[2], "08:00", "09:00", 60),
               Flight("F102", "Beta", "Origin", DATES[4], "18:00", "19:00", 90),
               Flight("F103", "Origin", "Gamma", DATES[0], "08:00", "09:00", 70),
               Flight("F104", "Alpha", "Beta", DATES[3], "08:00", "09:00", 60)]
    hotels = [Hotel("H1", "Alpha Loft", "Alpha", "Entire home/apt", 100, (), 1, 4),
              Hotel("H2", "Beta Room", "Beta", "Private room", 80, ("No pets",), 1, 2),
              Hotel("H3", "Alpha Villa", "Alpha", "Entire home/apt", 90, (), 3, 4),
              Hotel("H4", "Gamma Bed", "Gamma", "Shared room", 30, (), 1, 1)]
    restaurants = [Restaurant(f"R{i}", f"Place {i}", "Alpha" if i <= 6 else "Beta",
                              ("Thai",) if i == 2 else ("Italian", "Cafe"), 10 + i) for i in range(1, 13)]
    attractions = [Attraction(f"A{i}", f"Sight {i}", "Alpha" if i <= 2 else "Beta") for i in range(1, 5)]
    return Database({"Homeland": ["Origin"], "Sunland": ["Alpha", "Beta", "Gamma"]},
                    {f.id: f for f in flights}, drives, {h.id: h for h in hotels},
                    {r.id: r for r in restaurants}, {a.id: a for a in attractions})


QUERY = Query("Origin", "Sunland", 2, DATES, people=2, budget=10_000)


def day(n, city, transport="-", meals=("-", "-", "-"), sights=(), hotel="-"):
    return {"day": n, "current_city": city, "transportation": transport, "breakfast": meals[0], "lunch": meals[1],
            "dinner": meals[2], "attraction": list(sights), "accommodation": hotel}


def good_plan():
    return [day(1, "from Origin to Alpha", "flight F100", hotel="H1"),
            day(2, "Alpha", meals=("R1", "R2", "R3"), sights=["A1"], hotel="H1"),
            day(3, "from Alpha to Beta", "flight F101", hotel="H2"),
            day(4, "Beta", meals=("R7", "R8", "R9"), sights=["A3"], hotel="H2"),
            day(5, "from Beta to Origin", "flight F102")]


def failed(metrics: dict[str, float], prefix: str) -> list[str]:
    return sorted(k.removeprefix(prefix) for k, v in metrics.items() if k.startswith(prefix) and v == 0.0)


def test_good_plan_passes_everything():
    metrics, reasons = evaluate_plan(good_plan(), small_db(), QUERY)
    assert reasons == [] and metrics["final_pass"] == 1.0
    # flights (100 + 60 + 90) x 2 people + meals (11+12+13 + 17+18+19) x 2 people
    # + H1 2 nights x 100 x 1 room (sleeps 4) + H2 2 nights x 80 x 1 room (sleeps 2)
    assert metrics["total_cost"] == 250 * 2 + 90 * 2 + 2 * 100 + 2 * 80 == 1040


def edit(plan, i, **changes):
    plan = copy.deepcopy(plan)
    plan[i].update(changes)
    return plan


ONE_COMMONSENSE_VIOLATION = {
    "within_sandbox": edit(good_plan(), 1, lunch="R99"),
    "complete_information": edit(good_plan(), 3, dinner="-"),
    "within_current_city": edit(good_plan(), 1, lunch="R10"),  # a Beta restaurant on a day in Alpha
    "reasonable_city_route": edit(good_plan(), 4, current_city="from Beta to Alpha", transportation="taxi"),
    "diverse_restaurants": edit(good_plan(), 3, lunch="R7"),
    "diverse_attractions": edit(good_plan(), 2, attraction=["A1"]),  # A1 again, on the day leaving Alpha
    "non_conflicting_transportation": edit(good_plan(), 2, transportation="self-driving"),
    "minimum_nights": edit(edit(good_plan(), 0, accommodation="H3"), 1, accommodation="H3"),
}


@pytest.mark.parametrize("constraint", COMMONSENSE)
def test_each_commonsense_constraint_fails_alone(constraint):
    metrics, reasons = evaluate_plan(ONE_COMMONSENSE_VIOLATION[constraint], small_db(), QUERY)
    assert failed(metrics, "cs/") == [constraint], reasons
    assert metrics["commonsense_micro"] == pytest.approx(7 / 8) and metrics["commonsense_macro"] == 0.0
    assert metrics["final_pass"] == 0.0 and metrics["delivery_rate"] == 1.0


def test_within_sandbox_catches_a_flight_on_another_date_and_current_city_a_wrong_route():
    metrics, _ = evaluate_plan(edit(good_plan(), 2, transportation="flight F104"), small_db(), QUERY)
    assert failed(metrics, "cs/") == ["within_sandbox"]  # F104 flies Alpha -> Beta on day 4, not day 3
    metrics, _ = evaluate_plan(edit(good_plan(), 0, transportation="flight F103"), small_db(), QUERY)
    assert failed(metrics, "cs/") == ["within_current_city"]  # F103 flies Origin -> Gamma


ONE_HARD_VIOLATION = {
    "budget": (replace(QUERY, budget=1039), good_plan()),
    "room_rule": (replace(QUERY, house_rule="pets"), good_plan()),  # H2 says "No pets"
    "room_type": (replace(QUERY, room_type="entire room"), good_plan()),  # H2 is a private room
    "cuisine": (replace(QUERY, cuisines=("Thai", "Mexican")), good_plan()),  # R2 is Thai; nothing is Mexican
    "transportation": (replace(QUERY, transport="no flight"), good_plan()),
}


@pytest.mark.parametrize("constraint", list(ONE_HARD_VIOLATION))
def test_each_hard_constraint_fails_alone(constraint):
    query, plan = ONE_HARD_VIOLATION[constraint]
    metrics, reasons = evaluate_plan(plan, small_db(), query)
    assert failed(metrics, "cs/") == [] and failed(metrics, "hard/") == [constraint], reasons
    stated = len(query.stated())
    assert metrics["hard_micro"] == pytest.approx((stated - 1) / stated) and metrics["hard_macro"] == 0.0
    assert metrics["final_pass"] == 0.0


def test_budget_is_inclusive_and_unstated_constraints_are_not_scored():
    metrics, _ = evaluate_plan(good_plan(), small_db(), replace(QUERY, budget=1040))
    assert metrics["hard/budget"] == 1.0 and metrics["final_pass"] == 1.0
    assert "hard/room_rule" not in metrics and metrics["hard_micro"] == 1.0


def test_the_matching_hard_constraints_pass():
    query = replace(QUERY, house_rule="smoking", room_type="not shared room", cuisines=("Cafe",),
                    transport="no self-driving")
    metrics, _ = evaluate_plan(good_plan(), small_db(), query)
    assert metrics["hard_micro"] == 1.0 and metrics["hard_macro"] == 1.0 and metrics["final_pass"] == 1.0


def test_micro_macro_with_several_failures_and_the_hard_gate():
    plan = edit(edit(good_plan(), 3, lunch="R7"), 1, attraction=["A4"])  # repeated restaurant + Beta sight in Alpha
    query = replace(QUERY, house_rule="pets", room_type="not shared room")
    metrics, _ = evaluate_plan(plan, small_db(), query)
    assert failed(metrics, "cs/") == ["diverse_restaurants", "within_current_city"]
    assert metrics["commonsense_micro"] == pytest.approx(6 / 8)
    assert metrics["hard_micro"] == pytest.approx(2 / 3) and metrics["hard_macro"] == 0.0
    # An incomplete plan is not checked against the hard constraints (TravelPlanner's eval.py): all count as failed.
    metrics, _ = evaluate_plan(good_plan()[:4], small_db(), query)
    assert metrics["cs/complete_information"] == 0.0
    assert metrics["hard_micro"] == 0.0 and failed(metrics, "hard/") == ["budget", "room_rule", "room_type"]


@pytest.mark.parametrize("plan,delivered", [
    ("[{\"day\": 1,", False), ("", False), ("[]", False), ("[1, 2]", False), ({"days": []}, False),
    (json.dumps(good_plan()), True), ({"plan": good_plan()}, True), (good_plan(), True),
])
def test_delivery(plan, delivered):
    metrics, reasons = evaluate_plan(plan, small_db(), QUERY)
    assert metrics["delivery_rate"] == float(delivered)
    if not delivered:
        assert reasons[0].startswith("not delivered")
        assert metrics["commonsense_micro"] == metrics["hard_micro"] == metrics["final_pass"] == 0.0


def test_null_and_dash_are_both_empty_and_flight_ids_may_be_bare():
    plan = good_plan()
    plan[0]["breakfast"], plan[4]["accommodation"], plan[2]["transportation"] = None, None, "F101"
    metrics, reasons = evaluate_plan(plan, small_db(), QUERY)
    assert metrics["final_pass"] == 1.0, reasons


@pytest.mark.parametrize("cities,ok", [
    (["O", "A", "A", "O"], True), (["O", "A", "A", "B", "B", "O"], True), (["O", "A", "B", "O"], False),
    (["O", "A", "A", "B", "B", "A", "A", "O"], False), (["O", "O"], False),
])
def test_travelplanner_city_sequence_rule(cities, ok):
    assert _valid_city_sequence(cities) is ok


def test_malformed_days_do_not_crash_the_evaluator():
    plan = [{"day": "1", "current_city": 7, "attraction": "A1", "breakfast": ["R1"]}, {}, {"current_city": ""}]
    metrics, _ = evaluate_plan(plan, small_db(), QUERY)
    assert metrics["delivery_rate"] == 1.0 and metrics["final_pass"] == 0.0


# -- the environment ---------------------------------------------------------------------------------------------


def call(name: str, **arguments) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def run_oracle(env: TravelEnv, seed: int) -> tuple[list[str], list[str], dict]:
    obs, _ = env.reset(seed=seed)
    actions, observations = [], [obs]
    while True:
        actions.append(env.oracle_action())
        obs, _, terminated, truncated, info = env.step(actions[-1])
        observations.append(obs)
        if terminated or truncated:
            return actions, observations, info


def test_submit_ends_the_episode_and_a_malformed_plan_is_not_delivered():
    env = TravelEnv()
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(call("submit_plan", plan="[{\"day\": 1,"))
    assert terminated and reward == 0.0 and info["success"] is False
    assert info["metrics"]["delivery_rate"] == 0.0 and "not valid JSON" in obs


def test_truncation_delivers_nothing():
    env = TravelEnv(max_turns=1)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(call("search_attractions", city="Nowhere"))
    assert truncated and not terminated and reward == 0.0
    assert info["metrics"]["delivery_rate"] == 0.0 and info["success"] is False


def test_tools_answer_from_the_database():
    env = TravelEnv(days=5, n_cities=2)
    env.reset(seed=1)
    db, query = env.unwrapped.db, env.unwrapped.query
    cities = parse_results(env.step(call("search_cities", state=query.destination))[0])[0][1]["cities"]
    assert cities == sorted(db.states[query.destination])
    found = parse_results(env.step(call("search_flights", origin=query.origin, destination=cities[0],
                                        date=query.dates[0]))[0])[0][1]["flights"]
    assert [f["id"] for f in found] == [f.id for f in db.flights_on(query.origin, cities[0], query.dates[0])]
    obs, _, _, _, info = env.step(call("search_flights", origin=query.origin, destination=cities[0], date="May 1"))
    assert "YYYY-MM-DD" in info["error"]
    obs, _, _, _, info = env.step(call("search_restaurants", city="Atlantis"))
    assert "unknown city 'Atlantis'" in info["error"] and info["error"] in obs


@pytest.mark.parametrize("seed", range(20))
def test_queries_are_feasible_and_read_back(seed):
    rng = np.random.default_rng(seed)
    days = [3, 5, 7][seed % 3]
    n_cities, tightness = 1 + seed % min(3, days - 1), (seed % 5) / 4
    db, query = make_query(rng, days, n_cities, tightness)
    plan, cost = solve(db, query)
    assert query.budget == math.ceil(cost * (2 - tightness))
    assert len(query.stated()) == 1 + round(4 * tightness)
    metrics, reasons = evaluate_plan(plan, db, query)
    assert metrics["final_pass"] == 1.0, reasons
    assert read_query(query_text(query)) == query


def test_knobs_change_the_plan_and_episode_length():
    lengths = {}
    for days, n_cities in ((3, 1), (5, 2), (7, 3)):
        env = TravelEnv(days=days, n_cities=n_cities, tightness=0.0)
        actions, _, info = run_oracle(env, seed=3)
        assert info["success"]
        plan = json.loads(actions[-1].split("<tool_call>")[1].split("</tool_call>")[0])["arguments"]["plan"]
        assert len(plan) == days
        lengths[days] = (len(actions), sum(a.count("<tool_call>") for a in actions))
    assert lengths[3] < lengths[5] < lengths[7]


def test_tightness_sets_the_budget_and_the_stated_constraints():
    loose, tight = TravelEnv(tightness=0.0), TravelEnv(tightness=1.0)
    loose.reset(seed=8)
    tight.reset(seed=8)
    assert loose.unwrapped.query.stated() == ["budget"] and len(tight.unwrapped.query.stated()) == 5
    _, cost = solve(tight.unwrapped.db, tight.unwrapped.query)
    assert tight.unwrapped.query.budget == cost


def test_oracle_is_a_function_of_the_observations():
    env = TravelEnv(days=5, n_cities=2)
    actions, observations, info = run_oracle(env, seed=4)
    assert info["success"]
    planner = Planner()
    replay = [planner.next_calls(obs, env.max_calls_per_step) for obs in observations[:-1]]
    assert [len(calls) for calls in replay] == [a.count("<tool_call>") for a in actions]
    # the database it rebuilt holds only entities the tools returned
    shown = "\n".join(observations)
    assert all(f'"id": "{h}"' in shown for h in planner.db.hotels)


def test_wrong_action_fails():
    env = TravelEnv()
    env.reset(seed=2)
    _, reward, terminated, _, info = env.step(env.wrong_action(np.random.default_rng(0)))
    assert terminated and reward == 0.0 and info["metrics"]["cs/complete_information"] == 0.0


@pytest.mark.parametrize("kwargs,knob", [({"days": 4}, "days"), ({"days": 3, "n_cities": 3}, "n_cities"),
                                         ({"tightness": 1.5}, "tightness"), ({"max_turns": 0}, "max_turns")])
def test_bad_knobs_raise(kwargs, knob):
    with pytest.raises(ValueError, match=knob):
        TravelEnv(**kwargs)


TOOL_NAMES = ["search_cities", "search_flights", "search_distance", "search_accommodations", "search_restaurants",
              "search_attractions", "notes", "bogus"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=12)
    | st.sampled_from(["Ashford", "2024-03-01", "read", "add", "-"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
ARGS = st.dictionaries(st.sampled_from(["state", "origin", "destination", "date", "city", "action", "text", "plan",
                                        "x"]), JSON_VALUES, max_size=4)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(st.tuples(st.sampled_from(TOOL_NAMES), ARGS), min_size=1, max_size=5),
       plan=JSON_VALUES)
def test_malformed_tool_calls_get_explanatory_errors(calls, plan):
    env = TravelEnv()
    env.reset(seed=0)
    for name, arguments in calls:
        obs, reward, terminated, truncated, info = env.step(call(name, **arguments))
        assert np.isfinite(reward) and not terminated
        if not info["tool_calls"] or not info["tool_calls"][0]["ok"]:  # unparseable message, or a refused call
            assert info["error"] and info["error"] in obs
    obs, reward, terminated, _, info = env.step(call("submit_plan", plan=plan))
    assert reward == 0.0 and info.get("success") is not True
    if not terminated:  # `plan` was neither an array nor a string
        assert "plan must be an array or a string" in info["error"]


def test_longer_trips_are_seeded():
    env_a, env_b = TravelEnv(days=5, n_cities=2), TravelEnv(days=5, n_cities=2)
    assert run_oracle(env_a, 7)[1] == run_oracle(env_b, 7)[1]


def test_generated_tool_schemas_validate_as_the_hand_written_ones_did():
    city, text = {"type": "string"}, {"type": "string"}
    expected = {"search_cities": {"state": text}, "search_flights": {"origin": city, "destination": city, "date": text},
                "search_distance": {"origin": city, "destination": city}, "search_accommodations": {"city": city},
                "search_restaurants": {"city": city}, "search_attractions": {"city": city},
                "notes": {"action": {"type": "string", "enum": ["add", "read"]}, "text": text},
                "submit_plan": {"plan": {"type": ["array", "string"]}}}
    tools = TravelEnv().tools
    assert [t["function"]["name"] for t in tools] == list(expected)
    for t in tools:
        name, params = t["function"]["name"], t["function"]["parameters"]
        props = {k: {f: v for f, v in p.items() if f != "description"} for k, p in params["properties"].items()}
        assert props == expected[name] and params["required"] == (["action"] if name == "notes" else list(props))
