"""The LongProc family: long procedural generation in one turn.

After "LongProc: Benchmarking Long-Context Language Models on Long Procedural
Generation" (Ye et al., Princeton, arXiv 2501.05414; code
github.com/princeton-pli/LongProc). Each task gives a detailed procedure and
asks for one long, structured output that follows it; the output length is the
difficulty knob. Four of the paper's six tasks are regenerated procedurally
here, one module each:

| env id | module | metric (success) |
|---|---|---|
| `longhorizon/HtmlToTsv-v0` | `longproc_html` | row-level precision/recall/F1 (F1 == 1) |
| `longhorizon/PathTraversal-v0` | `longproc_path` | exact match + correct-prefix fraction (exact) |
| `longhorizon/TomTracking-v0` | `longproc_tom` | strict accuracy + trace-prefix fraction (strict) |
| `longhorizon/Countdown-v0` | `longproc_countdown` | valid solution (valid) |

The paper's `pseudo_to_code` (needs a C++ toolchain and SPoC tests) and
`travel_planning` (needs its flight database) are not regenerated.

Episodes are single-turn: `reset` gives the task prompt, the agent's one
action is its full output, and the episode terminates. The reward is the
task's main metric (F1, or 0/1 accuracy); all metrics go in `info["metrics"]`.

Output length (`level`). The paper buckets instances by the token length of
their reference output: 0.5K, 2K and 8K tokens. Here the level sets a budget
B = 500, 2000 or 8000 tokens (the paper's maximum output lengths), and every instance is sized so that the oracle's
reference output has between about B/2 and B estimated tokens, where
tokens = characters / 4 (`estimate_tokens`). Constructive tasks (HTML rows,
route hops, story steps) draw a target uniformly in [B/2, B] and add units
while the reference stays within it (so they may end up to one unit short
of B/2); Countdown redraws puzzles until its search
trace falls in [B/2, B], as the paper selects instances by trace length.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from longhorizon.envs.core.base import TextEnv
from longhorizon.envs.core.knobs import Knobs, set_knobs

LEVEL_TOKENS: dict[str, int] = {"0.5k": 500, "2k": 2000, "8k": 8000}
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> float:
    """Rough token count used to size instances: characters / 4."""
    return len(text) / CHARS_PER_TOKEN


def token_budget(level: str) -> tuple[int, int]:
    """The (low, high) token range of the oracle's output at a level: (B/2, B)."""
    budget = LEVEL_TOKENS[level]
    return budget // 2, budget


def last_tagged_block(text: str, tag: str) -> str | None:
    """Content of the last complete `<tag>...</tag>` block, or None."""
    end = text.rfind(f"</{tag}>")
    if end == -1:
        return None
    start = text.rfind(f"<{tag}>", 0, end)
    return None if start == -1 else text[start + len(tag) + 2 : end]


def prefix_fraction(predicted: list[str], reference: list[str]) -> float:
    """Fraction of `reference` lines matched, in order, before the first mismatch."""
    matched = 0
    for pred, ref in zip(predicted, reference):
        if pred != ref:
            break
        matched += 1
    return matched / len(reference) if reference else 0.0


class LongProcKnobs(Knobs):
    """The knob every LongProc env has; envs with more extend this model."""

    level: Literal[tuple(LEVEL_TOKENS)] = Field("0.5k", description="output budget: '0.5k', '2k' or '8k' tokens; "
                                                "the oracle's output has B/2..B tokens (chars/4)")


class LongProcEnv(TextEnv):
    """Shared single-turn loop: generate an instance, score the one output, terminate.

    Subclasses implement `_generate()` (sets the instance and `self.reference`,
    the oracle's output), `_prompt()`, `_score(text) -> (metrics, error)` and
    name their success metric in `SUCCESS_METRIC` and reward metric in
    `REWARD_METRIC`.
    """

    HORIZON_KNOB: ClassVar[str | None] = None  # the level is a string: 0.5k, 2k, 8k
    Knobs: ClassVar[type[LongProcKnobs]] = LongProcKnobs
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {name: {"level": name} for name in LEVEL_TOKENS}
    SUCCESS_METRIC: ClassVar[str] = "accuracy"
    REWARD_METRIC: ClassVar[str] = "accuracy"

    def __init__(self, render_mode: str | None = None, **knobs: Any):
        super().__init__(render_mode)
        self.knobs = set_knobs(self, self.Knobs, knobs)
        self.reference = ""
        self.done = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._generate()
        self.done = False
        self._last_obs = self._prompt()
        info = {"level": self.level, "reference_tokens": estimate_tokens(self.reference)}
        return self._last_obs, info

    def step(self, action: str):
        if self.done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        self.done = True
        metrics, error = self._score(str(action))
        success = metrics[self.SUCCESS_METRIC] == 1.0
        info: dict[str, Any] = {"correct": success, "success": success, "metrics": metrics}
        prefix = ""
        if error:
            info["error"] = error
            prefix = f"Your output was not accepted: {error}\n"
        self._last_obs = prefix + "The task is over."
        return self._last_obs, float(metrics[self.REWARD_METRIC]), True, False, info

    def oracle_action(self) -> str:
        return self.reference

    # -- subclass hooks ---------------------------------------------------------
    def _generate(self) -> None:
        raise NotImplementedError

    def _prompt(self) -> str:
        raise NotImplementedError

    def _score(self, text: str) -> tuple[dict[str, float], str | None]:
        raise NotImplementedError

    def _target_tokens(self) -> float:
        """A size target drawn uniformly from the level's (B/2, B) token range."""
        low, high = token_budget(self.level)
        return float(self.np_random.uniform(low, high))


def pick(rng: np.random.Generator, items: tuple[str, ...] | list[str]) -> str:
    """One item of a sequence, drawn with `rng`."""
    return str(items[int(rng.integers(len(items)))])
