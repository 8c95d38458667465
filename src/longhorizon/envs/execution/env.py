"""`longhorizon/Execution-v0`: long-horizon execution of a trivial plan.

After "The Illusion of Diminishing Returns: Measuring Long Horizon Execution in
LLMs" (Sinha et al., ICLR 2026, arXiv 2509.09677). The agent is given a
dictionary of 5-letter words -> integers once; each turn it is shown K keys
(the turn complexity) and must reply with the running sum of all values seen
so far inside `<answer></answer>`. There are H turns (the horizon). Knowledge
and planning are given; only execution over many turns is tested.

Construction, as in the paper's code (`dict_sum_util.py`): N distinct words,
values uniform in [-value_range, value_range], keys drawn with replacement.

Departures from the paper:
- words come from a fixed list of common English words (no download), and the
  dictionary is drawn from the episode seed rather than a fixed seed 42;
- the paper always runs every turn; `stop_on_error=True` ends the episode at
  the first wrong total instead (cheaper when only success matters).

Reward: 1 per turn whose answer equals the true running total, so an
episode's reward is 0 to H. An answer that does not parse counts as wrong, and
the next observation says why. `info` carries `correct` (equals the true total)
and `step_correct` (correct update of the agent's *own* previous total: the
paper's step accuracy).

Step accuracy alone misleads: an agent that ignores the keys is still credited
whenever the keys happen to sum to its update (repeating its previous total is
right whenever the values sum to 0). So `info` also carries, for each turn t
(an addition of ours, not in the paper):

- `step_chance` c_t: the probability that K keys drawn afresh (uniformly with
  replacement from this episode's dictionary, as the env draws them) sum to
  the agent's actual update d_t = answer_t - own_total_{t-1}; that is, the
  step accuracy its answer would have had without reading the keys. 0 for an
  answer that does not parse.
- `step_chance_corrected` k_t = (step_correct_t - c_t) / (1 - c_t): 1 for a
  correct update, -c_t / (1 - c_t) for a wrong one. Its expectation is 0 for
  every policy whose answer does not depend on this turn's keys (a constant
  answer, repeating the last total, guessing the commonest value) and 1 for
  the oracle; like Cohen's kappa with the agent's own answer as its marginal.
  None (not judged) when c_t = 1: every draw gives the same sum (dict_size 1).
  Both are None when K * 2 * value_range + 1 > 2^22 (the law of the turn's
  sum, computed once per episode by FFT, would be too large).

The eval averages k_t over episodes by turn index: the chance-corrected
per-step accuracy.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from longhorizon.envs.core.base import TextEnv, clip_text
from longhorizon.envs.core.knobs import Flag, Int, Knobs, set_knobs
from longhorizon.envs.execution.words import WORDS

ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
INT_RE = re.compile(r"[+-]?\d{1,18}")


def parse_answer(text: str) -> tuple[int | None, str | None]:
    """Strictly parse one integer inside one `<answer></answer>` tag.

    Returns `(value, None)` or `(None, reason)`.
    """
    found = ANSWER_RE.findall(text)
    if not found:
        return None, "no <answer>...</answer> tag found"
    if len(found) > 1:
        return None, f"found {len(found)} <answer> tags; give exactly one"
    content = found[0].strip()
    if not INT_RE.fullmatch(content):
        return None, f"the answer {clip_text(content, 40)!r} is not an integer"
    return int(content), None


MAX_SUM_SPAN = 1 << 22  # sums a turn can take, K * 2 * value_range + 1, above which no chance is computed


def sum_distribution(values: list[int], k: int) -> tuple[int, np.ndarray] | None:
    """The law of the sum of k draws, uniform with replacement from `values`: `(lowest, pmf)` with
    pmf[i] = P(sum = lowest + i); None when the sums span more than MAX_SUM_SPAN integers."""
    low, high = min(values), max(values)
    span = k * (high - low) + 1
    if span > MAX_SUM_SPAN:
        return None
    one = np.bincount(np.asarray(values) - low, minlength=high - low + 1) / len(values)
    pmf = np.fft.irfft(np.fft.rfft(one, span) ** k, span)  # k-fold convolution; length `span`, so no wrap-around
    pmf[pmf < 1e-12] = 0.0  # FFT round-off
    return k * low, pmf


def sum_probability(law: tuple[int, np.ndarray] | None, total: int) -> float | None:
    """P(sum = total) under `law` (from sum_distribution); None if the law was not computed."""
    if law is None:
        return None
    lowest, pmf = law
    return float(pmf[total - lowest]) if 0 <= total - lowest < len(pmf) else 0.0


def chance_corrected(step_correct: bool, chance: float | None) -> float | None:
    """(step_correct - chance) / (1 - chance); None when chance is 1 (nothing to judge) or unknown."""
    if chance is None or chance >= 1.0 - 1e-12:
        return None
    return (float(step_correct) - chance) / (1.0 - chance)


class ExecutionKnobs(Knobs):
    """Execution's knobs."""

    horizon: Int = Field(8, ge=1, description="H, number of turns (the horizon knob)")
    turn_complexity: Int = Field(1, ge=1, description="K, keys given per turn")
    dict_size: Int = Field(100, ge=1, le=len(WORDS), description="N, words in the dictionary")
    value_range: Int = Field(99, ge=1, description="values are uniform integers in [-value_range, value_range]")
    stop_on_error: Flag = Field(False, description="end the episode at the first wrong total (else run all H turns)")


class ExecutionEnv(TextEnv):
    """Keep a running sum of dictionary values over H turns of K keys each."""

    REWARD: ClassVar[str] = "1 per turn whose total is right: 0 to H per episode"

    response_prefix = "<answer>"
    stop = ("</answer>",)

    Knobs = ExecutionKnobs
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "short": {"horizon": 2, "dict_size": 10},
        "default": {},
        "long": {"horizon": 64, "turn_complexity": 4},
    }

    def __init__(self, render_mode: str | None = None, **knobs: Any):
        super().__init__(render_mode)
        self.knobs = set_knobs(self, ExecutionKnobs, knobs)

    # -- episode generation ------------------------------------------------
    def _generate(self) -> None:
        rng = self.np_random
        words = [str(w) for w in rng.choice(WORDS, size=self.dict_size, replace=False)]
        values = rng.integers(-self.value_range, self.value_range + 1, size=self.dict_size)
        self.dictionary = dict(zip(words, (int(v) for v in values)))
        idx = rng.integers(0, self.dict_size, size=(self.horizon, self.turn_complexity))
        self.keys = [[words[i] for i in row] for row in idx]
        sums = np.cumsum([sum(self.dictionary[k] for k in row) for row in self.keys])
        self.totals = [int(s) for s in sums]
        self.turn_sum_law = sum_distribution(list(self.dictionary.values()), self.turn_complexity)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._generate()
        self.turn = 0  # turns answered so far
        self.own_total = 0  # the agent's last parsed total (for step accuracy)
        self.all_correct = True
        self._n_correct = 0
        self.done = False
        self._last_obs = self._intro() + "\n\n" + self._keys_prompt()
        return self._last_obs, {"turn": 0, "horizon": self.horizon}

    def dictionary_text(self) -> str:
        """The dictionary as the first observation shows it, one `word: value` per line (`play` finds it there)."""
        return "\n".join(f"{w}: {v}" for w, v in self.dictionary.items())

    def _intro(self) -> str:
        k = self.turn_complexity
        return (
            "You are given a dictionary that maps words to integers.\n"
            f"Dictionary:\n{self.dictionary_text()}\n\n"
            f"Each turn I give you {k} key{'s' if k > 1 else ''}. Look up the value of each key and add it "
            "to your running total, which starts at 0. Reply with the updated running total inside "
            "<answer></answer> tags, for example <answer>12</answer> if your total is 12."
        )

    def _keys_prompt(self) -> str:
        return f"Turn {self.turn + 1} of {self.horizon}. Keys: {', '.join(self.keys[self.turn])}"

    # -- stepping ------------------------------------------------------------
    def step(self, action: str):
        if self.done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        value, error = parse_answer(str(action))
        expected = self.totals[self.turn]
        turn_sum = sum(self.dictionary[k] for k in self.keys[self.turn])
        info: dict[str, Any] = {"turn": self.turn + 1, "expected": expected, "parsed": value}
        info["correct"] = value == expected
        info["step_correct"] = value == self.own_total + turn_sum
        info["step_chance"] = 0.0 if value is None else sum_probability(self.turn_sum_law, value - self.own_total)
        info["step_chance_corrected"] = chance_corrected(info["step_correct"], info["step_chance"])
        if error:
            info["error"] = error
        self.own_total = value if value is not None else expected
        self.all_correct = self.all_correct and info["correct"]
        self._n_correct += int(info["correct"])
        self.turn += 1
        terminated = self.turn >= self.horizon or (self.stop_on_error and not info["correct"])
        if terminated:
            self.done = True
            info["success"] = self.all_correct and self.turn >= self.horizon
            info["metrics"] = {"turns_correct": float(self._n_correct)}
        self._last_obs = self._next_observation(error, terminated)
        return self._last_obs, float(info["correct"]), terminated, False, info

    def _next_observation(self, error: str | None, terminated: bool) -> str:
        prefix = f"Your answer could not be read: {error}.\n" if error else ""
        return prefix + ("The task is over." if terminated else self._keys_prompt())

    # -- oracle ----------------------------------------------------------------
    def _own_update(self) -> int:
        return self.own_total + sum(self.dictionary[k] for k in self.keys[self.turn])

    def oracle_action(self) -> str:
        """The correct update of the agent's own previous total (the true total if it made no error)."""
        return f"<answer>{self._own_update()}</answer>"

    def wrong_action(self, rng: np.random.Generator) -> str:
        offset = int(rng.integers(1, 10)) * (1 if rng.random() < 0.5 else -1)
        return f"<answer>{self._own_update() + offset}</answer>"
