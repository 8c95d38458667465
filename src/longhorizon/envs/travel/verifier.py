"""Travel's plan evaluation: TravelPlanner's commonsense and hard constraints, and the scores."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from longhorizon.envs.core.base import clip_text
from longhorizon.envs.travel.world import (
    COMMONSENSE,
    MEALS,
    PLAN_KEYS,
    Database,
    Hotel,
    Query,
    hotel_cost,
    room_rule_ok,
    room_type_ok,
    transport_cost,
)


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
