"""Travel's generator: a database, and a query that a known route satisfies (budget from the solver)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace
from itertools import permutations

import numpy as np

from longhorizon.envs.travel.solver import solve
from longhorizon.envs.travel.world import (
    ADJECTIVES,
    CITIES_PER_STATE,
    CITY_POOL,
    CUISINES,
    EATERIES,
    HOTELS_PER_CITY,
    HOUSE_RULES,
    NOUNS,
    OPTIONAL_CONSTRAINTS,
    ROOM_TYPES,
    ROOM_TYPE_WISHES,
    SIGHTS,
    STATE_POOL,
    TRANSPORT_WISHES,
    Attraction,
    Database,
    Drive,
    Flight,
    Hotel,
    Query,
    Restaurant,
    hotel_ok,
)


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
        if not any(hotel_ok(h, query, k) for h in db.in_city(db.hotels, city)):
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
