"""Tabletop's goals (gather, stack, count, reference): each one's check and oracle plan, and how they are drawn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from longhorizon.envs.tabletop.world import PLACES, SIZES, TABLE, ZONES, Scene, describe_place


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
