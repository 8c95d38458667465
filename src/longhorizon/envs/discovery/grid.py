"""The Mystery Grid world of `longhorizon/Discovery-v0` (UltraHorizon's grid env, arXiv 2509.21766).

A 10x10 grid of letters (the first `n_rules` of A-E). Each round starts on a
fresh random grid at a random tile with 20 energy and score 0. A move costs 1
energy; stepping on a letter applies that letter's hidden effect, then the tile
becomes X (no effect). The round ends when, after a move and its effect, energy
is <= 0 or 30 moves were made; `reset` starts a new round (no limit). Effects
are the 10 of UltraHorizon's `envs/grid_env/env.py`, evaluated after the move
is paid: `energy` is the energy after paying, `move` the 1-based move number in
the round, `visit` how many times a tile of this letter was stepped on this
round (this one included). Each letter in play gets a distinct effect.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from longhorizon.envs.core.tools import ToolCall, ToolError, dumps, parse_results, tool_schema

SIZE, START_ENERGY, ROUND_MOVES = 10, 20, 30
LETTERS = "ABCDE"
LETTERS_RE = re.compile(r"letters in play: ([A-E](?:, [A-E])*)")
DIRECTIONS: dict[str, tuple[int, int]] = {"up": (0, 1), "down": (0, -1), "left": (-1, 0), "right": (1, 0)}
Direction = Literal["up", "down", "left", "right"]  # the keys of DIRECTIONS: the `move` tool's enum


@dataclass(frozen=True)
class Moment:
    """What an effect may depend on, at the moment the agent steps on a letter."""

    x: int
    y: int
    energy: int  # after paying the move
    move: int  # 1-based move number within the round
    visit: int  # tiles of this letter stepped on this round, this one included


Effect = Callable[[Moment], tuple[int, int]]  # -> (score change, energy change)


def _edge(m: Moment) -> int:
    band = m.x in (0, 1, 8, 9) or m.y in (0, 1, 8, 9)
    corner = m.x in (0, 9) and m.y in (0, 9)
    return 3 * band + 3 * corner


EFFECTS: dict[str, tuple[str, Effect]] = {
    "e1": ("+1 score", lambda m: (1, 0)),
    "e2": ("+1 energy", lambda m: (0, 1)),
    "e3": ("+1 score if x+y is odd, else -1 score", lambda m: (1 if (m.x + m.y) % 2 else -1, 0)),
    "e4": ("-1 score", lambda m: (-1, 0)),
    "e5": ("+2 score if energy >= 15, else -2 score", lambda m: (2 if m.energy >= 15 else -2, 0)),
    "e6": ("+2 score if the move number is a multiple of 3, else -1 score",
           lambda m: (2 if m.move % 3 == 0 else -1, 0)),
    "e7": ("+3 score in the border band (x or y in {0,1,8,9}), +3 more on a corner tile, else nothing",
           lambda m: (_edge(m), 0)),
    "e8": ("+1 score on an odd-numbered visit to this letter in the round (1st, 3rd, ...), else nothing",
           lambda m: (m.visit % 2, 0)),
    "e9": ("if energy < 10: -2 score and +10 energy; else +1 score", lambda m: (-2, 10) if m.energy < 10 else (1, 0)),
    "e10": ("score changes by x - y", lambda m: (m.x - m.y, 0)),
}

COMMIT_SCHEMA: dict[str, Any] = {"type": "object", "description": 'letter -> effect id, e.g. {"A": "e3", "B": "e7"}'}


class GridWorld:
    """The grid, the current round and the hidden letter -> effect map."""

    def __init__(self, rng: np.random.Generator, n_rules: int, required_steps: int):
        self.rng, self.required = rng, required_steps
        self.letters = LETTERS[:n_rules]
        self.rule_names = list(self.letters)
        ids = list(EFFECTS)
        self.rules = {letter: ids[i] for letter, i in zip(self.letters, rng.choice(len(ids), n_rules, replace=False))}
        self.experiments, self.rounds = 0, 0
        self._start_round()

    def _start_round(self) -> None:
        draws = self.rng.integers(0, len(self.letters), (SIZE, SIZE))
        self.grid = [[self.letters[int(i)] for i in row] for row in draws]
        self.x, self.y = (int(v) for v in self.rng.integers(0, SIZE, 2))
        self.energy, self.score, self.move_count = START_ENERGY, 0, 0
        self.visits: dict[str, int] = {}
        self.rounds += 1

    @property
    def round_over(self) -> bool:
        return self.energy <= 0 or self.move_count >= ROUND_MOVES

    # -- tools --------------------------------------------------------------------------------
    def move(self, direction: Direction) -> str:
        """Move one tile (counts as one experiment). 'up' is y+1.

        Args:
            direction: the direction to move in
        """
        self._check_can_move()
        dx, dy = DIRECTIONS[direction]
        x, y = self.x + dx, self.y + dy
        if not (0 <= x < SIZE and 0 <= y < SIZE):
            raise ToolError(f"moving {direction} from ({self.x},{self.y}) leaves the 10x10 grid; the move was not made")
        self.x, self.y, self.energy = x, y, self.energy - 1
        self.move_count += 1
        self.experiments += 1
        tile = self.grid[y][x]
        if tile != "X":
            self._apply(tile)
        self.grid[y][x] = "X"
        return dumps({"position": [x, y], "tile": tile, **self._status()})

    def _check_can_move(self) -> None:
        if self.experiments >= self.required:
            raise ToolError(f"you have made all {self.required} required moves; no more moves are allowed. "
                            "Review your notes and commit your rules")
        if self.round_over:
            raise ToolError("this round is over (energy 0 or 30 moves); call reset to start a new round")

    def _apply(self, letter: str) -> None:
        self.visits[letter] = self.visits.get(letter, 0) + 1
        moment = Moment(self.x, self.y, self.energy, self.move_count, self.visits[letter])
        score, energy = EFFECTS[self.rules[letter]][1](moment)
        self.score += score
        self.energy += energy

    def look(self) -> str:
        """Show the whole map, your position, energy, score and move counts (free)."""
        rows = {str(y): "".join(self.grid[y]) for y in reversed(range(SIZE))}
        return dumps({"position": [self.x, self.y], **self._status(), "map": rows})

    def new_round(self) -> str:
        """Start a new round: fresh random grid and position, 20 energy, score 0 (free)."""
        self._start_round()
        return dumps({"round": self.rounds, "position": [self.x, self.y], **self._status(),
                      "map": {str(y): "".join(self.grid[y]) for y in reversed(range(SIZE))}})

    def _status(self) -> dict[str, Any]:
        return {"energy": self.energy, "score": self.score, "move": self.move_count, "round_over": self.round_over,
                "moves_done": self.experiments, "moves_required": self.required}

    # -- commit ---------------------------------------------------------------------------------
    def parse_commit(self, rules: Any) -> dict[str, str]:
        example = ", ".join(f'"{letter}": "e{i + 1}"' for i, letter in enumerate(self.letters))
        if not isinstance(rules, dict):
            raise ToolError(f"rules must be an object mapping each letter to an effect id, e.g. {{{example}}}")
        missing = [letter for letter in self.letters if letter not in rules]
        extra = [str(k) for k in rules if k not in self.letters]
        if missing or extra:
            raise ToolError(f"rules must have exactly the letters {', '.join(self.letters)}; "
                            f"missing: {', '.join(missing) or 'none'}; not in play: {', '.join(extra) or 'none'}")
        unknown = {k: v for k, v in rules.items() if not (isinstance(v, str) and v in EFFECTS)}
        if unknown:
            bad = ", ".join(f"{k}: {json_short(v)}" for k, v in unknown.items())
            raise ToolError(f"unknown effect id(s) ({bad}); use ids from the catalogue: {', '.join(EFFECTS)}")
        return dict(rules)

    def grade(self, parsed: dict[str, str]) -> dict[str, bool]:
        return {letter: parsed[letter] == self.rules[letter] for letter in self.letters}

    def wrong_commit(self) -> dict[str, str]:
        ids = list(EFFECTS)
        return {letter: ids[(ids.index(effect) + 1) % len(ids)] for letter, effect in self.rules.items()}

    def intro(self) -> str:
        catalogue = "\n".join(f"  {eid}: {text}" for eid, (text, _) in EFFECTS.items())
        letters = ", ".join(self.letters)
        return (
            "=== MYSTERY GRID: discover the hidden rules ===\n"
            f"You explore a 10x10 grid of letter tiles (letters in play: {letters}). Positions are (x, y): x is the "
            "column 0-9 from left to right, y the row 0-9 from bottom to top; 'up' is y+1.\n"
            "Each round starts on a fresh random grid at a random tile with 20 energy and score 0. Every move costs "
            "1 energy. Stepping onto a letter triggers that letter's hidden effect, then the tile becomes X (no "
            "effect). The round ends when, after a move, energy is 0 or less or 30 moves were made; call reset to "
            "start a new round (as often as you like).\n"
            "Each letter in play has exactly one effect from this catalogue, and no two letters share one. An "
            "effect is evaluated after the move is paid: `energy` is the energy after paying the move, the move "
            "number counts moves in the current round (1, 2, ...), and visits count the tiles of that letter "
            "stepped on in the current round, this one included.\n"
            f"{catalogue}\n"
            f"You must make exactly {self.required} moves (experiments); moves beyond that are refused, and you "
            "may commit only after all of them. Use notes to record observations and hypotheses. Then call "
            f"commit once with rules = {{letter: effect id}} for every letter in play, e.g. "
            f'{{"A": "e1", "B": "e7"}}. Your reward is the fraction of letters whose effect is right.\n'
            "Tools: move(direction), look(), reset(), notes(action, text), commit(rules).\n"
            f"Current round: {self.look()}"
        )


# The experiment tools' schemas, from the world's methods (the `reset` tool is `new_round`).
TOOLS = [tool_schema(GridWorld.move), tool_schema(GridWorld.look), tool_schema(GridWorld.new_round, name="reset")]


def json_short(value: Any) -> str:
    return repr(value)[:40]


def make_world(rng: np.random.Generator, n_rules: int, required_steps: int, noise: float) -> GridWorld:
    return GridWorld(rng, n_rules, required_steps)


# -- the oracle: a systematic experimenter that only reads observations ----------------------------


@dataclass
class _View:
    """The experimenter's picture of the round, rebuilt from tool results."""

    x: int
    y: int
    energy: int
    score: int
    move: int
    moves_done: int
    moves_required: int
    round_over: bool


class Experimenter:
    """Keeps, per letter, the catalogue effects consistent with every observed move; walks to tiles
    where the remaining candidates predict different outcomes; commits after the required moves."""

    def __init__(self) -> None:
        self.letters: str = ""
        self.candidates: dict[str, set[str]] = {}
        self.view: _View | None = None
        self.map: list[list[str]] | None = None
        self.visits: dict[str, int] | None = {}  # None: out of sync this round (a move was not seen)
        self.noted: set[str] = set()

    def next_call(self, observation: str) -> ToolCall:
        if not self.letters:
            self._read_intro(observation)
        for name, payload in parse_results(observation):
            self._observe(name, payload)
        return self._decide()

    # -- reading observations ---------------------------------------------------------------------
    def _read_intro(self, text: str) -> None:
        found = LETTERS_RE.search(text)
        self.letters = found.group(1).replace(", ", "") if found else LETTERS
        self.candidates = {letter: set(EFFECTS) for letter in self.letters}
        marker = text.rfind("Current round: ")
        for name, payload in parse_results("[look] " + text[marker + 15:].strip()) if marker >= 0 else []:
            self._observe(name, payload)

    def _observe(self, name: str, payload: dict[str, Any]) -> None:
        if name in ("look", "reset") and "map" in payload:
            self.map = [list(payload["map"][str(y)]) for y in range(SIZE)]
            if name == "reset":
                self.visits = {}
            self.view = _view(payload)
        elif name == "move" and "tile" in payload:
            self._observe_move(payload)

    def _observe_move(self, payload: dict[str, Any]) -> None:
        before, after = self.view, _view(payload)
        in_sync = before is not None and after.moves_done == before.moves_done + 1 and after.move == before.move + 1
        tile = payload["tile"]
        if in_sync and self.visits is not None and tile in self.candidates:
            self.visits[tile] = self.visits.get(tile, 0) + 1
            moment = Moment(after.x, after.y, before.energy - 1, after.move, self.visits[tile])
            seen = (after.score - before.score, after.energy - (before.energy - 1))
            self.candidates[tile] = {e for e in self.candidates[tile] if EFFECTS[e][1](moment) == seen}
            self._propagate()
        elif not in_sync:
            self.visits = None
        if self.map is not None:
            self.map[after.y][after.x] = "X"
        self.view = after

    def _propagate(self) -> None:
        """Effects are distinct: an effect pinned to one letter is removed from the others."""
        changed = True
        while changed:
            changed = False
            for letter, cands in self.candidates.items():
                if len(cands) == 1:
                    for other in self.candidates:
                        if other != letter and cands <= self.candidates[other] and len(self.candidates[other]) > 1:
                            self.candidates[other] -= cands
                            changed = True

    # -- choosing the next call -------------------------------------------------------------------
    def _decide(self) -> ToolCall:
        view = self.view
        if view is None or self.map is None:
            return ToolCall("look", {})
        if view.moves_done >= view.moves_required:
            rules = {k: min(v or {"e1"}, key=_effect_order) for k, v in self.candidates.items()}
            return ToolCall("commit", {"rules": rules})
        solved = sorted(k for k, v in self.candidates.items() if len(v) == 1 and k not in self.noted)
        if solved:
            self.noted.update(solved)
            text = "; ".join(f"{k} = {next(iter(self.candidates[k]))}" for k in solved)
            return ToolCall("notes", {"action": "add", "text": f"after {view.moves_done} moves: {text}"})
        if view.round_over:
            return ToolCall("reset", {})
        return self._plan_move(view)

    def _plan_move(self, view: _View) -> ToolCall:
        target = self._target(view)
        if target is None:
            if view.move > 0 and self._open_letters():
                return ToolCall("reset", {})
            return ToolCall("move", {"direction": self._wander(view)})
        (tx, ty), arrival = target
        for name, (dx, dy) in DIRECTIONS.items():
            x, y = view.x + dx, view.y + dy
            if _inside(x, y) and abs(tx - x) + abs(ty - y) <= arrival - 1:
                return ToolCall("move", {"direction": name})
        return ToolCall("move", {"direction": self._wander(view)})

    def _open_letters(self) -> set[str]:
        return {k for k, v in self.candidates.items() if len(v) > 1}

    def _target(self, view: _View) -> tuple[tuple[int, int], int] | None:
        """The tile, and the move count to arrive there, where open candidates would disagree (soonest first)."""
        assert self.map is not None
        open_letters = self._open_letters()
        horizon = min(ROUND_MOVES - view.move, view.energy)
        cells = sorted((abs(x - view.x) + abs(y - view.y), y, x) for y in range(SIZE) for x in range(SIZE)
                       if self.map[y][x] in open_letters)
        best: tuple[tuple[int, int], int] | None = None
        for dist, y, x in cells:
            limit = min(horizon, best[1] - 1) if best else horizon
            if dist > limit:
                break
            letter = self.map[y][x]
            for t in range(dist or 2, limit + 1, 2):  # arrival times have the parity of the distance
                if self._splits(letter, Moment(x, y, view.energy - t, view.move + t, self._visit(letter))):
                    best = ((x, y), t)
                    break
        return best

    def _visit(self, letter: str) -> int:
        return (self.visits or {}).get(letter, 0) + 1

    def _splits(self, letter: str, moment: Moment) -> bool:
        return len({EFFECTS[e][1](moment) for e in self.candidates[letter]}) > 1

    def _wander(self, view: _View) -> str:
        """Any legal move, preferring a fresh (non-X) tile."""
        assert self.map is not None
        legal = [(name, view.x + dx, view.y + dy) for name, (dx, dy) in DIRECTIONS.items()
                 if _inside(view.x + dx, view.y + dy)]
        fresh = [name for name, x, y in legal if self.map[y][x] != "X"]
        return (fresh or [legal[0][0]])[0]


def _view(payload: dict[str, Any]) -> _View:
    x, y = payload["position"]
    return _View(x, y, payload["energy"], payload["score"], payload["move"], payload["moves_done"],
                 payload["moves_required"], payload["round_over"])


def _inside(x: int, y: int) -> bool:
    return 0 <= x < SIZE and 0 <= y < SIZE


def _effect_order(effect_id: str) -> int:
    return int(effect_id[1:])
