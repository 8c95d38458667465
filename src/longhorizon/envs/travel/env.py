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

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field, fields, replace
from itertools import groupby, permutations
from typing import Any, ClassVar

import numpy as np

from longhorizon.envs.core.base import clip_text
from longhorizon.envs.core.tools import (Notebook, ToolCall, ToolEnv, ToolError, ToolResult, dumps, function_schema,
                                   parse_results)

# -- vocabulary --------------------------------------------------------------------------------------

CITY_POOL = (
    "Ashford Belmont Cedarville Dunmore Eastbrook Fairhaven Glenwood Harborview Ironwood Juniper Kingsport "
    "Lakeview Maplewood Northfield Oakridge Pinecrest Queensbury Riverton Stonebridge Thornbury Upton Valemont "
    "Westfield Yarrow Amberly Brookhaven Clearwater Driftwood Elmhurst Foxborough Greystone Hollowell Ivywood "
    "Jasperton Kelford Lindenhurst Millbrook Newhaven Pebbleton Redcliff Silverlake Timberline Willowdale"
).split()
STATE_POOL = "Aurora Borealis Cascadia Deltora Emberland Frostmark Galevia Highmoor Islara Jadewood".split()
CUISINES = ["Chinese", "American", "Italian", "Mexican", "Indian", "Mediterranean", "French", "Thai",
            "Japanese", "Cafe", "BBQ", "Seafood", "Desserts", "Pizza", "Bakery", "Fast Food"]
ROOM_TYPES = ["Entire home/apt", "Private room", "Shared room"]
HOUSE_RULES = ["smoking", "parties", "children under 10", "visitors", "pets"]
ROOM_TYPE_WISHES = ["not shared room", "shared room", "private room", "entire room"]
TRANSPORT_WISHES = ["no flight", "no self-driving"]
OPTIONAL_CONSTRAINTS = ["house rule", "cuisine", "room type", "transportation"]
ADJECTIVES = "Cozy Sunny Quiet Modern Charming Spacious Rustic Elegant Bright Classic Golden Little".split()
NOUNS = "Loft Studio Cottage Suite Apartment Bungalow Villa Guesthouse Cabin Flat".split()
EATERIES = "Spoon Table Kitchen Bistro Grill Garden Corner House Diner Oven".split()
SIGHTS = ("Museum of Art|History Museum|Botanical Garden|Zoo|Aquarium|Old Town|Science Center|Central Park|"
          "Harbor Walk|Castle|Observatory|Sculpture Park|Cathedral|Lighthouse|Market Hall|Riverside Trail").split("|")
CITIES_PER_STATE, HOTELS_PER_CITY = 5, 8
MEALS = ("breakfast", "lunch", "dinner")
PLAN_KEYS = ("day", "current_city", "transportation", *MEALS, "attraction", "accommodation")
COMMONSENSE = ["within_sandbox", "complete_information", "within_current_city", "reasonable_city_route",
               "diverse_restaurants", "diverse_attractions", "non_conflicting_transportation", "minimum_nights"]
HARD = ["budget", "room_rule", "room_type", "cuisine", "transportation"]

# -- database records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flight:
    id: str
    origin: str
    destination: str
    date: str
    departure: str
    arrival: str
    price: int  # per person


@dataclass(frozen=True)
class Drive:
    origin: str
    destination: str
    distance_km: int
    duration: str
    self_driving_cost: int  # per car of 5
    taxi_cost: int  # per taxi of 4


@dataclass(frozen=True)
class Hotel:
    id: str
    name: str
    city: str
    room_type: str
    price: int  # per room per night
    house_rules: tuple[str, ...]  # e.g. ("No pets", "No parties")
    minimum_nights: int
    maximum_occupancy: int


@dataclass(frozen=True)
class Restaurant:
    id: str
    name: str
    city: str
    cuisines: tuple[str, ...]
    average_cost: int  # per person


@dataclass(frozen=True)
class Attraction:
    id: str
    name: str
    city: str


def to_json(record: Any) -> dict[str, Any]:
    return dict(record.__dict__)  # flat records: a shallow copy is the JSON object


def from_json(cls: type, payload: dict[str, Any]) -> Any:
    """Rebuild a record from its JSON (lists back to tuples)."""
    values = {f.name: payload[f.name] for f in fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass
class Database:
    """Everything the tools can show. The oracle rebuilds a partial one from tool results."""

    states: dict[str, list[str]]
    flights: dict[str, Flight]
    drives: dict[tuple[str, str], Drive]
    hotels: dict[str, Hotel]
    restaurants: dict[str, Restaurant]
    attractions: dict[str, Attraction]
    _routes: dict[tuple[str, str, str], list[Flight]] = field(default_factory=dict, repr=False)
    _indexed: int = field(default=-1, repr=False)  # len(flights) when _routes was built

    def cities(self) -> set[str]:
        return {c for cities in self.states.values() for c in cities}

    def state_of(self, city: str) -> str | None:
        return next((s for s, cities in self.states.items() if city in cities), None)

    def in_city(self, table: dict[str, Any], city: str) -> list[Any]:
        return sorted((r for r in table.values() if r.city == city), key=lambda r: r.id)

    def flights_on(self, origin: str, destination: str, date: str) -> list[Flight]:
        if self._indexed != len(self.flights):  # (re)build the index when flights were added
            self._routes, self._indexed = {}, len(self.flights)
            for f in sorted(self.flights.values(), key=lambda f: f.id):
                self._routes.setdefault((f.origin, f.destination, f.date), []).append(f)
        return self._routes.get((origin, destination, date), [])


@dataclass(frozen=True)
class Query:
    origin: str
    destination: str  # a city (n_cities == 1) or a state
    n_cities: int
    dates: tuple[str, ...]  # one per day
    people: int
    budget: int
    house_rule: str | None = None  # the rule that must be allowed, e.g. "pets"
    room_type: str | None = None  # one of ROOM_TYPE_WISHES
    cuisines: tuple[str, ...] = ()
    transport: str | None = None  # one of TRANSPORT_WISHES

    @property
    def days(self) -> int:
        return len(self.dates)

    def stated(self) -> list[str]:
        """The hard constraints this query states (budget always)."""
        present = {"room_rule": self.house_rule, "room_type": self.room_type, "cuisine": self.cuisines,
                   "transportation": self.transport}
        return ["budget"] + [name for name, value in present.items() if value]


# -- database generation -------------------------------------------------------------------------------


def generate_database(rng: np.random.Generator, days: int, start: dt.date) -> tuple[Database, str, str]:
    """A synthetic world of 3 states x 5 cities; returns (db, origin city, destination state)."""
    names = [str(c) for c in rng.choice(CITY_POOL, 3 * CITIES_PER_STATE, replace=False)]
    state_names = [str(s) for s in rng.choice(STATE_POOL, 3, replace=False)]
    states = {s: names[i * CITIES_PER_STATE:(i + 1) * CITIES_PER_STATE] for i, s in enumerate(state_names)}
    origin, dest_state = states[state_names[0]][int(rng.integers(CITIES_PER_STATE))], state_names[1]
    centres = rng.uniform(0, 2000, (3, 2))
    coords = {c: centres[i // CITIES_PER_STATE] + rng.uniform(-250, 250, 2) for i, c in enumerate(names)}
    drives = {(a, b): _drive(a, b, coords) for a in names for b in names if a != b}
    network = [origin, *states[dest_state]]
    dates = [(start + dt.timedelta(days=i)).isoformat() for i in range(days)]
    db = Database(states, {}, drives, {}, {}, {})
    db.flights = _flights(rng, network, dates, drives)
    for city in names:
        _fill_city(rng, db, city, days)
    return db, origin, dest_state


def _drive(a: str, b: str, coords: dict[str, np.ndarray]) -> Drive:
    km = int(round(float(np.linalg.norm(coords[a] - coords[b])) * 1.2)) + 30
    minutes = int(round(km / 80 * 60))
    return Drive(a, b, km, f"{minutes // 60} hours {minutes % 60} mins", int(round(km * 0.25)), int(round(km * 0.9)))


def _flights(rng: np.random.Generator, network: list[str], dates: list[str],
             drives: dict[tuple[str, str], Drive]) -> dict[str, Flight]:
    flights: dict[str, Flight] = {}
    for a, b in permutations(network, 2):
        km = drives[(a, b)].distance_km
        for date in dates:
            for _ in range(int(rng.integers(0, 4))):
                number = f"F{1000 + len(flights) * 7 + int(rng.integers(7))}"
                dep = int(rng.integers(5 * 60, 21 * 60))
                arr = dep + 30 + km * 60 // 700
                price = int(round((40 + 0.12 * km) * rng.uniform(0.7, 1.4)))
                flights[number] = Flight(number, a, b, date, _clock(dep), _clock(arr), price)
    return flights


def _clock(minutes: int) -> str:
    return f"{(minutes // 60) % 24:02d}:{minutes % 60:02d}"


def _fill_city(rng: np.random.Generator, db: Database, city: str, days: int) -> None:
    """Accommodations, restaurants (enough for every meal of the trip) and attractions of one city."""
    n = HOTELS_PER_CITY
    rules, names = rng.random((n, len(HOUSE_RULES))) < 0.35, rng.integers(0, 10, (n, 2))
    kinds, prices, occupancy = rng.integers(0, 3, n), rng.integers(40, 300, n), rng.integers(1, 7, n)
    min_nights = rng.choice([1, 1, 1, 2, 2, 3], n)
    for i in range(n):
        hid = f"H{len(db.hotels) + 1:03d}"
        db.hotels[hid] = Hotel(hid, f"{ADJECTIVES[names[i, 0]]} {NOUNS[names[i, 1]]} in {city}", city,
                               ROOM_TYPES[kinds[i]], int(prices[i]),
                               tuple(f"No {r}" for r, banned in zip(HOUSE_RULES, rules[i]) if banned),
                               int(min_nights[i]), int(occupancy[i]))
    n = 3 * days + 4
    menus, sizes = np.argsort(rng.random((n, len(CUISINES))), axis=1), rng.integers(1, 4, n)
    names, costs = rng.integers(0, 10, (n, 2)), rng.integers(8, 80, n)
    for i in range(n):
        rid = f"R{len(db.restaurants) + 1:03d}"
        cuisines = tuple(sorted(CUISINES[k] for k in menus[i, :sizes[i]]))
        db.restaurants[rid] = Restaurant(rid, f"The {ADJECTIVES[names[i, 0]]} {EATERIES[names[i, 1]]}", city,
                                         cuisines, int(costs[i]))
    for k in np.argsort(rng.random(len(SIGHTS)))[:days + 2]:
        aid = f"A{len(db.attractions) + 1:03d}"
        db.attractions[aid] = Attraction(aid, f"{city} {SIGHTS[k]}", city)


def make_query(rng: np.random.Generator, days: int, n_cities: int, tightness: float) -> tuple[Database, Query]:
    """A database and a query that a known route satisfies; the budget comes from the reference solver."""
    start = dt.date(2024, 3, 1) + dt.timedelta(days=int(rng.integers(0, 60)))
    db, origin, state = generate_database(rng, days, start)
    route = [str(c) for c in rng.choice(db.states[state], n_cities, replace=False)]
    nights = _random_split(rng, days - 1, n_cities)
    query = Query(origin, route[0] if n_cities == 1 else state, n_cities,
                  tuple((start + dt.timedelta(days=i)).isoformat() for i in range(days)), int(rng.integers(1, 7)), 0)
    query = _draw_constraints(rng, query, round(4 * tightness))
    _make_route_feasible(rng, db, query, route, nights)
    solution = solve(db, query)
    assert solution is not None, "the reference route is feasible, so the solver must find a plan"
    return db, replace(query, budget=math.ceil(solution[1] * (2.0 - tightness)))


def _random_split(rng: np.random.Generator, total: int, parts: int) -> list[int]:
    cuts = sorted(int(c) for c in rng.choice(np.arange(1, total), parts - 1, replace=False)) if parts > 1 else []
    bounds = [0, *cuts, total]
    return [b - a for a, b in zip(bounds, bounds[1:])]


def _draw_constraints(rng: np.random.Generator, query: Query, k: int) -> Query:
    chosen = {OPTIONAL_CONSTRAINTS[int(i)] for i in rng.choice(len(OPTIONAL_CONSTRAINTS), k, replace=False)}
    return replace(
        query,
        house_rule=str(rng.choice(HOUSE_RULES)) if "house rule" in chosen else None,
        room_type=str(rng.choice(ROOM_TYPE_WISHES)) if "room type" in chosen else None,
        cuisines=tuple(sorted(str(c) for c in rng.choice(CUISINES, int(rng.integers(1, 4)), replace=False)))
        if "cuisine" in chosen else (),
        transport=str(rng.choice(TRANSPORT_WISHES)) if "transportation" in chosen else None,
    )


def _make_route_feasible(rng: np.random.Generator, db: Database, query: Query, route: list[str],
                         nights: list[int]) -> None:
    """Edit the database so the reference route can meet every stated constraint."""
    for city, k in zip(route, nights):
        if not any(_hotel_ok(h, query, k) for h in db.in_city(db.hotels, city)):
            hotel = db.in_city(db.hotels, city)[int(rng.integers(HOTELS_PER_CITY))]
            rules = tuple(r for r in hotel.house_rules if r != f"No {query.house_rule}")
            room = {"shared room": "Shared room", "private room": "Private room"}.get(query.room_type or "",
                                                                                       "Entire home/apt")
            db.hotels[hotel.id] = replace(hotel, house_rules=rules, room_type=room, minimum_nights=1)
    for cuisine in query.cuisines:
        if not any(cuisine in r.cuisines for c in route for r in db.in_city(db.restaurants, c)):
            city = route[int(rng.integers(len(route)))]
            pick = db.in_city(db.restaurants, city)[int(rng.integers(3 * query.days + 4))]
            db.restaurants[pick.id] = replace(pick, cuisines=tuple(sorted({*pick.cuisines, cuisine})))


# -- constraint predicates shared by the solver and the evaluator ------------------------------------------


def room_rule_ok(hotel: Hotel, query: Query) -> bool:
    return query.house_rule is None or f"No {query.house_rule}" not in hotel.house_rules


def room_type_ok(hotel: Hotel, query: Query) -> bool:
    wanted = {"not shared room": hotel.room_type != "Shared room", "shared room": hotel.room_type == "Shared room",
              "private room": hotel.room_type == "Private room", "entire room": hotel.room_type == "Entire home/apt"}
    return query.room_type is None or wanted[query.room_type]


def _hotel_ok(hotel: Hotel, query: Query, nights: int) -> bool:
    return hotel.minimum_nights <= nights and room_rule_ok(hotel, query) and room_type_ok(hotel, query)


def hotel_cost(hotel: Hotel, people: int) -> int:
    return hotel.price * math.ceil(people / hotel.maximum_occupancy)


def transport_cost(mode: str, db: Database, origin: str, destination: str, people: int, flight: str = "") -> int | None:
    """The cost of one leg, or None if the database has no such connection."""
    if mode == "flight":
        found = db.flights.get(flight)
        return found.price * people if found else None
    drive = db.drives.get((origin, destination))
    if drive is None:
        return None
    return drive.self_driving_cost * math.ceil(people / 5) if mode == "self-driving" else \
        drive.taxi_cost * math.ceil(people / 4)


# -- the reference solver ------------------------------------------------------------------------------------


@dataclass
class _Option:
    """One candidate itinerary skeleton and its cost."""

    cost: int
    cities: tuple[str, ...]
    nights: tuple[int, ...]
    legs: list[str]  # per travel day: "flight F1234" / "taxi" / "self-driving"
    hotels: list[Hotel]
    required: dict[str, list[Restaurant]]  # per city: meals on staying days
    extras: dict[str, list[Restaurant]]  # per city: cuisine meals on its arrival day


class _Index:
    """The database sorted for the solver: per-city tables and flights per (origin, destination, date)."""

    def __init__(self, db: Database, query: Query):
        self.db, self.query = db, query
        self.hotels: dict[str, list[Hotel]] = {}
        self.restaurants: dict[str, list[Restaurant]] = {}  # cheapest first
        self.flights: dict[tuple[str, str, str], list[Flight]] = {}
        for h in sorted(db.hotels.values(), key=lambda h: h.id):
            self.hotels.setdefault(h.city, []).append(h)
        for r in sorted(db.restaurants.values(), key=lambda r: (r.average_cost, r.id)):
            self.restaurants.setdefault(r.city, []).append(r)
        for f in sorted(db.flights.values(), key=lambda f: f.id):
            self.flights.setdefault((f.origin, f.destination, f.date), []).append(f)
        self.memo: dict[Any, Any] = {}


def solve(db: Database, query: Query) -> tuple[list[dict[str, Any]], int] | None:
    """The reference plan (see the module docstring, departure 6) and its cost; None if nothing is feasible."""
    index, best = _Index(db, query), None
    for cities in candidate_routes(db, query):
        for nights in compositions(query.days - 1, len(cities)):
            option = _evaluate(index, cities, nights, best.cost if best else math.inf)
            best = option or best
    return (build_plan(db, query, best), best.cost) if best else None


def candidate_routes(db: Database, query: Query) -> list[tuple[str, ...]]:
    if query.n_cities == 1:
        return [(query.destination,)]
    return list(permutations(sorted(db.states.get(query.destination, [])), query.n_cities))


def compositions(total: int, parts: int) -> list[tuple[int, ...]]:
    """Ways to split `total` nights into `parts` positive numbers, in lexicographic order."""
    if parts == 1:
        return [(total,)] if total >= 1 else []
    return [(first, *rest) for first in range(1, total) for rest in compositions(total - first, parts - 1)]


def travel_days(nights: tuple[int, ...]) -> list[int]:
    """1-based days on which the traveller moves: day 1, then after each city's nights."""
    days, day = [1], 1
    for k in nights:
        day += k
        days.append(day)
    return days


def _evaluate(index: _Index, cities: tuple[str, ...], nights: tuple[int, ...], bound: float) -> _Option | None:
    """The cheapest option for this city order and night split, if it is feasible and costs less than `bound`."""
    query = index.query
    hotels = [_cheapest_hotel(index, c, k) for c, k in zip(cities, nights)]
    meals = _choose_restaurants(index, cities, nights)
    booked = [h for h in hotels if h is not None]
    if len(booked) < len(cities) or meals is None:
        return None
    cost = meals[2] + sum(hotel_cost(h, query.people) * k for h, k in zip(booked, nights))
    if cost >= bound:
        return None
    legs = _cheapest_legs(index, [query.origin, *cities, query.origin], travel_days(nights))
    if legs is None or cost + legs[1] >= bound:
        return None
    return _Option(cost + legs[1], cities, nights, legs[0], booked, meals[0], meals[1])


def _cheapest_hotel(index: _Index, city: str, nights: int) -> Hotel | None:
    key = ("hotel", city, nights)
    if key not in index.memo:
        valid = [h for h in index.hotels.get(city, []) if _hotel_ok(h, index.query, nights)]
        index.memo[key] = min(valid, key=lambda h: (hotel_cost(h, index.query.people), h.id), default=None)
    return index.memo[key]


def _mode_families(query: Query) -> list[tuple[str, ...]]:
    """Non-conflicting mode sets (no self-driving with flights or taxis) allowed by the query."""
    if query.transport == "no flight":
        return [("taxi",), ("self-driving",)]
    if query.transport == "no self-driving":
        return [("flight", "taxi")]
    return [("flight", "taxi"), ("self-driving",)]


def _cheapest_legs(index: _Index, stops: list[str], days: list[int]) -> tuple[list[str], int] | None:
    best: tuple[list[str], int] | None = None
    for family in _mode_families(index.query):
        choices = [_cheapest_leg(index, a, b, index.query.dates[d - 1], family)
                   for a, b, d in zip(stops, stops[1:], days)]
        picked = [c for c in choices if c is not None]
        if len(picked) == len(choices) and (best is None or sum(c[1] for c in picked) < best[1]):
            best = ([c[0] for c in picked], sum(c[1] for c in picked))
    return best


def _cheapest_leg(index: _Index, a: str, b: str, date: str, family: tuple[str, ...]) -> tuple[str, int] | None:
    key = ("leg", a, b, date, family)
    if key not in index.memo:
        people = index.query.people
        options = [(f.price * people, f"flight {f.id}") for f in index.flights.get((a, b, date), [])
                   if "flight" in family]
        for mode in family:
            cost = transport_cost(mode, index.db, a, b, people) if mode != "flight" else None
            if cost is not None:
                options.append((cost, mode))
        index.memo[key] = (min(options)[1], min(options)[0]) if options else None
    return index.memo[key]


def _choose_restaurants(index: _Index, cities: tuple[str, ...], nights: tuple[int, ...]
                        ) -> tuple[dict[str, list[Restaurant]], dict[str, list[Restaurant]], int] | None:
    """Cheapest restaurants for the staying days' meals, then per missing cuisine the cheapest swap or extra meal."""
    key = ("meals", *sorted(zip(cities, nights)))
    if key not in index.memo:
        index.memo[key] = _choose_restaurants_uncached(index, cities, nights)
    return index.memo[key]


def _choose_restaurants_uncached(index: _Index, cities: tuple[str, ...], nights: tuple[int, ...]
                                 ) -> tuple[dict[str, list[Restaurant]], dict[str, list[Restaurant]], int] | None:
    query = index.query
    by_cost = {c: index.restaurants.get(c, []) for c in sorted(cities)}
    required = {c: by_cost[c][:3 * (k - 1)] for c, k in zip(cities, nights)}
    if any(len(required[c]) < 3 * (k - 1) for c, k in zip(cities, nights)):
        return None
    extras: dict[str, list[Restaurant]] = {c: [] for c in cities}
    for cuisine in query.cuisines:
        if not _covers(required, extras, cuisine) and not _add_cuisine(by_cost, required, extras, cuisine, query):
            return None
    chosen = [r for c in cities for r in required[c] + extras[c]]
    return required, extras, sum(r.average_cost for r in chosen) * query.people


def _covers(required: dict[str, list[Restaurant]], extras: dict[str, list[Restaurant]], cuisine: str) -> bool:
    return any(cuisine in r.cuisines for group in (required, extras) for rs in group.values() for r in rs)


def _add_cuisine(by_cost: dict[str, list[Restaurant]], required: dict[str, list[Restaurant]],
                 extras: dict[str, list[Restaurant]], cuisine: str, query: Query) -> bool:
    used = {r.id for group in (required, extras) for rs in group.values() for r in rs}
    moves = []
    for city, pool in by_cost.items():
        swappable = [s for s in required[city] if not any(q in s.cuisines for q in query.cuisines)]
        for r in pool:
            if cuisine in r.cuisines and r.id not in used:
                moves.append((r.average_cost, r.id, city, None))
                if swappable:
                    moves.append((r.average_cost - swappable[-1].average_cost, r.id, city, swappable[-1]))
    if not moves:
        return False
    _, rid, city, out = min(moves, key=lambda m: (m[0], m[1], m[3] is None))
    new = next(r for r in by_cost[city] if r.id == rid)
    if out is None:
        extras[city].append(new)
    else:
        required[city] = sorted([r for r in required[city] if r.id != out.id] + [new],
                                key=lambda r: (r.average_cost, r.id))
    return True


def build_plan(db: Database, query: Query, option: _Option) -> list[dict[str, Any]]:
    """Lay the chosen skeleton out day by day in the plan schema."""
    moves = travel_days(option.nights)
    stops = [query.origin, *option.cities, query.origin]
    plan = [_empty_day(d) for d in range(1, query.days + 1)]
    for i, day in enumerate(moves):
        entry = plan[day - 1]
        entry["current_city"] = f"from {stops[i]} to {stops[i + 1]}"
        entry["transportation"] = option.legs[i]
        for slot, r in zip(MEALS, option.extras.get(stops[i + 1], [])):
            entry[slot] = r.id
    for i, city in enumerate(option.cities):
        _fill_stay(db, plan, city, moves[i], moves[i + 1], option.hotels[i], option.required[city])
    return plan


def _empty_day(day: int) -> dict[str, Any]:
    return {"day": day, "current_city": "", "transportation": "-", "breakfast": "-", "lunch": "-", "dinner": "-",
            "attraction": [], "accommodation": "-"}


def _fill_stay(db: Database, plan: list[dict[str, Any]], city: str, arrive: int, leave: int, hotel: Hotel,
               meals: list[Restaurant]) -> None:
    sights = db.in_city(db.attractions, city)
    for offset, day in enumerate(range(arrive, leave)):
        plan[day - 1]["accommodation"] = hotel.id
        if day > arrive:
            entry = plan[day - 1]
            entry["current_city"] = city
            for slot, r in zip(MEALS, meals[3 * (offset - 1):3 * offset]):
                entry[slot] = r.id
            entry["attraction"] = [sights[offset - 1].id]


# -- plan evaluation (TravelPlanner's commonsense and hard constraints) ------------------------------------


@dataclass
class Day:
    """One plan entry, normalised; malformed values become None / [] so every check can run."""

    number: Any
    cities: list[str]  # [X, Y] on a travel day, [C] on a staying day, [] if missing or unreadable
    travel: bool
    transport: str | None  # "flight F1234", "self-driving", "taxi", another string (invalid), or None
    meals: dict[str, str | None]
    attractions: list[str]
    accommodation: str | None
    missing: list[str]
    date: str


FROM_TO_RE = re.compile(r"^\s*from\s+(.+?)\s+to\s+(.+?)\s*$", re.IGNORECASE)
FLIGHT_RE = re.compile(r"^\s*(?:flight\s+(?:number:?\s*)?)?(F\d+)\s*$", re.IGNORECASE)


def parse_plan(plan: Any) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The plan as a list of day objects (delivered), or (None, why it was not delivered)."""
    if isinstance(plan, str):
        try:
            plan = json.loads(plan)
        except (json.JSONDecodeError, RecursionError) as exc:
            return None, f"the plan is not valid JSON ({clip_text(exc, 80)})"
    if isinstance(plan, dict) and set(plan) == {"plan"}:
        plan = plan["plan"]
    if not isinstance(plan, list) or not plan:
        return None, "the plan must be a non-empty JSON array with one object per day"
    if not all(isinstance(d, dict) for d in plan):
        return None, "every element of the plan must be a JSON object (one per day)"
    return plan, None


def normalise(entry: dict[str, Any], index: int, query: Query) -> Day:
    city_text = entry.get("current_city")
    cities: list[str] = []
    travel = False
    if isinstance(city_text, str) and city_text.strip():
        match = FROM_TO_RE.match(city_text)
        travel = match is not None
        cities = [match.group(1), match.group(2)] if match else [city_text.strip()]
    attractions = entry.get("attraction")
    attractions = [a for a in attractions if _filled(a)] if isinstance(attractions, list) else \
        ([attractions] if _filled(attractions) else [])
    return Day(entry.get("day"), cities, travel, _transport(entry.get("transportation")),
               {m: _id(entry.get(m)) for m in MEALS}, [str(a) for a in attractions],
               _id(entry.get("accommodation")), [k for k in PLAN_KEYS if k not in entry],
               query.dates[index] if index < query.days else "")


def _filled(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and value.strip() in ("", "-"))


def _id(value: Any) -> str | None:
    return str(value).strip() if _filled(value) else None


def _transport(value: Any) -> str | None:
    if not _filled(value):
        return None
    text = str(value).strip()
    match = FLIGHT_RE.match(text)
    if match:
        return f"flight {match.group(1).upper()}"
    return text.lower() if text.lower() in ("self-driving", "taxi") else text


def _flight_id(d: Day) -> str | None:
    return d.transport.split()[1] if d.transport and d.transport.startswith("flight ") else None


def _mode(transport: str | None) -> str | None:
    if transport is None:
        return None
    return transport.split()[0] if transport.startswith("flight ") else transport


Check = tuple[bool, str]


def within_sandbox(days: list[Day], db: Database, query: Query) -> Check:
    known = db.cities()
    for i, d in enumerate(days, 1):
        if any(c not in known for c in d.cities):
            return False, f"day {i}: unknown city in {d.cities}"
        refs = [(r, db.restaurants) for r in d.meals.values() if r] + [(a, db.attractions) for a in d.attractions]
        refs += [(d.accommodation, db.hotels)] if d.accommodation else []
        bad = [ref for ref, table in refs if ref not in table]
        if bad:
            return False, f"day {i}: unknown id(s) {', '.join(bad)}"
        problem = _transport_in_sandbox(d, db)
        if problem:
            return False, f"day {i}: {problem}"
    return True, ""


def _transport_in_sandbox(d: Day, db: Database) -> str | None:
    mode = _mode(d.transport)
    if mode is None:
        return None
    if mode == "flight":
        flight = db.flights.get(_flight_id(d) or "")
        return None if flight and flight.date == d.date else f"no flight {_flight_id(d)} on {d.date}"
    if mode not in ("self-driving", "taxi"):
        return f"unknown transportation {clip_text(d.transport, 40)!r}"
    if d.travel and (d.cities[0], d.cities[1]) not in db.drives:
        return f"no {mode} route from {d.cities[0]} to {d.cities[1]}"
    return None


def complete_information(days: list[Day], db: Database, query: Query) -> Check:
    numbers = [d.number if type(d.number) is int else None for d in days]
    if numbers != list(range(1, query.days + 1)):
        return False, f"the plan must have days 1..{query.days} in order"
    visited = {c for d in days for c in d.cities} - {query.origin}
    if len(visited) != query.n_cities:
        return False, f"the plan visits {len(visited)} cities besides the origin; the query asks for {query.n_cities}"
    for i, d in enumerate(days, 1):
        problem = _day_incomplete(d, i == query.days)
        if problem:
            return False, f"day {i}: {problem}"
    return True, ""


def _day_incomplete(d: Day, last: bool) -> str | None:
    if d.missing:
        return f"missing key(s) {', '.join(d.missing)}"
    if not d.cities:
        return "no current_city"
    if d.travel and d.transport is None:
        return "a travel day needs transportation"
    if not d.travel and (not d.attractions or not all(d.meals.values())):
        return "a day in one city needs breakfast, lunch, dinner and at least one attraction"
    if not last and d.accommodation is None:
        return "every night but the last needs an accommodation"
    return None


def within_current_city(days: list[Day], db: Database, query: Query) -> Check:
    for i, d in enumerate(days, 1):
        places = [db.restaurants[r].city for r in d.meals.values() if r in db.restaurants]
        places += [db.attractions[a].city for a in d.attractions if a in db.attractions]
        if any(p not in d.cities for p in places):
            return False, f"day {i}: a meal or attraction is not in {' or '.join(d.cities) or 'the current city'}"
        if d.accommodation in db.hotels and (not d.cities or db.hotels[d.accommodation].city != d.cities[-1]):
            return False, f"day {i}: the accommodation is not in {d.cities[-1] if d.cities else 'the current city'}"
        if d.transport is not None and not d.travel:
            return False, f"day {i}: transportation on a day without travel"
        flight = db.flights.get(_flight_id(d) or "")
        if flight and d.travel and [flight.origin, flight.destination] != d.cities:
            return False, f"day {i}: flight {flight.id} does not fly {d.cities[0]} -> {d.cities[1]}"
    return True, ""


def reasonable_city_route(days: list[Day], db: Database, query: Query) -> Check:
    route = [c for d in days[:query.days] for c in d.cities]
    if not days or not days[0].travel or days[0].cities[0] != query.origin:
        return False, f"day 1 must start 'from {query.origin} to ...'"
    if route[-1] != query.origin:
        return False, "the trip must end back at the origin (a closed circle)"
    if not _valid_city_sequence(route):
        return False, "the city sequence is not a sequence of consecutive stays (a city left is never revisited)"
    allowed = {query.destination} if query.destination in db.cities() else set(db.states.get(query.destination, []))
    outside = [c for c in route[1:-1] if c not in allowed]
    return (False, f"{outside[0]} is not in {query.destination}") if outside else (True, "")


def _valid_city_sequence(cities: list[str]) -> bool:
    """TravelPlanner's `is_valid_city_sequence`: every middle city appears in one consecutive run of >= 2."""
    if len(cities) < 3:
        return False
    seen: set[str] = set()
    position = 0
    for city, run in groupby(cities):
        count = len(list(run))
        middle = 0 < position and position + count < len(cities)
        if city in seen and middle:
            return False
        if count == 1 and middle:
            return False
        seen.add(city)
        position += count
    return True


def diverse_restaurants(days: list[Day], db: Database, query: Query) -> Check:
    ids = [r for d in days for r in d.meals.values() if r]
    repeated = sorted({r for r in ids if ids.count(r) > 1})
    return (False, f"restaurant(s) {', '.join(repeated)} used more than once") if repeated else (True, "")


def diverse_attractions(days: list[Day], db: Database, query: Query) -> Check:
    ids = [a for d in days for a in d.attractions]
    repeated = sorted({a for a in ids if ids.count(a) > 1})
    return (False, f"attraction(s) {', '.join(repeated)} visited more than once") if repeated else (True, "")


def non_conflicting_transportation(days: list[Day], db: Database, query: Query) -> Check:
    if not days or days[0].transport is None:
        return False, "day 1 needs transportation"
    modes = {_mode(d.transport) for d in days}
    if "self-driving" in modes and ({"flight", "taxi"} & modes):
        return False, "self-driving cannot be combined with flights or taxis"
    return True, ""


def minimum_nights(days: list[Day], db: Database, query: Query) -> Check:
    for hotel_id, run in groupby(d.accommodation for d in days):
        nights = len(list(run))
        hotel = db.hotels.get(hotel_id or "")
        if hotel and nights < hotel.minimum_nights:
            return False, f"{hotel.id} requires at least {hotel.minimum_nights} consecutive nights, got {nights}"
    return True, ""


COMMONSENSE_CHECKS = {
    "within_sandbox": within_sandbox, "complete_information": complete_information,
    "within_current_city": within_current_city, "reasonable_city_route": reasonable_city_route,
    "diverse_restaurants": diverse_restaurants, "diverse_attractions": diverse_attractions,
    "non_conflicting_transportation": non_conflicting_transportation, "minimum_nights": minimum_nights,
}


def total_cost(days: list[Day], db: Database, query: Query) -> int:
    """TravelPlanner's `get_total_cost` (entities missing from the database cost nothing)."""
    cost = 0
    for d in days:
        mode = _mode(d.transport)
        if mode == "flight":
            cost += transport_cost("flight", db, "", "", query.people, _flight_id(d) or "") or 0
        elif mode in ("self-driving", "taxi") and d.travel:
            cost += transport_cost(mode, db, d.cities[0], d.cities[1], query.people) or 0
        cost += sum(db.restaurants[r].average_cost * query.people for r in d.meals.values() if r in db.restaurants)
        if d.accommodation in db.hotels:
            cost += hotel_cost(db.hotels[d.accommodation], query.people)
    return cost


def _hotels(days: list[Day], db: Database) -> list[Hotel]:
    return [db.hotels[d.accommodation] for d in days if d.accommodation in db.hotels]


def hard_checks(days: list[Day], db: Database, query: Query) -> dict[str, Check]:
    """The stated hard constraints (TravelPlanner's `evaluation/hard_constraint.py`)."""
    results: dict[str, Check] = {}
    cost = total_cost(days, db, query)
    results["budget"] = (cost <= query.budget, f"the plan costs ${cost}, over the ${query.budget} budget")
    if query.house_rule:
        results["room_rule"] = (all(room_rule_ok(h, query) for h in _hotels(days, db)),
                                f"an accommodation does not allow {query.house_rule}")
    if query.room_type:
        results["room_type"] = (all(room_type_ok(h, query) for h in _hotels(days, db)),
                                f"an accommodation is not a {query.room_type}")
    if query.cuisines:
        served = {c for d in days for r in d.meals.values() if r in db.restaurants
                  and db.restaurants[r].city != query.origin for c in db.restaurants[r].cuisines}
        missing = [c for c in query.cuisines if c not in served]
        results["cuisine"] = (not missing, f"no restaurant serving {', '.join(missing)}")
    if query.transport:
        banned = "flight" if query.transport == "no flight" else "self-driving"
        results["transportation"] = (all(_mode(d.transport) != banned for d in days), f"the plan uses {banned}")
    return results


def evaluate_plan(plan: Any, db: Database, query: Query) -> tuple[dict[str, float], list[str]]:
    """TravelPlanner's metrics for one submitted plan, and the reasons of each failed constraint."""
    stated = query.stated()
    metrics: dict[str, float] = {"budget": float(query.budget)}
    entries, error = parse_plan(plan)
    if entries is None:
        metrics.update(_scores({n: False for n in COMMONSENSE}, {n: False for n in stated}, delivered=False))
        return metrics, [f"not delivered: {error}"]
    days = [normalise(e, i, query) for i, e in enumerate(entries)]
    common = {name: check(days, db, query) for name, check in COMMONSENSE_CHECKS.items()}
    gate = common["complete_information"][0] and common["within_sandbox"][0]
    hard = hard_checks(days, db, query) if gate else \
        {n: (False, "not checked: the plan is incomplete or cites entities outside the database") for n in stated}
    metrics.update(_scores({n: ok for n, (ok, _) in common.items()}, {n: ok for n, (ok, _) in hard.items()}, True))
    metrics["total_cost"] = float(total_cost(days, db, query))
    reasons = [f"{name}: {why}" for name, (ok, why) in {**common, **hard}.items() if not ok]
    return metrics, reasons


def _scores(common: dict[str, bool], hard: dict[str, bool], delivered: bool) -> dict[str, float]:
    """Micro = passed / checked, macro = all passed (TravelPlanner section 3.3), for one plan."""
    scores = {"delivery_rate": float(delivered),
              "commonsense_micro": sum(common.values()) / len(common), "commonsense_macro": float(all(common.values())),
              "hard_micro": sum(hard.values()) / len(hard), "hard_macro": float(all(hard.values()))}
    scores["final_pass"] = float(delivered and all(common.values()) and all(hard.values()))
    scores.update({f"cs/{n}": float(ok) for n, ok in common.items()})
    scores.update({f"hard/{n}": float(ok) for n, ok in hard.items()})
    return scores


# -- the query in natural language -------------------------------------------------------------------------

ROOM_TYPE_TEXT = {"not shared room": "We do not want a shared room.", "shared room": "We would like a shared room.",
                  "private room": "We would like a private room.",
                  "entire room": "We would like an entire home or apartment."}
TRANSPORT_TEXT = {"no flight": "We do not want to take any flights.",
                  "no self-driving": "We do not want to drive ourselves (no self-driving)."}


def query_text(query: Query) -> str:
    where = query.destination if query.n_cities == 1 else \
        f"{query.n_cities} cities in the state of {query.destination}"
    who = "1 person" if query.people == 1 else f"{query.people} people"
    parts = [f"Please plan a {query.days}-day trip for {who} from {query.origin} to {where}, "
             f"from {query.dates[0]} to {query.dates[-1]}, with a budget of ${query.budget}."]
    if query.house_rule:
        parts.append(f"Our accommodations must allow {query.house_rule}.")
    if query.room_type:
        parts.append(ROOM_TYPE_TEXT[query.room_type])
    if query.cuisines:
        parts.append(f"We would like to try {_join(query.cuisines)} cuisine.")
    if query.transport:
        parts.append(TRANSPORT_TEXT[query.transport])
    return " ".join(parts)


def _join(items: tuple[str, ...]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


QUERY_RE = re.compile(r"Please plan a (\d+)-day trip for (\d+) (?:person|people) from (\w+) to (?:(\d+) cities in the "
                      r"state of (\w+)|(\w+)), from ([\d-]+) to ([\d-]+), with a budget of \$(\d+)\.")


def read_query(text: str) -> Query | None:
    """The oracle's reading of the query sentence (the inverse of `query_text`)."""
    m = QUERY_RE.search(text)
    if m is None:
        return None
    days, people, origin, n, state, city, first, _, budget = m.groups()
    start = dt.date.fromisoformat(first)
    dates = tuple((start + dt.timedelta(days=i)).isoformat() for i in range(int(days)))
    rule = re.search(r"accommodations must allow ([\w ]+?)\.", text)
    cuisine = re.search(r"would like to try (.+?) cuisine\.", text)
    return Query(origin, state or city, int(n or 1), dates, int(people), int(budget),
                 house_rule=rule.group(1) if rule else None,
                 room_type=next((k for k, v in ROOM_TYPE_TEXT.items() if v in text), None),
                 cuisines=tuple(re.split(r", | and ", cuisine.group(1))) if cuisine else (),
                 transport=next((k for k, v in TRANSPORT_TEXT.items() if v in text), None))


# -- the environment ---------------------------------------------------------------------------------------

CITY_ARG = {"type": "string"}
TOOLS = [
    function_schema("search_cities", "List the cities of a state.", {"state": {"type": "string"}}),
    function_schema("search_flights", "Flights from origin to destination on a date (YYYY-MM-DD); price per person.",
                    {"origin": CITY_ARG, "destination": CITY_ARG, "date": {"type": "string"}}),
    function_schema("search_distance", "Driving distance, duration and cost between two cities: self-driving "
                    "(per car of up to 5 people) and taxi (per taxi of up to 4).",
                    {"origin": CITY_ARG, "destination": CITY_ARG}),
    function_schema("search_accommodations", "Accommodations in a city: price per night per room, room type, house "
                    "rules, minimum nights, maximum occupancy per room.", {"city": CITY_ARG}),
    function_schema("search_restaurants", "Restaurants in a city: cuisines and average cost per person.",
                    {"city": CITY_ARG}),
    function_schema("search_attractions", "Attractions in a city.", {"city": CITY_ARG}),
    Notebook.schema,
    function_schema("submit_plan", "Submit the final plan (ends the episode). `plan` is a JSON array of day objects "
                    "(or a string holding one); see the schema in the task.",
                    {"plan": {"type": ["array", "string"]}}),
]
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class TravelEnv(ToolEnv):
    """Plan a trip with search tools; graded by TravelPlanner's delivery, commonsense, hard and final pass rates."""

    tools: ClassVar[list[dict[str, Any]]] = TOOLS

    HORIZON_KNOB: ClassVar[str | None] = "days"
    KNOBS: ClassVar[dict[str, str]] = {
        "days": "trip length in days: 3, 5 or 7 (TravelPlanner's three lengths)",
        "n_cities": "cities to visit: 1 (a named city) or 2-3 (in a named state); at most days - 1",
        "tightness": "0..1: budget = ceil((2 - tightness) x the reference solver's cheapest cost), and "
                     "round(4 x tightness) of the optional hard constraints (house rule, room type, cuisine, "
                     "transportation) are stated",
        "max_turns": "turn limit (assistant messages) before the episode is truncated with nothing delivered",
    }
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "easy": {"days": 3, "n_cities": 1, "tightness": 0.0},
        "default": {},
        "medium": {"days": 5, "n_cities": 2, "tightness": 0.5},
        "hard": {"days": 7, "n_cities": 3, "tightness": 1.0},
    }

    def __init__(self, days: int = 3, n_cities: int = 1, tightness: float = 0.5, max_turns: int = 60,
                 render_mode: str | None = None):
        super().__init__(render_mode)
        if isinstance(days, bool) or not isinstance(days, int) or days not in (3, 5, 7):
            raise ValueError(f"days must be 3, 5 or 7, got {days!r}")
        if isinstance(n_cities, bool) or not isinstance(n_cities, int) or not 1 <= n_cities <= min(3, days - 1):
            raise ValueError(f"n_cities must be an integer in [1, {min(3, days - 1)}] for days={days}, "
                             f"got {n_cities!r}")
        if isinstance(tightness, bool) or not isinstance(tightness, (int, float)) or not 0.0 <= tightness <= 1.0:
            raise ValueError(f"tightness must be a number in [0, 1], got {tightness!r}")
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"max_turns must be a positive integer, got {max_turns!r}")
        self.days, self.n_cities, self.tightness, self.max_steps = days, n_cities, float(tightness), max_turns

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
        if state not in self.db.states:
            known = ", ".join(sorted(self.db.states))
            raise ToolError(f"unknown state {clip_text(state, 40)!r}; known states: {known}")
        return dumps({"state": state, "cities": sorted(self.db.states[state])})

    def tool_search_flights(self, origin: str, destination: str, date: str) -> str:
        self._check_city(origin)
        self._check_city(destination)
        if not DATE_RE.match(date):
            raise ToolError(f"date must look like YYYY-MM-DD, got {clip_text(date, 20)!r}")
        flights = [to_json(f) for f in self.db.flights_on(origin, destination, date)]
        return dumps({"origin": origin, "destination": destination, "date": date, "flights": flights})

    def tool_search_distance(self, origin: str, destination: str) -> str:
        self._check_city(origin)
        self._check_city(destination)
        if origin == destination:
            raise ToolError("origin and destination are the same city")
        return dumps(to_json(self.db.drives[(origin, destination)]))

    def tool_search_accommodations(self, city: str) -> str:
        self._check_city(city)
        return dumps({"city": city, "accommodations": [to_json(h) for h in self.db.in_city(self.db.hotels, city)]})

    def tool_search_restaurants(self, city: str) -> str:
        self._check_city(city)
        return dumps({"city": city, "restaurants": [to_json(r) for r in self.db.in_city(self.db.restaurants, city)]})

    def tool_search_attractions(self, city: str) -> str:
        self._check_city(city)
        return dumps({"city": city, "attractions": [to_json(a) for a in self.db.in_city(self.db.attractions, city)]})

    def tool_notes(self, action: str, text: str | None = None) -> str:
        return self.notebook(action, text)

    def tool_submit_plan(self, plan: Any) -> str:
        self.metrics, reasons = evaluate_plan(plan, self.db, self.query)
        self.done = True
        verdict = "passes every constraint" if self.metrics["final_pass"] else "fails: " + "; ".join(reasons)
        return dumps({"submitted": True, "delivered": bool(self.metrics["delivery_rate"]), "verdict": verdict})

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


# -- the oracle ------------------------------------------------------------------------------------------------


class Planner:
    """Reads the query, searches every city, leg and date the reference solver considers, rebuilds a database
    from the tool results alone, runs `solve` on it and submits the plan."""

    def __init__(self) -> None:
        self.query: Query | None = None
        self.db = Database({}, {}, {}, {}, {}, {})
        self.seen: set[str] = set()  # keys of the searches answered so far
        self.plan: list[tuple[str, ToolCall]] = []  # (key, call) of every search to make

    def next_calls(self, observation: str, limit: int) -> list[ToolCall]:
        if self.query is None:
            self.query = read_query(observation)
            if self.query is None:
                return [ToolCall("notes", {"action": "read"})]
        for name, payload in parse_results(observation):
            self._observe(name, payload)
        if not self.plan or self.plan[0][1].name == "search_cities":
            self.plan = [(_key(c), c) for c in self._searches()]
        todo = [c for key, c in self.plan if key not in self.seen]
        if todo:
            return todo[:limit]
        solution = solve(self.db, self.query)
        plan = solution[0] if solution else []
        return [ToolCall("submit_plan", {"plan": plan})]

    def _searches(self) -> list[ToolCall]:
        q = self.query
        assert q is not None
        if q.n_cities > 1 and q.destination not in self.db.states:
            return [ToolCall("search_cities", {"state": q.destination})]
        cities = sorted(self.db.states.get(q.destination, [q.destination]))
        calls = [ToolCall(f"search_{kind}", {"city": c}) for c in cities
                 for kind in ("accommodations", "restaurants", "attractions")]
        legs = [(q.origin, c, [q.dates[0]]) for c in cities] + [(c, q.origin, [q.dates[-1]]) for c in cities]
        legs += [(a, b, list(q.dates[1:-1])) for a, b in permutations(cities, 2)] if q.n_cities > 1 else []
        calls += [ToolCall("search_distance", {"origin": a, "destination": b}) for a, b, _ in legs]
        if q.transport != "no flight":
            calls += [ToolCall("search_flights", {"origin": a, "destination": b, "date": d})
                      for a, b, dates in legs for d in dates]
        return calls

    def _observe(self, name: str, payload: dict[str, Any]) -> None:
        if name == "search_cities":
            self.db.states[payload["state"]] = payload["cities"]
            self.seen.add(_key(ToolCall(name, {"state": payload["state"]})))
        elif name == "search_distance":
            drive = from_json(Drive, payload)
            self.db.drives[(drive.origin, drive.destination)] = drive
            self.seen.add(_key(ToolCall(name, {"origin": drive.origin, "destination": drive.destination})))
        elif name == "search_flights":
            self.db.flights.update({f["id"]: from_json(Flight, f) for f in payload["flights"]})
            args = {k: payload[k] for k in ("origin", "destination", "date")}
            self.seen.add(_key(ToolCall(name, args)))
        elif name in ("search_accommodations", "search_restaurants", "search_attractions"):
            self._observe_city(name, payload)

    def _observe_city(self, name: str, payload: dict[str, Any]) -> None:
        kind = name.removeprefix("search_")
        cls, table = {"accommodations": (Hotel, self.db.hotels), "restaurants": (Restaurant, self.db.restaurants),
                      "attractions": (Attraction, self.db.attractions)}[kind]
        table.update({r["id"]: from_json(cls, r) for r in payload[kind]})
        self.seen.add(_key(ToolCall(name, {"city": payload["city"]})))


def _key(call: ToolCall) -> str:
    return call.name + json.dumps(call.arguments, sort_keys=True)
