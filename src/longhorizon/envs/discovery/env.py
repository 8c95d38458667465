"""`longhorizon/Discovery-v0`: discover hidden rules by experimenting with tools, then commit them.

After UltraHorizon (Luo et al., arXiv 2509.21766, github.com/StarDewXXX/UltraHorizon).
The agent faces a world whose rules are hidden. It runs experiments through
tools, keeps notes with a `notes` tool, and after exactly `required_steps`
experiments (the horizon knob) it commits the rules it inferred, once, with
`commit`. Three worlds (knob `world`), one module each:

- `grid` (discovery_grid.py): the Mystery Grid. A 10x10 grid of letters, an
  energy budget, and a hidden effect per letter chosen from a documented
  catalogue of 10 effects (UltraHorizon's e1..e10: score/energy changes that
  depend on position parity, energy, the move count, corners/edges and visit
  counts). Experiments are moves. Commit `{"A": "e3", "B": "e7", ...}`.
- `sequence` (discovery_sequence.py): the Sequence Machine. Two sequences go
  in, a hidden chain of `n_rules` distinct rules from a library of 11
  (interleave, positional addition, positionwise max, reverse, sort, shift,
  ...) transforms them, and every intermediate result is shown. Experiments
  are runs. Commit the ordered list of rule ids.
- `genetics` (discovery_genetics.py): the Alien Genetics Laboratory. Triploid
  organisms, a hidden dominance order per gene, one hidden lethal allele
  combination and noisy phenotype readings. Experiments are crosses. Commit
  `{"dominance": {gene: [alleles, most dominant first]}, "lethal": [3 alleles]}`.

Episode: the first observation explains the world, the tools, the rule
catalogue and the commit schema. Each step is one assistant message with one
or more `<tool_call>` blocks (protocol: `longhorizon.envs.core.tools`). An
experiment beyond `required_steps` is refused; a commit before it is refused
with an explanation; a malformed commit (not the schema, unknown ids) is
refused with an explanation and the episode goes on. The first well-formed
commit after `required_steps` experiments ends the episode.

Metric (no LLM judge; scored rule by rule against the hidden rules):
`reward` = fraction of rules right, paid on the commit step (0 on every other
step); `info["metrics"]` holds `accuracy` (the same fraction), `rules_right`,
`n_rules`, `experiments`, `committed` and one `rule/<name>` entry (1.0 right,
0.0 wrong) per rule; `success` = every rule right. An episode cut by the turn
limit without a commit scores 0.

Knobs: `world`; `n_rules` (grid: letters in play, 1-5; sequence: chain
length, 1-11; genetics: genes + 1, 2-4); `required_steps` (experiments before
the commit, and the most allowed: the horizon); `noise` (genetics: chance a
trait reading is wrong, <= 0.2); `max_turns` (turn limit, default
3 * required_steps + 50). The oracle's episode is `required_steps` experiments
plus a few free calls (look/reset/notes/list) and the commit, so its length
grows linearly with `required_steps`; its commit has one entry per rule.

Oracle: a systematic experimenter (one class per world) that sees nothing but
the observations (it is never handed the env): it keeps the set of rules
consistent with everything it has seen, picks experiments that split the
remaining candidates, runs exactly `required_steps` experiments and commits.
It needs a large enough budget: grid ~20 moves for 5 letters (every `LEVELS`
entry gives at least 40); sequence 8 runs, which provably identify every chain
of up to 7 rules (exhaustive check over all prefixes; longer chains can very
rarely stay ambiguous); genetics 4 crosses per gene, plus repeats that pool
noisy readings (the levels give 8 per gene).

Departures from UltraHorizon:
1. Commits are structured (ids from a documented catalogue) and graded by
   exact comparison, instead of free text graded by an LLM judge.
2. The grid allows unlimited resets (the paper: 20), and a commit needs
   exactly `required_steps` moves; moves past that are refused as in the paper.
   Letters in play are the first `n_rules` of A-E, each with a distinct effect
   drawn from the 10-effect catalogue (the paper: fixed sets per difficulty).
3. The sequence machine draws the chain from a library of 11 rules that all act
   on the running result (the paper's easy rules ignore it), with letters added
   mod 5 so they stay in A-E.
4. Genetics keeps triploidy, 1+2 unequal segregation, a dominance order per gene,
   a lethal combination and noisy readings, but drops the dosage (body size) and
   cyclic-dominance traits and the free-text report; noise flips a trait reading
   instead of jittering a number.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
from pydantic import Field, model_validator

from longhorizon.envs.core.knobs import Int, Knobs, Real
from longhorizon.envs.core.tools import Notebook, ToolCall, ToolEnv, ToolError, ToolResult, dumps, tool_schema
from longhorizon.envs.discovery import genetics, grid, sequence


class World(Protocol):
    """A discovery world's state and rules. Each discovery_<world>.py module provides `TOOLS` (its
    experiment tools; the env adds notes and commit), `COMMIT_SCHEMA` (the JSON schema of commit's
    `rules`), `make_world(rng, n_rules, required_steps, noise) -> World` and `Experimenter` (its oracle)."""

    rule_names: list[str]  # one name per hidden rule, in scoring order
    experiments: int  # experiments run so far

    def intro(self) -> str: ...
    def parse_commit(self, rules: Any) -> dict[str, Any]: ...  # raises ToolError when malformed
    def grade(self, parsed: dict[str, Any]) -> dict[str, bool]: ...  # rule name -> right
    def wrong_commit(self) -> Any: ...


class Oracle(Protocol):
    def next_call(self, observation: str) -> ToolCall: ...


WORLD_MODULES: dict[str, Any] = {"grid": grid, "sequence": sequence, "genetics": genetics}
WORLD_DEFAULTS: dict[str, dict[str, int]] = {
    "grid": {"n_rules": 5, "required_steps": 60},
    "sequence": {"n_rules": 5, "required_steps": 12},
    "genetics": {"n_rules": 4, "required_steps": 20},
}
N_RULES_RANGE: dict[str, tuple[int, int]] = {"grid": (1, 5), "sequence": (1, 11), "genetics": (2, 4)}


class DiscoveryKnobs(Knobs):
    """Discovery's knobs (`None`: the world's default)."""

    world: Literal["grid", "sequence", "genetics"] = Field(
        "grid", description="'grid' (Mystery Grid), 'sequence' (Sequence Machine) or 'genetics' (Alien Genetics Lab)")
    n_rules: Int | None = Field(None, description="hidden rules to discover: grid 1-5 letters (default 5); sequence "
                                "1-11 chained rules (default 5); genetics 2-4 = genes + 1 lethal rule (default 4)")
    required_steps: Int | None = Field(None, ge=1, le=100_000, description="experiments (grid moves / sequence runs "
                                       "/ genetics crosses) required before the commit, and allowed in all (the "
                                       "horizon; default grid 60, sequence 12, genetics 20)")
    noise: Real = Field(0.05, ge=0.0, le=0.2, description="genetics only: probability that a trait reading is wrong "
                        "(0 to 0.2, default 0.05)")
    max_turns: Int | None = Field(None, ge=1, le=10_000_000, description="turn limit (assistant messages) before the "
                                  "episode is truncated; default 3*required_steps+50")

    @model_validator(mode="after")
    def _rules_fit(self) -> DiscoveryKnobs:
        low, high = N_RULES_RANGE[self.world]
        if self.n_rules is not None and not low <= self.n_rules <= high:
            raise ValueError(f"n_rules must be an integer in [{low}, {high}] for world={self.world}, "
                             f"got {self.n_rules!r}")
        return self


class DiscoveryEnv(ToolEnv):
    """Experiment with a hidden-rule world through tools; commit the rules after `required_steps` experiments."""

    REWARD: ClassVar[str] = "fraction of hidden rules right, on the commit step: 0 to 1"

    HORIZON_KNOB: ClassVar[str | None] = "required_steps"
    Knobs = DiscoveryKnobs
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "grid_easy": {"world": "grid", "n_rules": 3, "required_steps": 40},
        "grid": {"world": "grid"},
        "grid_long": {"world": "grid", "required_steps": 200},
        "sequence_easy": {"world": "sequence", "n_rules": 3, "required_steps": 8},
        "sequence": {"world": "sequence", "n_rules": 7, "required_steps": 16},
        "genetics_easy": {"world": "genetics", "n_rules": 2, "required_steps": 8},
        "genetics": {"world": "genetics", "n_rules": 4, "required_steps": 24},
    }

    def __init__(self, render_mode: str | None = None, **knobs: Any):
        super().__init__(render_mode)
        self.knobs = k = DiscoveryKnobs.parse(knobs, type(self))
        self.world_name, self.noise = k.world, k.noise
        self.n_rules = WORLD_DEFAULTS[k.world]["n_rules"] if k.n_rules is None else k.n_rules
        self.required_steps = WORLD_DEFAULTS[k.world]["required_steps"] if k.required_steps is None \
            else k.required_steps
        self.max_steps = 3 * self.required_steps + 50 if k.max_turns is None else k.max_turns
        module = _world_module(k.world)
        commit = tool_schema(DiscoveryEnv.tool_commit, {"rules": module.COMMIT_SCHEMA})  # `rules`: per world
        self.tools = [*module.TOOLS, Notebook.schema, commit]

    # -- episode ---------------------------------------------------------------------------
    def _make_world(self, rng: np.random.Generator) -> World:
        return _world_module(self.world_name).make_world(rng, self.n_rules, self.required_steps, self.noise)

    def _reset_task(self) -> str:
        self.world: Any = self._make_world(self.np_random)  # a World; its experiment methods vary by world
        self.notebook = Notebook()
        self.scores: dict[str, bool] | None = None
        self._oracle: Oracle | None = None
        self._oracle_memo: tuple[int, ToolCall] | None = None
        return self.world.intro()

    # -- tools: common ---------------------------------------------------------------------
    def tool_notes(self, action: str, text: str | None = None) -> str:
        return self.notebook(action, text)

    def tool_commit(self, rules: Any) -> str:
        """Commit your inferred rules (once; allowed only after the required number of experiments).
        The schema of `rules` is given in the task description.

        Args:
            rules: your rules (their JSON schema, with its own description, is the world's COMMIT_SCHEMA)
        """
        done, need = self.world.experiments, self.required_steps
        if done < need:
            raise ToolError(f"cannot commit yet: you have run {done} of the {need} required experiments; "
                            f"run {need - done} more (and keep notes), then commit")
        self.scores = self.world.grade(self.world.parse_commit(rules))
        self.done = True
        right = sum(self.scores.values())
        return dumps({"committed": True, "rules_right": right, "n_rules": len(self.scores),
                      "per_rule": {name: ok for name, ok in self.scores.items()}})

    # -- tools: the worlds' experiments (each exists only in its world's `tools`) ------------
    def tool_move(self, direction: str) -> str:
        return self.world.move(direction)

    def tool_look(self) -> str:
        return self.world.look()

    def tool_reset(self) -> str:
        return self.world.new_round()

    def tool_run(self, seq_a: str, seq_b: str) -> str:
        return self.world.run(seq_a, seq_b)

    def tool_list_organisms(self, first_id: int = 1, last_id: int | None = None) -> str:
        return self.world.list_organisms(first_id, last_id)

    def tool_cross(self, parent1: int, parent2: int) -> str:
        return self.world.cross(parent1, parent2)

    def tool_inspect(self, organism_id: int) -> str:
        return self.world.inspect(organism_id)

    # -- ToolEnv hooks -----------------------------------------------------------------------
    def step_reward(self, results: list[ToolResult]) -> float:
        if not (self.done and self.scores):
            return 0.0
        return sum(self.scores.values()) / len(self.scores)

    def final_info(self) -> dict[str, Any]:
        scores = self.scores or {name: False for name in self.world.rule_names}
        right = sum(scores.values())
        metrics = {"accuracy": right / len(scores), "rules_right": float(right), "n_rules": float(len(scores)),
                   "experiments": float(self.world.experiments), "committed": float(self.scores is not None)}
        metrics.update({f"rule/{name}": float(ok) for name, ok in scores.items()})
        success = self.scores is not None and right == len(scores)
        return {"success": success, "correct": success, "metrics": metrics}

    def oracle_call(self) -> ToolCall:
        """The experimenter's next call; it is fed the latest observation only (never the hidden rules)."""
        if self._oracle_memo is None or self._oracle_memo[0] != self.steps:
            if self._oracle is None:
                self._oracle = _world_module(self.world_name).Experimenter()
            self._oracle_memo = (self.steps, self._oracle.next_call(self._last_obs))
        return self._oracle_memo[1]

    def wrong_action(self, rng: np.random.Generator) -> str:
        """A well-formed commit with every rule wrong (refused as too early at the start of an episode)."""
        return "<tool_call>" + json.dumps({"name": "commit", "arguments": {"rules": self.world.wrong_commit()}}) + \
            "</tool_call>"


def _world_module(world: str) -> Any:
    """The module of a world."""
    return WORLD_MODULES[world]
