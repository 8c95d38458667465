"""`longhorizon/PathTraversal-v0`: follow one-way links from city A to city B.

LongProc's path_traversal task (Ye et al., arXiv 2501.05414). A hypothetical
world lists cities, each with exactly one outgoing one-way connection (bus,
train, plane or ferry). The agent must print the unique route from a start
city to a destination inside `<Route></Route>`, one hop per line:
"From X, take a T to Y." The prompt and the city sentences ("X is a lively
city. You can travel from X to Y by T.") follow the paper's `prompts.yaml`.

Construction (as in the paper's data): a chain c0 -> c1 -> ... -> cH; every
chain city except the destination has exactly one outgoing edge (the next hop);
distractor cities, not on the chain, have edges into chain cities or other
distractors (self-loops allowed), so only the chain leads to the destination.
Facts are listed in random order. The number of hops H grows until the route
reaches the level's token target (see `longproc`).

Metrics (paper `eval_path_traversal`): `accuracy` = the route equals the
reference exactly; `partial_accuracy` = number of leading route lines that
match / number of reference lines. Success iff exact. Reward = accuracy.

Departures from the paper:
- city names are made-up (syllables + suffixes) rather than real cities, so
  any number can be drawn without a name list;
- the route is read from the *last* complete `<Route>` block (the paper takes
  the first), and each line is compared after trimming and collapsing runs of
  spaces; blank lines are ignored;
- the paper's partial score counts the first mismatching line as matched
  (`i += 1` after its loop); here it counts only the lines before it;
- knob `distractor_ratio` (distractor cities per chain hop; the paper's data
  has about 0.25).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from longhorizon.envs.core.knobs import Real
from longhorizon.envs.longproc.common import (
    CHARS_PER_TOKEN, LongProcEnv, LongProcKnobs, last_tagged_block, pick, prefix_fraction,
)

TRANSITS = ("bus", "train", "plane", "ferry")
_STARTS = (
    "Al Bel Cor Dun El Fal Gar Hal Is Jor Kel Lin Mar Nor Or Pel Quen Ros Sal Tor Ul Val Wes Yar Zel "
    "Ash Brin Cal Dor Fen Glen Hart Kin Lud Mor Ner Ost Pen Rav Sten Thal Ver Wil"
).split()
_MIDDLES = ("a", "e", "i", "o", "", "an", "en", "ar", "el", "or")
_ENDS = (
    "ton ford burg mouth ville stad holm bridge field haven port wick dale by minster chester ley gate moor crest"
).split()
_QUALIFIERS = ("New", "Port", "East", "West", "Saint", "Lake", "Upper", "Fort")

PROMPT = """[TASK]
In a completely hypothetical world, there are a number of cities. Each city has a one-way connection to only one other city via a specific transit method (bus, train, plane, or ferry). Your task is to provide a route from a city to another city. You should follow the specific instruction provided later and output the route following the format provided in the instruction.

[IMPORTANT NOTES]
- All connections are one-way. If city A is connected to city B, you can travel from A to B, but not the other way around.
- Because each city is connected to only one other city, so there's only one possible route. To find the route, you can simply start from the starting city, identify the next city it's connected to, and repeat the process until you reach the destination city.
- Please follow the exact format specified below when outputting the route.

[OUTPUT FORMAT]
Please mark the route with <Route> and </Route> tags. The route should be in the following format, where one line is one step of the route:
<Route>
From <CITY_NAME>, take a <TRANSIT_METHOD> to <CITY_NAME>.
...
From <CITY_NAME>, take a <TRANSIT_METHOD> to <CITY_NAME>.
</Route>

[EXAMPLE]
In a hypothetical world, there are a number of cities. Each city has a one-way connection to only one other city via a specific transit method. The details of the cities are as follows:
Fort Worth is a lively city. You can travel from Fort Worth to Manchester by ferry.
Leeds is a lively city. You can travel from Leeds to London by bus.
Manchester is a lively city. You can travel from Manchester to Indianapolis by plane.
Houston is a lively city. You can travel from Houston to London by ferry.
Charlotte is a lively city. You can travel from Charlotte to Charlotte by bus.
London is a lively city. You can travel from London to San Antonio by train.
San Antonio is a lively city. You can travel from San Antonio to Kitchener by train.
Seattle is a lively city. You can travel from Seattle to London by train.
Indianapolis is a lively city. You can travel from Indianapolis to Houston by ferry.

Now find the route from Manchester to Kitchener based on the information above.

<Route>
From Manchester, take a plane to Indianapolis.
From Indianapolis, take a ferry to Houston.
From Houston, take a ferry to London.
From London, take a train to San Antonio.
From San Antonio, take a train to Kitchener.
</Route>

[PROBLEM]
In a hypothetical world, there are a number of cities. Each city has a one-way connection to only one other city via a specific transit method. The details of the cities are as follows:
{facts}

Now find the route from {src} to {dst} based on the information above. Some reminders:
- All connections are one-way. You can solve the problem by iteratively finding the next city to travel to until you reach the destination city.
- Follow the specific format for the route output. Mark the route with <Route> and </Route> tags."""

Edge = tuple[str, str, str]  # (from city, to city, transit)


def city_name(rng: np.random.Generator) -> str:
    """A made-up city name such as 'Kelaford' or 'Port Valenmouth'."""
    name = pick(rng, _STARTS) + pick(rng, _MIDDLES) + pick(rng, _ENDS)
    return f"{pick(rng, _QUALIFIERS)} {name}" if rng.random() < 0.15 else name


def hop_line(edge: Edge) -> str:
    return f"From {edge[0]}, take a {edge[2]} to {edge[1]}."


def fact_line(edge: Edge) -> str:
    return f"{edge[0]} is a lively city. You can travel from {edge[0]} to {edge[1]} by {edge[2]}."


def format_route(route: list[Edge]) -> str:
    return "<Route>\n" + "\n".join(hop_line(e) for e in route) + "\n</Route>"


def parse_route(text: str) -> tuple[list[str] | None, str | None]:
    """Route lines from the last `<Route>` block, whitespace-normalised; or (None, reason)."""
    block = last_tagged_block(text, "Route")
    if block is None:
        return None, "no <Route>...</Route> block found"
    return [" ".join(line.split()) for line in block.splitlines() if line.strip()], None


def score_route(predicted: list[str], reference: list[str]) -> dict[str, float]:
    """Exact-match accuracy and correct-prefix fraction (LongProc `eval_path_traversal`)."""
    exact = predicted == reference
    return {"accuracy": float(exact), "partial_accuracy": 1.0 if exact else prefix_fraction(predicted, reference)}


class PathTraversalKnobs(LongProcKnobs):
    """PathTraversal's knobs."""

    distractor_ratio: Real = Field(0.25, ge=0.0, le=4.0, description="distractor cities (off the route) per route "
                                   "hop; the paper's data has about 0.25")


class PathTraversalEnv(LongProcEnv):
    """LongProc path traversal: print the unique route through a one-way city graph (arXiv 2501.05414).

    Knobs `level` (0.5k/2k/8k output tokens) and `distractor_ratio`; metric: exact match, correct-prefix fraction.
    """

    REWARD: ClassVar[str] = "1 if the route matches the reference exactly, else 0"

    Knobs = PathTraversalKnobs

    def _generate(self) -> None:
        rng = self.np_random
        names = _NameSource(rng)
        self.route = self._grow_route(names, self._target_tokens())
        distractors = self._distractor_edges(names)
        edges = self.route + distractors
        self.facts = [fact_line(edges[i]) for i in rng.permutation(len(edges))]
        self.reference = format_route(self.route)

    def _grow_route(self, names: _NameSource, target: float) -> list[Edge]:
        rng = self.np_random
        route = [(names.new(), names.new(), pick(rng, TRANSITS))]
        chars = len(format_route(route))
        while True:
            edge = (route[-1][1], names.new(), pick(rng, TRANSITS))
            if (chars + len(hop_line(edge)) + 1) / CHARS_PER_TOKEN > target:
                return route
            route.append(edge)
            chars += len(hop_line(edge)) + 1

    def _distractor_edges(self, names: _NameSource) -> list[Edge]:
        rng = self.np_random
        cities = [names.new() for _ in range(int(round(self.distractor_ratio * len(self.route))))]
        targets = [e[1] for e in self.route] + cities
        return [(c, pick(rng, targets), pick(rng, TRANSITS)) for c in cities]

    def _prompt(self) -> str:
        return PROMPT.format(facts="\n".join(self.facts), src=self.route[0][0], dst=self.route[-1][1])

    def _score(self, text: str) -> tuple[dict[str, float], str | None]:
        lines, error = parse_route(text)
        if lines is None:
            return {"accuracy": 0.0, "partial_accuracy": 0.0}, error
        return score_route(lines, [hop_line(e) for e in self.route]), None

    def wrong_action(self, rng: np.random.Generator) -> str:
        """The route without its last hop (well-formed, not exact)."""
        return format_route(self.route[:-1]) if len(self.route) > 1 else "<Route>\n</Route>"


class _NameSource:
    """Draws distinct city names."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.used = rng, set()

    def new(self) -> str:
        while True:
            name = city_name(self.rng)
            if name not in self.used:
                self.used.add(name)
                return name
