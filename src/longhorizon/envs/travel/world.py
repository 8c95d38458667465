"""Travel's world: the vocabulary, the database records, the constraint predicates that the solver and
the verifier share, and the query in natural language."""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any


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


# -- constraint predicates shared by the solver and the evaluator ------------------------------------------


def room_rule_ok(hotel: Hotel, query: Query) -> bool:
    return query.house_rule is None or f"No {query.house_rule}" not in hotel.house_rules


def room_type_ok(hotel: Hotel, query: Query) -> bool:
    wanted = {"not shared room": hotel.room_type != "Shared room", "shared room": hotel.room_type == "Shared room",
              "private room": hotel.room_type == "Private room", "entire room": hotel.room_type == "Entire home/apt"}
    return query.room_type is None or wanted[query.room_type]


def hotel_ok(hotel: Hotel, query: Query, nights: int) -> bool:
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
