"""Tabletop's world: blocks, the scene, moves and their rules, and scene generation."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from longhorizon.envs.core.base import clip_text


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
