"""`longhorizon/Tabletop-v0`: long-horizon tabletop manipulation, in text.

A text-only analogue of LoHoRavens ("LoHoRavens: A Long-Horizon Language-
Conditioned Benchmark for Robotic Tabletop Manipulation", Zhang et al., 2023).
A table holds coloured blocks of three sizes and three zones. The agent
moves one block per turn with `pick <block> place <target>` and, after every
turn, sees a caption of the scene (the paper's *explicit observation
feedback*, here exact instead of produced by a captioning model).

Names. Blocks are `<colour>_<size>_<k>`, e.g. `red_large_1`; sizes are
small < medium < large and `k` numbers blocks that share colour and size
(from 1). Targets are a block name or one of the places `table`, `left_zone`,
`middle_zone`, `right_zone`. Placing on a place starts a new stack there.
A block counts as *on the table* / *in a zone* when the stack it belongs to
stands there (so a block on top of another block in the left zone is in the
left zone).

Goals (LoHoRavens' reasoning types), completed one after another:
- `gather` (colour / size + space): "Put all red blocks in the left zone.",
  "Put all large blocks on the table."
- `stack` (size + space): "Build one stack made of exactly the blue blocks,
  largest at the bottom ..." (all blocks, or all blocks of one colour; equal
  sizes may come in any order).
- `count` (arithmetic): "Put exactly as many red blocks in the left zone as
  there are blue blocks on the table." Both counts are taken when the agent
  declares the goal done.
- `reference` (the agent's own history): "Put the block you moved first in
  this episode onto green_small_1." A reference goal is never the first goal
  (the first goal is always unsatisfied at the start, so a perfect agent has
  moved a block before any reference goal comes up: the two-phase design).
  If the referred block is the target block itself, the goal text says to put
  it in a named zone instead. If no block was moved yet, the goal cannot be
  satisfied.

Episode. All goals are listed up front and are worked on in order. The agent
replies `done` to declare the current goal complete; the verifier then checks
that goal on the current state (the agent is told only that the goal was
recorded, not whether it held) and the next goal starts from the same scene.
There is no auto-termination: the episode ends (terminated) after the last
`done`, or is truncated after `max_steps` turns. Every turn counts, including
rejected ones.

Strict parsing: an action is `pick <block> place <target>` or `done`,
surrounded only by whitespace (keywords and names are case-insensitive).
Anything else, and illegal moves (unknown names, picking a covered block,
placing on a covered block or on itself, a move that leaves the block where
it is), is rejected with an explanation in the observation and
`info["error"]`; the state is unchanged.

Reward: `1/n_goals` on each `done` whose goal holds, 0 on every other turn,
so the return is the fraction of goals satisfied (partial goal credit; our
choice, the paper reports task success rates).
`info["metrics"]` on the last step: `goals_satisfied_fraction` (the same
fraction; unreached goals count as unsatisfied), `moves`, `illegal_actions`;
`success` is True iff every goal was satisfied.

Oracle: a deterministic planner that replans from the current state each turn
(`oracle_action`): it moves misplaced blocks, unstacking what covers them onto
the table (or a spare zone for `count`), builds stacks bottom-up, and says
`done` once the current goal holds. Its episode length grows with `n_blocks`
(more blocks to move per goal) and with `n_goals` (more goals in a row).

Departures from LoHoRavens: symbolic state instead of a simulator and images;
an exact scene caption instead of a learned captioner; goals come from the
templates above (a subset of the paper's reasoning types, with the arithmetic
and reference types made exactly verifiable); several goals are chained in one
episode to control the horizon; blocks have no physics (any block may be put
on any clear block, zones hold any number of stacks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from longhorizon.envs.core.base import TextEnv, clip_text

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES = ("small", "medium", "large")  # index = size rank
TABLE = "table"
ZONES = ("left_zone", "middle_zone", "right_zone")
PLACES = (TABLE, *ZONES)
GOAL_TYPES = ("gather", "stack", "count", "reference")
ACTION_RE = re.compile(r"pick\s+(\S+)\s+place\s+(\S+)")
STACK_PROB = 0.4  # chance that a generated block starts on top of another block


# -- the scene ------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    name: str
    colour: str
    size: int  # 0 small, 1 medium, 2 large


@dataclass
class Scene:
    """Blocks and what each one rests on (`support[b]` is a place or a block name)."""

    blocks: dict[str, Block]
    support: dict[str, str]

    def above(self, name: str) -> str | None:
        """The block resting directly on `name`, if any."""
        return next((b for b, s in self.support.items() if s == name), None)

    def is_clear(self, name: str) -> bool:
        return self.above(name) is None

    def region(self, name: str) -> str:
        """The place where the stack holding `name` stands."""
        while name not in PLACES:
            name = self.support[name]
        return name

    def top(self, name: str) -> str:
        """The topmost block of the stack holding `name`."""
        while (up := self.above(name)) is not None:
            name = up
        return name

    def n_above(self, name: str) -> int:
        count = 0
        while (name := self.above(name)) is not None:
            count += 1
        return count

    def stack_from(self, base: str) -> list[str]:
        """`base` and the blocks above it, bottom to top."""
        stack = [base]
        while (up := self.above(stack[-1])) is not None:
            stack.append(up)
        return stack

    def bases(self, place: str) -> list[str]:
        return sorted(b for b, s in self.support.items() if s == place)

    def caption(self) -> str:
        lines = ["Scene (each [...] is one stack, listed bottom to top):"]
        for place in PLACES:
            stacks = [f"[{' '.join(self.stack_from(b))}]" for b in self.bases(place)]
            lines.append(f"  {place}: {' '.join(stacks) if stacks else '(empty)'}")
        return "\n".join(lines)


def describe_place(place: str) -> str:
    return "on the table" if place == TABLE else f"in the {place.removesuffix('_zone')} zone ({place})"


def parse_move(text: str) -> tuple[str, str, str | None]:
    """`(block, target, None)` for a well-formed `pick <block> place <target>`, else `("", "", reason)`."""
    match = ACTION_RE.fullmatch(text.strip().lower())
    if match is None:
        return "", "", (f"could not parse the action {clip_text(text, 60)!r}; "
                        "expected 'pick <block> place <target>' or 'done'")
    return match.group(1), match.group(2), None


def move_error(scene: Scene, block: str, target: str) -> str | None:
    """Why `pick block place target` is illegal, or None if it is legal."""
    if block not in scene.blocks:
        return f"unknown block {clip_text(block, 40)!r}; blocks are: {', '.join(sorted(scene.blocks))}"
    if target not in scene.blocks and target not in PLACES:
        return f"unknown target {clip_text(target, 40)!r}; a target is a block or one of: {', '.join(PLACES)}"
    if (up := scene.above(block)) is not None:
        return f"cannot pick {block}: {up} is on top of it"
    if target == block:
        return f"cannot place {block} on itself"
    if target in scene.blocks and (up := scene.above(target)) is not None:
        return f"cannot place onto {target}: {up} is on top of it"
    if scene.support[block] == target:
        return f"{block} is already directly on {target}"
    return None


# -- goals ----------------------------------------------------------------------

Move = tuple[str, str]  # (block, target)


class Goal(Protocol):
    text: str

    def satisfied(self, scene: Scene, first_moved: str | None) -> bool: ...

    def next_move(self, scene: Scene, first_moved: str | None) -> Move | None:
        """The oracle's next move towards the goal (None: nothing to do)."""
        ...


def _uncover(scene: Scene, name: str, park: str = TABLE) -> Move:
    """Move the top of `name`'s stack out of the way."""
    return scene.top(name), park


def _fewest_above(scene: Scene, names: list[str]) -> str:
    return min(names, key=lambda b: (scene.n_above(b), b))


@dataclass(frozen=True)
class GatherGoal:
    """All blocks of a colour (or a size) must be on the table / in a zone."""

    attribute: str  # "colour" or "size"
    value: str | int
    place: str

    @property
    def text(self) -> str:
        what = self.value if self.attribute == "colour" else SIZES[int(self.value)]
        return f"Put all {what} blocks {describe_place(self.place)}."

    def _selected(self, scene: Scene) -> list[str]:
        return sorted(b.name for b in scene.blocks.values() if getattr(b, self.attribute) == self.value)

    def _misplaced(self, scene: Scene) -> list[str]:
        return [b for b in self._selected(scene) if scene.region(b) != self.place]

    def satisfied(self, scene: Scene, first_moved: str | None) -> bool:
        return not self._misplaced(scene)

    def next_move(self, scene: Scene, first_moved: str | None) -> Move | None:
        misplaced = self._misplaced(scene)
        if not misplaced:
            return None
        clear = [b for b in misplaced if scene.is_clear(b)]
        # The top of a misplaced block's stack is never selected (it would be clear and misplaced).
        return (clear[0], self.place) if clear else _uncover(scene, _fewest_above(scene, misplaced))


@dataclass(frozen=True)
class StackGoal:
    """One stack made of exactly the selected blocks, sizes non-increasing upwards."""

    colour: str | None  # None: all blocks

    @property
    def text(self) -> str:
        which = "all the blocks" if self.colour is None else f"exactly the {self.colour} blocks"
        return (f"Build one stack made of {which}, largest at the bottom and smallest at the top "
                "(blocks of equal size in any order).")

    def _selected(self, scene: Scene) -> set[str]:
        return {b.name for b in scene.blocks.values() if self.colour in (None, b.colour)}

    def _order(self, scene: Scene) -> list[int]:
        return sorted((scene.blocks[b].size for b in self._selected(scene)), reverse=True)

    def _prefix(self, scene: Scene, stack: list[str]) -> int:
        """How many blocks from the bottom of `stack` already match the target order."""
        selected, order, k = self._selected(scene), self._order(scene), 0
        while k < len(stack) and stack[k] in selected and scene.blocks[stack[k]].size == order[k]:
            k += 1
        return k

    def _tower(self, scene: Scene) -> tuple[list[str], int] | None:
        """The stack to build on: longest correct prefix, then fewest extra blocks, then name."""
        bases = [b for p in PLACES for b in scene.bases(p)]
        towers = [(s, self._prefix(scene, s)) for s in map(scene.stack_from, bases)]
        towers = [(s, k) for s, k in towers if k > 0]
        return min(towers, key=lambda t: (-t[1], len(t[0]) - t[1], t[0][0]), default=None)

    def satisfied(self, scene: Scene, first_moved: str | None) -> bool:
        tower = self._tower(scene)
        n = len(self._selected(scene))
        return tower is not None and tower[1] == n and len(tower[0]) == n

    def next_move(self, scene: Scene, first_moved: str | None) -> Move | None:
        if self.satisfied(scene, first_moved):
            return None
        order, tower = self._order(scene), self._tower(scene)
        if tower is None:  # no largest block stands on a place yet: free one
            largest = [b for b in self._selected(scene) if scene.blocks[b].size == order[0]]
            base = _fewest_above(scene, largest)
            return (base, TABLE) if scene.is_clear(base) else _uncover(scene, base)
        stack, k = tower
        if len(stack) > k:
            return stack[-1], TABLE
        need = [b for b in self._selected(scene) - set(stack) if scene.blocks[b].size == order[k]]
        block = _fewest_above(scene, need)
        return (block, stack[-1]) if scene.is_clear(block) else _uncover(scene, block)


@dataclass(frozen=True)
class CountGoal:
    """#(colour blocks in zone) == #(ref_colour blocks on the table), counted at `done`."""

    colour: str
    zone: str
    ref_colour: str

    @property
    def text(self) -> str:
        return (f"Put exactly as many {self.colour} blocks {describe_place(self.zone)} as there are "
                f"{self.ref_colour} blocks on the table (both counted when you say done).")

    def _counts(self, scene: Scene) -> tuple[int, int]:
        blocks = scene.blocks.values()
        in_zone = sum(b.colour == self.colour and scene.region(b.name) == self.zone for b in blocks)
        on_table = sum(b.colour == self.ref_colour and scene.region(b.name) == TABLE for b in blocks)
        return in_zone, on_table

    def _of(self, scene: Scene, colour: str, place: str) -> list[str]:
        return sorted(b.name for b in scene.blocks.values() if b.colour == colour and scene.region(b.name) == place)

    def satisfied(self, scene: Scene, first_moved: str | None) -> bool:
        in_zone, on_table = self._counts(scene)
        return in_zone == on_table

    def next_move(self, scene: Scene, first_moved: str | None) -> Move | None:
        in_zone, on_table = self._counts(scene)
        spare = next(z for z in ZONES if z != self.zone)
        if in_zone < on_table:  # take a ref-coloured block off the table
            return self._shift(scene, self._of(scene, self.ref_colour, TABLE), spare, self.colour, self.zone)
        if in_zone > on_table:  # take a block of `colour` out of the zone
            return self._shift(scene, self._of(scene, self.colour, self.zone), spare, self.ref_colour, TABLE)
        return None

    def _shift(self, scene: Scene, names: list[str], dest: str, helper: str, helper_dest: str) -> Move:
        """Move a clear block of `names` to `dest`; else the top above one of them.

        The top is moved to `helper_dest` when it has colour `helper` (that also
        closes the gap), else parked in `dest` (which changes neither count).
        """
        clear = [b for b in names if scene.is_clear(b)]
        if clear:
            return clear[0], dest
        top = scene.top(_fewest_above(scene, names))
        return (top, helper_dest) if scene.blocks[top].colour == helper else (top, dest)


@dataclass(frozen=True)
class ReferenceGoal:
    """The first block the agent moved must end up on `target` (a block, or a place by region)."""

    target: str
    fallback: str  # a zone, used when the referred block is the target block itself

    @property
    def text(self) -> str:
        if self.target in PLACES:
            return f"Put the block you moved first in this episode {describe_place(self.target)}."
        return (f"Put the block you moved first in this episode directly onto {self.target}. "
                f"If that block is {self.target} itself, put it {describe_place(self.fallback)} instead.")

    def _resolved(self, first_moved: str) -> str:
        return self.fallback if first_moved == self.target else self.target

    def satisfied(self, scene: Scene, first_moved: str | None) -> bool:
        if first_moved is None:
            return False
        target = self._resolved(first_moved)
        return scene.region(first_moved) == target if target in PLACES else scene.support[first_moved] == target

    def next_move(self, scene: Scene, first_moved: str | None) -> Move | None:
        if first_moved is None or self.satisfied(scene, first_moved):
            return None
        target = self._resolved(first_moved)
        if not scene.is_clear(first_moved):
            return _uncover(scene, first_moved)
        if target in scene.blocks and not scene.is_clear(target):
            return _uncover(scene, target)
        return first_moved, target


# -- generation -------------------------------------------------------------------


def make_blocks(rng: np.random.Generator, n_blocks: int, colours: list[str]) -> dict[str, Block]:
    counts: dict[tuple[str, int], int] = {}
    blocks = {}
    for _ in range(n_blocks):
        colour, size = str(rng.choice(colours)), int(rng.integers(len(SIZES)))
        counts[colour, size] = counts.get((colour, size), 0) + 1
        name = f"{colour}_{SIZES[size]}_{counts[colour, size]}"
        blocks[name] = Block(name, colour, size)
    return blocks


def make_scene(rng: np.random.Generator, blocks: dict[str, Block]) -> Scene:
    """Drop the blocks in a random order: each lands on a random clear block or a place."""
    scene = Scene(blocks, {})
    for name in rng.permutation(sorted(blocks)):
        clear = sorted(b for b in scene.support if scene.is_clear(b))
        if clear and rng.random() < STACK_PROB:
            scene.support[str(name)] = str(rng.choice(clear))
        else:
            scene.support[str(name)] = str(rng.choice(PLACES, p=[0.4, 0.2, 0.2, 0.2]))
    return scene


def _colours_with(scene: Scene, at_least: int) -> list[str]:
    colours = [b.colour for b in scene.blocks.values()]
    return sorted(c for c in set(colours) if colours.count(c) >= at_least)


def draw_goal(rng: np.random.Generator, kind: str, scene: Scene) -> Goal | None:
    """A random goal of `kind` for this scene (None if the scene can't support it)."""
    if kind == "gather":
        block = scene.blocks[str(rng.choice(sorted(scene.blocks)))]
        attribute = "colour" if rng.random() < 0.6 else "size"
        return GatherGoal(attribute, getattr(block, attribute), str(rng.choice(PLACES)))
    if kind == "stack":
        colours = _colours_with(scene, 2)
        return StackGoal(None if not colours or rng.random() < 0.3 else str(rng.choice(colours)))
    if kind == "count":
        colours = _colours_with(scene, 1)
        if len(colours) < 2:
            return None
        colour, ref = (str(c) for c in rng.choice(colours, size=2, replace=False))
        return CountGoal(colour, str(rng.choice(ZONES)), ref)
    target = str(rng.choice([*PLACES, *sorted(scene.blocks)]))
    return ReferenceGoal(target, str(rng.choice(ZONES)))


def fallback_goal(scene: Scene) -> Goal:
    """A gather goal that is surely unsatisfied: move some block out of its current region."""
    block = scene.blocks[min(scene.blocks)]
    return GatherGoal("colour", block.colour, next(p for p in PLACES if p != scene.region(block.name)))


def draw_goals(rng: np.random.Generator, scene: Scene, n_goals: int, kinds: tuple[str, ...]) -> list[Goal]:
    """Goals in order; the first is unsatisfied now and is never a reference goal."""
    goals: list[Goal] = []
    for i in range(n_goals):
        allowed = [k for k in kinds if i > 0 or k != "reference"]
        goal = None
        for _ in range(50):
            cand = draw_goal(rng, str(rng.choice(allowed)), scene)
            repeat = bool(goals) and cand == goals[-1]
            if cand is not None and not repeat and (i > 0 or not cand.satisfied(scene, None)):
                goal = cand
                break
        goals.append(goal if goal is not None else fallback_goal(scene))
    return goals


# -- the environment ----------------------------------------------------------------


@dataclass
class Progress:
    goal: int = 0  # index of the current goal
    steps: int = 0
    moves: int = 0
    illegal: int = 0
    first_moved: str | None = None
    satisfied: list[bool] = field(default_factory=list)


class TabletopEnv(TextEnv):
    """Move blocks between stacks and zones to satisfy a chain of language goals."""

    HORIZON_KNOB: ClassVar[str | None] = "n_goals"
    KNOBS: ClassVar[dict[str, str]] = {
        "n_blocks": "number of blocks on the table (more blocks: more moves per goal)",
        "n_goals": "number of goals completed one after another (more goals: longer episodes)",
        "n_colours": "number of block colours to draw from (1-6)",
        "max_steps": "turn limit; the episode is truncated after it (default: n_goals * (4 * n_blocks + 2))",
        "goal_types": "goal templates to draw from: subset of gather, stack, count, reference",
    }
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "small": {"n_blocks": 4, "n_goals": 1},
        "default": {},
        "large": {"n_blocks": 12, "n_goals": 6},
    }

    def __init__(
        self,
        n_blocks: int = 6,
        n_goals: int = 2,
        n_colours: int = 3,
        max_steps: int | None = None,
        goal_types: tuple[str, ...] | list[str] = GOAL_TYPES,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode)
        _check_int("n_blocks", n_blocks, 2, 40)
        _check_int("n_goals", n_goals, 1, 50)
        _check_int("n_colours", n_colours, 1, len(COLOURS))
        if max_steps is not None:
            _check_int("max_steps", max_steps, 1, 1_000_000)
        self.goal_types = _check_goal_types(goal_types)
        self.n_blocks, self.n_goals, self.n_colours = n_blocks, n_goals, n_colours
        self.max_steps = max_steps if max_steps is not None else n_goals * (4 * n_blocks + 2)

    # -- reset ------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        colours = [str(c) for c in rng.choice(COLOURS, size=self.n_colours, replace=False)]
        self.scene = make_scene(rng, make_blocks(rng, self.n_blocks, colours))
        self.goals = draw_goals(rng, self.scene, self.n_goals, self.goal_types)
        self.progress = Progress()
        self.done = False
        self._last_obs = f"{self._intro()}\n\n{self._status()}"
        return self._last_obs, {"goal_index": 0, "n_goals": self.n_goals}

    @property
    def task_statement(self) -> str:
        """The goals, as a reminder wrapper would restate them."""
        goals = "\n".join(f"{i + 1}. {g.text}" for i, g in enumerate(self.goals))
        return f"Complete these goals in order, replying `done` after each one:\n{goals}"

    def _intro(self) -> str:
        return (
            "You control a robot arm above a table with three zones and some blocks.\n"
            "Blocks are named <colour>_<size>_<k> (sizes: small < medium < large).\n"
            "Each turn reply with exactly one action:\n"
            "  pick <block> place <target>   (target: a block, table, left_zone, middle_zone or right_zone)\n"
            "  done                          (the current goal is complete; move on to the next one)\n"
            "Only a block with nothing on it can be picked or built on. Placing a block on the table or in a "
            "zone starts a new stack there. A block is on the table or in a zone when the stack it belongs "
            f"to stands there. You have at most {self.max_steps} turns.\n\n{self.task_statement}"
        )

    def _status(self) -> str:
        p = self.progress
        goal = f"Current goal ({p.goal + 1} of {self.n_goals}): {self.goals[p.goal].text}"
        return f"{self.scene.caption()}\n{goal}\nTurn {p.steps + 1} of at most {self.max_steps}."

    # -- step -------------------------------------------------------------------
    def step(self, action: str):
        if self.done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        self.progress.steps += 1
        text = str(action).strip().lower()
        if text == "done":
            message, reward, info = self._declare_done()
        else:
            message, reward, info = self._try_move(text)
        terminated = self.progress.goal >= self.n_goals
        truncated = not terminated and self.progress.steps >= self.max_steps
        if terminated or truncated:
            self.done = True
            info.update(self._final_info())
        self._last_obs = self._observation(message, info.get("error"), terminated, truncated)
        return self._last_obs, reward, terminated, truncated, info

    def _declare_done(self) -> tuple[str, float, dict[str, Any]]:
        p = self.progress
        ok = self.goals[p.goal].satisfied(self.scene, p.first_moved)
        p.satisfied.append(ok)
        info = {"goal_index": p.goal, "correct": ok, "goal_satisfied": ok}
        p.goal += 1
        return f"Goal {p.goal} recorded as complete.", (1.0 / self.n_goals if ok else 0.0), info

    def _try_move(self, text: str) -> tuple[str, float, dict[str, Any]]:
        info: dict[str, Any] = {"goal_index": self.progress.goal}
        block, target, error = parse_move(text)
        error = error or move_error(self.scene, block, target)
        if error:
            self.progress.illegal += 1
            info.update(error=error, legal=False)
            return "", 0.0, info
        self.scene.support[block] = target
        self.progress.moves += 1
        self.progress.first_moved = self.progress.first_moved or block
        info["legal"] = True
        where = "to" if target in PLACES else "onto"
        return f"You moved {block} {where} {target}.", 0.0, info

    def _final_info(self) -> dict[str, Any]:
        p = self.progress
        n_ok = sum(p.satisfied)
        metrics = {"goals_satisfied_fraction": n_ok / self.n_goals, "moves": float(p.moves),
                   "illegal_actions": float(p.illegal)}
        return {"success": n_ok == self.n_goals, "metrics": metrics}

    def _observation(self, message: str, error: str | None, terminated: bool, truncated: bool) -> str:
        head = f"Your action was rejected: {error}.\n" if error else (message + "\n" if message else "")
        if terminated:
            return head + "All goals have been declared done. The episode is over."
        if truncated:
            return head + f"The turn limit ({self.max_steps}) is reached. The episode is over."
        return head + self._status()

    # -- oracle ------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        """The metrics as they would be if the episode ended now."""
        return self._final_info()["metrics"]

    def oracle_action(self) -> str:
        goal = self.goals[self.progress.goal]
        move = goal.next_move(self.scene, self.progress.first_moved)
        return "done" if move is None else f"pick {move[0]} place {move[1]}"

    def wrong_action(self, rng: np.random.Generator) -> str:
        """A premature `done` if the current goal does not hold yet, else an illegal self-placement."""
        if not self.goals[self.progress.goal].satisfied(self.scene, self.progress.first_moved):
            return "done"
        block = str(rng.choice(sorted(self.scene.blocks)))
        return f"pick {block} place {block}"


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def _check_goal_types(goal_types: Any) -> tuple[str, ...]:
    kinds = (goal_types,) if isinstance(goal_types, str) else tuple(goal_types)
    unknown = [k for k in kinds if k not in GOAL_TYPES]
    if not kinds or unknown:
        raise ValueError(f"goal_types must be a non-empty subset of {GOAL_TYPES}, got {goal_types!r}")
    if set(kinds) == {"reference"}:
        raise ValueError("goal_types needs a type besides 'reference' (the first goal is never a reference goal)")
    return kinds
