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

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from longhorizon.envs.core.base import TextEnv
from longhorizon.envs.core.knobs import Int, Knobs, set_knobs
from longhorizon.envs.tabletop.goals import draw_goals
from longhorizon.envs.tabletop.world import COLOURS, GOAL_TYPES, PLACES, make_blocks, make_scene, move_error, parse_move


# -- the environment ----------------------------------------------------------------


@dataclass
class Progress:
    goal: int = 0  # index of the current goal
    steps: int = 0
    moves: int = 0
    illegal: int = 0
    first_moved: str | None = None
    satisfied: list[bool] = field(default_factory=list)


class TabletopKnobs(Knobs):
    """Tabletop's knobs."""

    n_blocks: Int = Field(6, ge=2, le=40, description="number of blocks on the table (more blocks: more moves per "
                          "goal)")
    n_goals: Int = Field(2, ge=1, le=50, description="number of goals completed one after another (more goals: longer "
                         "episodes)")
    n_colours: Int = Field(3, ge=1, le=len(COLOURS), description="number of block colours to draw from (1-6)")
    max_steps: Int | None = Field(None, ge=1, le=1_000_000, description="turn limit; the episode is truncated after it "
                                  "(default: n_goals * (4 * n_blocks + 2))")
    goal_types: tuple[str, ...] = Field(GOAL_TYPES, description="goal templates to draw from: subset of gather, "
                                        "stack, count, reference")

    @field_validator("goal_types", mode="before")
    @classmethod
    def _goal_types(cls, goal_types: Any) -> tuple[str, ...]:
        kinds = (goal_types,) if isinstance(goal_types, str) else tuple(goal_types)
        unknown = [k for k in kinds if k not in GOAL_TYPES]
        if not kinds or unknown:
            raise ValueError(f"goal_types must be a non-empty subset of {GOAL_TYPES}, got {goal_types!r}")
        if set(kinds) == {"reference"}:
            raise ValueError("goal_types needs a type besides 'reference' (the first goal is never a reference goal)")
        return kinds


class TabletopEnv(TextEnv):
    """Move blocks between stacks and zones to satisfy a chain of language goals."""

    REWARD: ClassVar[str] = "1/n_goals per goal satisfied: 0 to 1 per episode"

    HORIZON_KNOB: ClassVar[str | None] = "n_goals"
    Knobs = TabletopKnobs
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "small": {"n_blocks": 4, "n_goals": 1},
        "default": {},
        "large": {"n_blocks": 12, "n_goals": 6},
    }

    def __init__(self, render_mode: str | None = None, **knobs: Any):
        super().__init__(render_mode)
        self.knobs = set_knobs(self, TabletopKnobs, knobs)
        if self.max_steps is None:
            self.max_steps = self.n_goals * (4 * self.n_blocks + 2)

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
