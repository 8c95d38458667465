"""`longhorizon/Compose-v0`: chained word problems, each feeding the next.

After R-HORIZON (Lu et al., "R-HORIZON: How Far Can Your Large Reasoning Model
Really Go in Breadth and Depth?", arXiv 2510.08189). n problems are chained so
that the answer to problem k-1 fills a key variable of problem k. With
a_{k-1} the answer to problem k-1 and v_k the original value of problem k's
key variable, problem k (k >= 2) is rewritten with the paper's text

    Using the result [answer{k-1}] from the previous calculation,
    [variable{k}] = [answer{k-1}] - c_k. <problem k with v_k replaced by [variable{k}]>

where c_k = a_{k-1} - v_k, so the expression gives back v_k; when c_k <= 0 the
paper writes "+ |c_k|" (its data has "+ 0" for c_k = 0). The paper's footer
("Note: In this problem set: - [variablek] represents ... ### Final Answers /
Problem k: \\boxed{[answerk]}") closes the prompt.

Problems come from templates with exact integer answers (shopping totals,
rates, ages, areas, remainders, arithmetic series, savings, packing, seats,
multiples), each with one key integer variable that changes the answer.
Numbers stay small (answers below about 3,000), and since c_k absorbs the
previous answer, chaining never makes them grow.

Modes (knob `mode`):
- `single` (the paper's setting): one turn with all n problems; the agent
  answers every problem in the "Problem k: \\boxed{...}" block. Reward 1.0 if
  every answer is right, else 0.0 (all-or-nothing, as in the paper).
- `multi`: one problem per turn (n turns); the agent replies with
  `\\boxed{...}` and the next problem is revealed after each answer, whatever
  it was. Reward 1.0 per correct problem; success iff all are correct.

Answers are compared with the true chain a_1..a_n (not with what the agent's
own earlier answers would imply). Answers are read as integers: surrounding
`$`, spaces and thousands separators ("1,440") are allowed, nothing else.
`info["metrics"]` on the last step: `problem_accuracy` (fraction of problems
right), `all_correct` (the paper's metric) and `n_correct`.

Departures from the paper:
- problems are generated from templates instead of MATH500/AIME/AMC, and the
  key variable is fixed by the template rather than chosen by an LLM;
- the multi-turn mode is this env's addition; the paper composes queries in
  one prompt;
- in single mode the answers are read after the last "### Final Answers"
  heading if there is one (else anywhere), the last "Problem k: \\boxed{}" for
  each k winning; the paper uses an answer extractor / judge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal

import numpy as np
from pydantic import Field

from longhorizon.envs.core.base import TextEnv, clip_text
from longhorizon.envs.core.knobs import Int, Knobs, set_knobs

MODES = ("single", "multi")
MAX_PROBLEMS = 32
NAMES = ("Maya", "Omar", "Lena", "Tariq", "Sofia", "Kenji", "Amara", "Lucas", "Priya", "Noah", "Elif", "Mateo")
NOTE = (
    "Note: In this problem set:\n"
    "- [variablek] represents the calculated variable needed to solve problem k.\n"
    "- [answerk] represents the answer to problem k."
)
FOOTER = (
    NOTE + "\n\nSolve all problems step by step and provide the answers for all problems in the following format:"
    "\n\n### Final Answers\n\n"
)
ANSWER_RE = re.compile(r"Problem\s*(\d{1,3})(?:\s|\*)*:(?:\s|\*)*\\boxed\{")  # allows **Problem 1:**
MAX_ANSWER_CHARS = 200
BRACE_RE = re.compile(r"[{}]")
INT_RE = re.compile(r"[+-]?\d{1,18}")
THOUSANDS_RE = re.compile(r"[+-]?\d{1,3}(,\d{3})+")


@dataclass(frozen=True)
class Problem:
    """A word problem whose `text` holds `{v}` where its key variable goes."""

    text: str
    value: int  # the key variable's original value v_k
    answer: int

    def render(self, variable: str | None = None) -> str:
        """The problem with the key variable as a number, or as a placeholder such as "[variable2]"."""
        return self.text.replace("{v}", variable if variable is not None else str(self.value))


def _ints(rng: np.random.Generator, *ranges: tuple[int, int]) -> list[int]:
    return [int(rng.integers(lo, hi + 1)) for lo, hi in ranges]


def _name(rng: np.random.Generator) -> str:
    return NAMES[int(rng.integers(len(NAMES)))]


# -- problem templates: each draws its numbers and returns (text with {v}, v, answer) --
def _shopping(rng: np.random.Generator) -> Problem:
    v, p, m, q = _ints(rng, (2, 30), (2, 15), (1, 20), (1, 5))
    who = _name(rng)
    text = (
        f"A stationery shop sells notebooks for ${p} each and pens for ${q} each. {who} buys {{v}} notebooks "
        f"and {m} pens. How many dollars does {who} spend in total?"
    )
    return Problem(text, v, v * p + m * q)


def _printing(rng: np.random.Generator) -> Problem:
    v, t = _ints(rng, (5, 60), (3, 40))
    return Problem(f"A printer prints {{v}} pages per minute. How many pages does it print in {t} minutes?", v, v * t)


def _trip(rng: np.random.Generator) -> Problem:
    v, h, s, g = _ints(rng, (8, 40), (1, 6), (8, 40), (1, 6))
    text = (
        f"A cyclist rides at {{v}} kilometres per hour for {h} hours and then at {s} kilometres per hour "
        f"for {g} hours. How many kilometres does the cyclist ride in total?"
    )
    return Problem(text, v, v * h + s * g)


def _ages(rng: np.random.Generator) -> Problem:
    d, y = _ints(rng, (1, 15), (1, 20))
    v = int(rng.integers(d + 1, d + 61))
    who = _name(rng)
    text = (
        f"{who} is {{v}} years old, and {who}'s younger brother is {d} years younger. "
        f"In {y} years, what will the sum of their two ages be?"
    )
    return Problem(text, v, 2 * v - d + 2 * y)


def _garden(rng: np.random.Generator) -> Problem:
    s = int(rng.integers(2, 10))
    v, w = _ints(rng, (10, 60), (s + 1, 40))
    text = (
        f"A rectangular garden is {{v}} metres long and {w} metres wide. A square patio with sides of {s} metres "
        "is built inside it. How many square metres of the garden are not covered by the patio?"
    )
    return Problem(text, v, v * w - s * s)


def _marbles(rng: np.random.Generator) -> Problem:
    v, m = _ints(rng, (20, 500), (3, 12))
    text = (
        f"{{v}} marbles are shared equally among {m} children, each child getting as many marbles as possible. "
        "How many marbles are left over?"
    )
    return Problem(text, v, v % m)


def _series(rng: np.random.Generator) -> Problem:
    v, d, n = _ints(rng, (1, 50), (1, 10), (3, 15))
    text = (
        f"The first term of an arithmetic sequence is {{v}} and the common difference is {d}. "
        f"What is the sum of the first {n} terms?"
    )
    return Problem(text, v, n * v + d * n * (n - 1) // 2)


def _savings(rng: np.random.Generator) -> Problem:
    v, w = _ints(rng, (5, 50), (4, 20))
    s = int(rng.integers(1, v * w))
    who = _name(rng)
    text = f"{who} saves ${{v}} every week. After {w} weeks, {who} spends ${s} on a bike. How many dollars are left?"
    return Problem(text, v, v * w - s)


def _bakery(rng: np.random.Generator) -> Problem:
    v, b, c = _ints(rng, (2, 40), (6, 24), (4, 12))
    text = (
        f"A bakery bakes {{v}} trays of {b} cookies each and packs all the cookies into boxes of {c}. "
        "How many boxes can be filled completely?"
    )
    return Problem(text, v, v * b // c)


def _theatre(rng: np.random.Generator) -> Problem:
    v, s = _ints(rng, (5, 40), (8, 30))
    e = int(rng.integers(0, v * s))
    text = f"A theatre has {{v}} rows of {s} seats. At tonight's show, {e} seats are empty. How many are occupied?"
    return Problem(text, v, v * s - e)


def _multiples(rng: np.random.Generator) -> Problem:
    v, m = _ints(rng, (20, 999), (2, 13))
    return Problem(f"How many multiples of {m} are there from 1 to {{v}}, inclusive?", v, v // m)


TEMPLATES: tuple[Callable[[np.random.Generator], Problem], ...] = (
    _shopping, _printing, _trip, _ages, _garden, _marbles, _series, _savings, _bakery, _theatre, _multiples,
)


# -- composition (R-HORIZON, arXiv 2510.08189, Sec. 3) -----------------------------------------------
def link_text(k: int, previous_answer: int, problem: Problem) -> str:
    """Problem k >= 2 rewritten to take its key variable from the previous answer (the paper's text)."""
    c = previous_answer - problem.value  # c_k = a_{k-1} - v_k
    op = "-" if c > 0 else "+"
    return (
        f"Using the result [answer{k - 1}] from the previous calculation, "
        f"[variable{k}] = [answer{k - 1}] {op} {abs(c)}. {problem.render(f'[variable{k}]')}"
    )


def problem_texts(problems: list[Problem]) -> list[str]:
    """The composed text of every problem: the first as is, the rest linked to their predecessor."""
    texts = [problems[0].render()]
    texts += [link_text(k, problems[k - 2].answer, problems[k - 1]) for k in range(2, len(problems) + 1)]
    return texts


def composed_prompt(problems: list[Problem]) -> str:
    """The single-turn prompt: all problems, then the paper's footer."""
    body = "\n\n".join(f"Problem {k}: {t}" for k, t in enumerate(problem_texts(problems), start=1))
    slots = "\n\n".join(f"Problem {k}: \\boxed{{[answer{k}]}}" for k in range(1, len(problems) + 1))
    return f"{body}\n\n{FOOTER}{slots}\n"


def format_answers(answers: list[int]) -> str:
    """Answers in the paper's "### Final Answers" block."""
    return "### Final Answers\n\n" + "\n\n".join(f"Problem {k}: \\boxed{{{a}}}" for k, a in enumerate(answers, start=1))


# -- parsing --------------------------------------------------------------------------------------
def braced(text: str, open_pos: int) -> str | None:
    """The content of the balanced {...} group whose "{" is at `open_pos`, or None if unclosed.

    Only the next MAX_ANSWER_CHARS characters are searched, so many unclosed groups stay cheap.
    """
    depth = 0
    for brace in BRACE_RE.finditer(text, open_pos, open_pos + MAX_ANSWER_CHARS):
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return text[open_pos + 1 : brace.start()]
    return None


def parse_int(content: str) -> int | None:
    """An integer answer: allows surrounding $ and spaces and "1,440"-style separators, nothing else."""
    s = content.strip().strip("$").strip().replace("{,}", ",").replace("\\,", ",")
    if THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    return int(s) if INT_RE.fullmatch(s) else None


def last_boxed(text: str) -> tuple[int | None, str | None]:
    """The integer in the last complete \\boxed{...}, or (None, reason)."""
    pos = text.rfind("\\boxed{")
    while pos != -1:
        content = braced(text, pos + len("\\boxed"))
        if content is not None:
            value = parse_int(content)
            if value is None:
                return None, f"\\boxed{{{clip_text(content, 40)}}} is not an integer"
            return value, None
        pos = text.rfind("\\boxed{", 0, pos)
    return None, "no \\boxed{...} answer found"


def parse_final_answers(text: str, n: int) -> tuple[list[int | None], str | None]:
    """Answers to problems 1..n from "Problem k: \\boxed{...}" lines, plus what was wrong, if anything."""
    heading = text.rfind("### Final Answers")
    region = text[heading:] if heading != -1 else text
    found: dict[int, str] = {}
    for match in ANSWER_RE.finditer(region):
        content = braced(region, match.end() - 1)
        if content is not None:
            found[int(match.group(1))] = content
    if not any(1 <= k <= n for k in found):
        return [None] * n, "no 'Problem k: \\boxed{...}' answers found"
    answers = [parse_int(found[k]) if k in found else None for k in range(1, n + 1)]
    missing = [str(k) for k in range(1, n + 1) if k not in found]
    unreadable = [str(k) for k in range(1, n + 1) if k in found and answers[k - 1] is None]
    issues = [f"no answer for problem(s) {', '.join(missing)}"] if missing else []
    issues += [f"the answer to problem(s) {', '.join(unreadable)} is not an integer"] if unreadable else []
    return answers, "; ".join(issues) or None


class ComposeKnobs(Knobs):
    """Compose's knobs."""

    n_problems: Int = Field(4, ge=1, le=MAX_PROBLEMS, description=f"n, problems in the chain (1..{MAX_PROBLEMS}); "
                            "in multi mode also the number of turns")
    mode: Literal[MODES] = Field("single", description="'single': all problems in one turn, answered in a Final "
                                 "Answers block (the paper); 'multi': one problem per turn, answered with \\boxed{}")


class ComposeEnv(TextEnv):
    """R-HORIZON composition: n chained word problems, each answer feeding the next (all-or-nothing, arXiv 2510.08189).

    Knobs `n_problems` (1..32) and `mode` (single / multi turn); metric: all answers right, plus per-problem accuracy.
    """

    REWARD: ClassVar[str] = "mode=single: 1 if every answer is right, else 0; mode=multi: 1 per right answer, 0 to n_problems"

    HORIZON_KNOB: ClassVar[str | None] = "n_problems"
    Knobs = ComposeKnobs
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "short": {"n_problems": 1},
        "default": {},
        "long": {"n_problems": MAX_PROBLEMS},
        "multi_short": {"mode": "multi", "n_problems": 2},
        "multi_long": {"mode": "multi", "n_problems": MAX_PROBLEMS},
    }

    def __init__(self, render_mode: str | None = None, **knobs: Any):
        super().__init__(render_mode)
        self.knobs = set_knobs(self, ComposeKnobs, knobs)
        self.done = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self.problems = [TEMPLATES[int(rng.integers(len(TEMPLATES)))](rng) for _ in range(self.n_problems)]
        self.answers = [p.answer for p in self.problems]
        self.texts = problem_texts(self.problems)
        self.turn, self.n_correct, self.done = 0, 0, False
        self._last_obs = composed_prompt(self.problems) if self.mode == "single" else self._multi_intro()
        return self._last_obs, {"n_problems": self.n_problems, "mode": self.mode}

    def _multi_intro(self) -> str:
        n = self.n_problems
        return (
            f"You will solve {n} problem{'s' if n > 1 else ''}, one per turn. {NOTE}\n\n"
            "Solve each problem step by step and end your reply with its answer as \\boxed{[answerk]}, "
            "for example \\boxed{42}.\n\n" + self._problem_prompt()
        )

    def _problem_prompt(self) -> str:
        return f"Problem {self.turn + 1}: {self.texts[self.turn]}"

    def step(self, action: str):
        if self.done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        return self._step_single(str(action)) if self.mode == "single" else self._step_multi(str(action))

    def _step_single(self, action: str):
        parsed, error = parse_final_answers(action, self.n_problems)
        per_problem = [p == a for p, a in zip(parsed, self.answers)]
        self.n_correct, self.done = sum(per_problem), True
        info: dict[str, Any] = {"expected": list(self.answers), "parsed": parsed, "per_problem_correct": per_problem}
        info.update(self._final_info())
        info["correct"] = info["success"]
        self._last_obs = self._observation(error, terminated=True)
        if error:
            info["error"] = error
        return self._last_obs, float(info["success"]), True, False, info

    def _step_multi(self, action: str):
        value, error = last_boxed(action)
        expected = self.answers[self.turn]
        info: dict[str, Any] = {"problem": self.turn + 1, "expected": expected, "parsed": value}
        info["correct"] = value == expected
        self.n_correct += int(info["correct"])
        self.turn += 1
        terminated = self.turn >= self.n_problems
        if terminated:
            self.done = True
            info.update(self._final_info())
        if error:
            info["error"] = error
        self._last_obs = self._observation(error, terminated)
        return self._last_obs, float(info["correct"]), terminated, False, info

    def _final_info(self) -> dict[str, Any]:
        all_correct = self.n_correct == self.n_problems
        metrics = {
            "problem_accuracy": self.n_correct / self.n_problems,
            "all_correct": float(all_correct),
            "n_correct": float(self.n_correct),
        }
        return {"success": all_correct, "metrics": metrics}

    def _observation(self, error: str | None, terminated: bool) -> str:
        prefix = f"Your answer could not be fully read: {error}.\n" if error else ""
        return prefix + ("The task is over." if terminated else self._problem_prompt())

    # -- oracle ------------------------------------------------------------------------------
    def oracle_action(self) -> str:
        if self.mode == "single":
            return format_answers(self.answers)
        return f"\\boxed{{{self.answers[self.turn]}}}"

    def wrong_action(self, rng: np.random.Generator) -> str:
        """A well-formed answer with one value off by 1..9."""
        offset = int(rng.integers(1, 10)) * (1 if rng.random() < 0.5 else -1)
        if self.mode == "multi":
            return f"\\boxed{{{self.answers[self.turn] + offset}}}"
        wrong = list(self.answers)
        k = int(rng.integers(len(wrong)))
        wrong[k] += offset
        return format_answers(wrong)
