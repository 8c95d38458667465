"""AgentWrite's plan: one line per paragraph, `Paragraph k - Main Point: <point> - Word Count: <N> words`.

The format is LongWriter's (`agentwrite/prompts/plan.txt`, github.com/THUDM/LongWriter). Reading it:

- lines that do not start with "Paragraph" (a preamble, blank lines) are ignored;
- a line that starts with "Paragraph" but does not match the format makes the whole plan invalid;
- the plan is valid when its lines are numbered 1..P in order, each with a non-empty main point and a word
  count from 1 to `MAX_STEP_WORDS`. Dashes may be -, – or —; "words" after the count is optional.

`parse_plan` never raises: it returns the steps, or None and one line saying what is wrong. The paper asks
for 200 to 1000 words a paragraph; that range is not enforced (our lengths go lower, for small models).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from longhorizon.envs.core.base import clip_text

MAX_STEP_WORDS = 100_000
MAX_LINE = 2000  # characters; a longer line is not a plan line
LINE_RE = re.compile(r"paragraph\s+(\d{1,4})\s*[-–—:]\s*main\s+point\s*:\s*(.*?)\s*[-–—]+\s*word\s+count\s*:\s*"
                     r"(\d{1,7})\s*(?:words?)?\s*\.?\s*", re.IGNORECASE)
PLAN_LINE_RE = re.compile(r"paragraph\s+\d{1,4}\s*[-–—:]\s*main\s+point\s*:", re.IGNORECASE)  # a plan line's start
FORMAT = "Paragraph <k> - Main Point: <what paragraph k says> - Word Count: <N> words"


@dataclass(frozen=True)
class PlanStep:
    """One plan line: paragraph `index` (1-based), its main point and its word count."""

    index: int
    point: str
    words: int

    def line(self) -> str:
        return f"Paragraph {self.index} - Main Point: {self.point} - Word Count: {self.words} words"


def format_plan(steps: list[PlanStep]) -> str:
    """The plan as text, one line per step (what `parse_plan` reads back)."""
    return "\n".join(step.line() for step in steps)


def parse_line(line: str) -> PlanStep | str:
    """One plan line as a step, or the reason it is not one."""
    match = LINE_RE.fullmatch(line.strip()) if len(line) <= MAX_LINE else None
    if match is None:
        return f"the line {clip_text(line.strip(), 80)!r} does not follow the format {FORMAT!r}"
    index, point, words = int(match[1]), match[2].strip(), int(match[3])
    if not point:
        return f"paragraph {index} has no main point"
    if not 1 <= words <= MAX_STEP_WORDS:
        return f"paragraph {index} asks for {words} words; give 1 to {MAX_STEP_WORDS}"
    return PlanStep(index, point, words)


def parse_plan(text: str, n_paragraphs: int) -> tuple[list[PlanStep] | None, str | None]:
    """The plan's steps and None, or None and why the plan cannot be used. Never raises."""
    lines = [line for line in str(text).split("\n") if line.strip().lower().startswith("paragraph")]
    steps = []
    for line in lines:
        step = parse_line(line)
        if isinstance(step, str):
            return None, step
        steps.append(step)
    if [s.index for s in steps] != list(range(1, n_paragraphs + 1)):
        found = ", ".join(str(s.index) for s in steps[:12]) or "none"
        return None, f"the plan must number its paragraphs 1 to {n_paragraphs} in order (found: {found})"
    return steps, None


def even_plan(words: int, n_paragraphs: int, points: list[str] | None = None) -> list[PlanStep]:
    """The required length split as evenly as possible (the first paragraphs take the remainder)."""
    share, extra = divmod(words, n_paragraphs)
    points = points or [f"part {k} of the text" for k in range(1, n_paragraphs + 1)]
    return [PlanStep(k, points[k - 1], share + (k <= extra)) for k in range(1, n_paragraphs + 1)]
