"""Travel's oracle: search what the reference solver needs, rebuild the database from the results, solve."""

from __future__ import annotations

import json
from itertools import permutations
from typing import Any

from longhorizon.envs.core.tools import ToolCall, parse_results
from longhorizon.envs.travel.solver import solve
from longhorizon.envs.travel.world import (
    Attraction,
    Database,
    Drive,
    Flight,
    Hotel,
    Query,
    Restaurant,
    from_json,
    read_query,
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
