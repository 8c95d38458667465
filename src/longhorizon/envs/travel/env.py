"""`longhorizon/Travel-v0`: plan a multi-day trip with search tools under hard and commonsense constraints.

After TravelPlanner (Xie et al., ICML 2024, arXiv 2402.01622; evaluation code
github.com/OSU-NLP-Group/TravelPlanner, `evaluation/*.py`). A user query in
natural language (from templates) asks for a `days`-day round trip from an
origin city to a destination city (`n_cities` = 1) or to `n_cities` cities of
a destination state, for some people, within a budget and possibly with hard
constraints on house rules, room type, cuisines and transportation. The agent
searches a synthetic database with tools (search_cities, search_flights,
search_distance, search_accommodations, search_restaurants, search_attractions,
notes) and ends the episode with `submit_plan(plan)`.

Plan schema (`submit_plan`'s `plan`: a JSON array, or a string holding one; a
`{"plan": [...]}` wrapper is accepted too): one object per day, in order:

    {"day": 1,                                   # 1..days
     "current_city": "from Ashford to Belmont",  # a travel day; a staying day is just "Belmont"
     "transportation": "flight F1234",           # or "self-driving", "taxi"; "-" when not travelling
     "breakfast": "R012", "lunch": "R007", "dinner": "-",   # restaurant ids or "-"
     "attraction": ["A003"],                     # attraction ids (may be empty)
     "accommodation": "H005"}                    # where you sleep that night; "-" on the last day

`null` is accepted wherever "-" is. Travel days are the days whose
current_city reads "from X to Y"; meals and attractions on them may be in X or Y.

Metrics (TravelPlanner, section 3.3 and `evaluation/eval.py`), per episode in `info["metrics"]`:
- `delivery_rate`: a plan was submitted and parses (a non-empty JSON list of day objects);
- commonsense constraints (8): within_sandbox, complete_information,
  within_current_city, reasonable_city_route, diverse_restaurants,
  diverse_attractions, non_conflicting_transportation, minimum_nights;
  `commonsense_micro` = passed / 8, `commonsense_macro` = 1 if all pass;
- hard constraints: budget (always) plus each of room_rule, room_type, cuisine,
  transportation that the query states; as in the paper's code they are only
  evaluated when complete_information and within_sandbox pass (else they all
  fail); `hard_micro` = passed / stated, `hard_macro` = 1 if all pass;
- `final_pass` = delivered and every commonsense and hard constraint passes;
- `cs/<name>` and `hard/<name>` (1.0 pass / 0.0 fail), `total_cost`, `budget`.
Reward: `final_pass` (0 or 1), paid on the submit step (0 on every other step);
`info["success"]` = `info["correct"]` = final pass. An episode cut by the turn
limit delivers nothing and scores 0 on everything.

Cost (as `evaluation/hard_constraint.py`): flight price x people; self-driving
cost x ceil(people / 5); taxi cost x ceil(people / 4); meal average cost x
people; accommodation price x ceil(people / maximum occupancy) per night.

Knobs: `days` (3, 5, 7), `n_cities` (1 to min(3, days - 1)), `tightness`
(0..1, see below) and `max_turns` (turn limit, default 60). The plan has
`days` entries. The oracle's episode is its searches, 8 calls per message,
then the submit: 7 searches for one city whatever `days`; for 2-3 cities it
searches the state's 5 cities and every leg on every possible transfer date,
so it grows with `n_cities` and `days` (about 115 searches for 5 days / 2
cities, 155 for 7 days / 3 cities; fewer when flights are ruled out).

Feasibility and tightness: the generator draws a reference route (cities and
nights), draws the stated constraints, edits the database so that route can
satisfy them (one accommodation per city obeying house rule / room type /
minimum nights, a restaurant for each cuisine), then runs the reference solver
`solve` on the full database. budget = ceil(cost x (2 - tightness)) of the
solver's plan; tightness also sets how many of the 4 optional hard constraints
are stated (round(4 x tightness)). The oracle searches every city, route leg and
date the solver considers through the tools, rebuilds a database from the tool
results alone and runs the same solver, so it always meets the budget.

Departures from TravelPlanner:
1. The database is synthetic and drawn from the seed (cities, states, flights,
   distances, accommodations, restaurants, attractions); plans cite entity ids
   instead of names, so no fuzzy name matching is needed.
2. Queries are independent of the paper's day/city pairing: `days` in {3,5,7}
   and `n_cities` in 1..min(3, days-1) can be combined freely.
3. `search_distance` returns self-driving and taxi costs together; flights exist
   only between the origin and destination-state cities, on trip dates.
4. complete_information keeps the paper's structural checks (day count, visited
   city count, keys present, transport on travel days, meals and an attraction
   on staying days, accommodation every night) but drops its "50% of fields
   filled" rule, which those checks already imply here.
5. Transportation on a day without travel, or a flight whose route is not the
   day's "from X to Y", fails within_current_city; a flight on another date fails
   within_sandbox.
6. "Cheapest feasible plan" means the reference solver's plan: exact over city
   order, night split, transport (per-leg cheapest within a non-conflicting mode
   family) and one accommodation per city, with restaurants chosen greedily
   (cheapest per city, then the cheapest swap or extra meal for each missing cuisine).
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from longhorizon.envs.core.base import clip_text
from longhorizon.envs.core.knobs import Int, Knobs, Real, set_knobs
from longhorizon.envs.core.tools import Notebook, ToolCall, ToolEnv, ToolError, ToolResult, dumps, tool_schema
from longhorizon.envs.travel.generator import make_query
from longhorizon.envs.travel.oracle import Planner
from longhorizon.envs.travel.solver import solve
from longhorizon.envs.travel.verifier import evaluate_plan
from longhorizon.envs.travel.world import Query, query_text, to_json


# -- the environment ---------------------------------------------------------------------------------------

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class TravelKnobs(Knobs):
    """Travel's knobs."""

    days: Literal[3, 5, 7] = Field(3, description="trip length in days: 3, 5 or 7 (TravelPlanner's three lengths)")
    n_cities: Int = Field(1, ge=1, le=3, description="cities to visit: 1 (a named city) or 2-3 (in a named state); "
                          "at most days - 1")
    tightness: Real = Field(0.5, ge=0.0, le=1.0, description="0..1: budget = ceil((2 - tightness) x the reference "
                            "solver's cheapest cost), and round(4 x tightness) of the optional hard constraints "
                            "(house rule, room type, cuisine, transportation) are stated")
    max_turns: Int = Field(60, ge=1, description="turn limit (assistant messages) before the episode is truncated "
                           "with nothing delivered")

    @model_validator(mode="after")
    def _cities_fit(self) -> TravelKnobs:
        if self.n_cities > self.days - 1:
            raise ValueError(f"n_cities must be an integer in [1, {min(3, self.days - 1)}] for days={self.days}, "
                             f"got {self.n_cities!r}")
        return self


class TravelEnv(ToolEnv):
    """Plan a trip with search tools; graded by TravelPlanner's delivery, commonsense, hard and final pass rates."""

    REWARD: ClassVar[str] = "1 if the plan passes every constraint (final pass), else 0, on the submit step"

    HORIZON_KNOB: ClassVar[str | None] = "days"
    Knobs = TravelKnobs
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "easy": {"days": 3, "n_cities": 1, "tightness": 0.0},
        "default": {},
        "medium": {"days": 5, "n_cities": 2, "tightness": 0.5},
        "hard": {"days": 7, "n_cities": 3, "tightness": 1.0},
    }

    def __init__(self, render_mode: str | None = None, **knobs: Any):
        super().__init__(render_mode)
        self.knobs = set_knobs(self, TravelKnobs, knobs)
        self.max_steps = self.max_turns

    # -- episode ---------------------------------------------------------------------------------------------
    def _reset_task(self) -> str:
        self.db, self.query = make_query(self.np_random, self.days, self.n_cities, self.tightness)
        self.notebook = Notebook()
        self.metrics: dict[str, float] | None = None
        self._planner: Planner | None = None
        self._oracle_memo: tuple[int, list[ToolCall]] | None = None
        return intro(self.query)

    # -- tools -----------------------------------------------------------------------------------------------
    def tool_search_cities(self, state: str) -> str:
        """List the cities of a state.

        Args:
            state: the state's name
        """
        if state not in self.db.states:
            known = ", ".join(sorted(self.db.states))
            raise ToolError(f"unknown state {clip_text(state, 40)!r}; known states: {known}")
        return dumps({"state": state, "cities": sorted(self.db.states[state])})

    def tool_search_flights(self, origin: str, destination: str, date: str) -> str:
        """Flights from origin to destination on a date (YYYY-MM-DD); price per person.

        Args:
            origin: the city to fly from
            destination: the city to fly to
            date: the day of the flight, YYYY-MM-DD
        """
        self._check_city(origin)
        self._check_city(destination)
        if not DATE_RE.match(date):
            raise ToolError(f"date must look like YYYY-MM-DD, got {clip_text(date, 20)!r}")
        flights = [to_json(f) for f in self.db.flights_on(origin, destination, date)]
        return dumps({"origin": origin, "destination": destination, "date": date, "flights": flights})

    def tool_search_distance(self, origin: str, destination: str) -> str:
        """Driving distance, duration and cost between two cities: self-driving (per car of up to 5 people) and taxi (per taxi of up to 4).

        Args:
            origin: the city to start from
            destination: the city to drive to
        """
        self._check_city(origin)
        self._check_city(destination)
        if origin == destination:
            raise ToolError("origin and destination are the same city")
        return dumps(to_json(self.db.drives[(origin, destination)]))

    def tool_search_accommodations(self, city: str) -> str:
        """Accommodations in a city: price per night per room, room type, house rules, minimum nights, maximum occupancy per room.

        Args:
            city: the city's name
        """
        self._check_city(city)
        return dumps({"city": city, "accommodations": [to_json(h) for h in self.db.in_city(self.db.hotels, city)]})

    def tool_search_restaurants(self, city: str) -> str:
        """Restaurants in a city: cuisines and average cost per person.

        Args:
            city: the city's name
        """
        self._check_city(city)
        return dumps({"city": city, "restaurants": [to_json(r) for r in self.db.in_city(self.db.restaurants, city)]})

    def tool_search_attractions(self, city: str) -> str:
        """Attractions in a city.

        Args:
            city: the city's name
        """
        self._check_city(city)
        return dumps({"city": city, "attractions": [to_json(a) for a in self.db.in_city(self.db.attractions, city)]})

    def tool_notes(self, action: str, text: str | None = None) -> str:
        return self.notebook(action, text)

    def tool_submit_plan(self, plan: list | str) -> str:
        """Submit the final plan (ends the episode). `plan` is a JSON array of day objects (or a string holding one); see the schema in the task.

        Args:
            plan: the plan, a JSON array of day objects or a string holding one
        """
        self.metrics, reasons = evaluate_plan(plan, self.db, self.query)
        self.done = True
        verdict = "passes every constraint" if self.metrics["final_pass"] else "fails: " + "; ".join(reasons)
        return dumps({"submitted": True, "delivered": bool(self.metrics["delivery_rate"]), "verdict": verdict})

    def check_plan(self, plan: Any) -> list[str]:
        """The constraint verifier on this task, without submitting: each violated constraint as "name: why"
        (TravelPlanner's commonsense and hard constraints, as `submit_plan` grades them); [] if the plan passes."""
        return evaluate_plan(plan, self.db, self.query)[1]

    def _check_city(self, city: str) -> None:
        if city not in self.db.cities():
            raise ToolError(f"unknown city {clip_text(city, 40)!r}; use search_cities(state) to list a state's cities "
                            f"(states: {', '.join(sorted(self.db.states))})")

    # -- ToolEnv hooks -----------------------------------------------------------------------------------------
    def step_reward(self, results: list[ToolResult]) -> float:
        return self.metrics["final_pass"] if self.done and self.metrics else 0.0

    def final_info(self) -> dict[str, Any]:
        metrics = self.metrics
        if metrics is None:
            metrics, _ = evaluate_plan(None, self.db, self.query)
        success = bool(metrics["final_pass"])
        return {"success": success, "correct": success, "metrics": metrics}

    def oracle_call(self) -> list[ToolCall]:
        """The solver's next calls; it is fed the latest observation only (never the database)."""
        if self._oracle_memo is None or self._oracle_memo[0] != self.steps:
            if self._planner is None:
                self._planner = Planner()
            self._oracle_memo = (self.steps, self._planner.next_calls(self._last_obs, self.max_calls_per_step))
        return self._oracle_memo[1]

    def wrong_action(self, rng: np.random.Generator) -> str:
        """The reference plan with day 1's transportation removed (fails complete information)."""
        solution = solve(self.db, self.query)
        assert solution is not None, "every generated query is feasible"
        plan = solution[0]
        plan[0]["transportation"] = "-"
        return "<tool_call>" + json.dumps({"name": "submit_plan", "arguments": {"plan": plan}}) + "</tool_call>"


def intro(query: Query) -> str:
    return (
        "=== TRAVEL PLANNING ===\n"
        f"{query_text(query)}\n\n"
        "Search the travel database with the tools, then submit one plan with submit_plan (this ends the task).\n"
        "The plan is a JSON array with one object per day, in order:\n"
        '  {"day": 1, "current_city": "from <origin> to <city>" on a travel day, or "<city>" on a day spent in one '
        'city, "transportation": "flight <id>" | "self-driving" | "taxi" (on travel days; "-" otherwise), '
        '"breakfast": "<restaurant id>" or "-", "lunch": ..., "dinner": ..., "attraction": ["<attraction id>", ...], '
        '"accommodation": "<accommodation id>" (where you sleep that night; "-" on the last day)}\n'
        "Rules a valid plan follows: the trip starts at the origin on day 1 and returns there on the last day; it "
        "visits the requested number of cities, each in one consecutive stay; every travel day has "
        "transportation; every day spent in one city has breakfast, lunch, dinner and at least one attraction; "
        "every night but the last has an accommodation; meals, attractions and the accommodation are in that "
        "day's city (on a travel day, either city; the accommodation in the arrival city); no restaurant or "
        "attraction is used twice; self-driving is never combined with flights or taxis; each accommodation is "
        "booked for at least its minimum nights in a row; only ids from the search results are used.\n"
        "Cost: flights are per person; self-driving costs per car of up to 5 people, taxis per taxi of up to 4; "
        "meals per person; accommodations per room per night, with as many rooms as the maximum occupancy "
        "requires. The total must not exceed the budget, and the plan must meet every wish in the query.\n"
        "Tools: search_cities(state), search_flights(origin, destination, date), search_distance(origin, "
        "destination), search_accommodations(city), search_restaurants(city), search_attractions(city), "
        "notes(action, text), submit_plan(plan)."
    )


# Each tool's schema comes from its method's signature and docstring (the notebook's is shared).
TOOLS = TravelEnv.tools = [
    *(tool_schema(getattr(TravelEnv, f"tool_{name}")) for name in (
        "search_cities", "search_flights", "search_distance", "search_accommodations", "search_restaurants",
        "search_attractions")),
    Notebook.schema,
    tool_schema(TravelEnv.tool_submit_plan),
]
