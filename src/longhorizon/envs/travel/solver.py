"""Travel's reference solver: the cheapest plan that meets every hard and commonsense constraint."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import permutations
from typing import Any

from longhorizon.envs.travel.world import (
    MEALS,
    Database,
    Flight,
    Hotel,
    Query,
    Restaurant,
    hotel_cost,
    hotel_ok,
    transport_cost,
)


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
        valid = [h for h in index.hotels.get(city, []) if hotel_ok(h, index.query, nights)]
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
