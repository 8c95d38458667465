"""The checkable constraints of a writing request: each a small rule verifier.

Every constraint says what it asks (`describe()`, the line the request shows) and checks a finished text
(`verify(text) -> Verdict`, a score in {0, 1} and a one-line reason). Rules never raise on any text, and an
empty text (no word) meets none of them: without that rule, "must not contain X" and "at most N words per
paragraph" would pay an empty answer.

| kind | asks | met when |
|---|---|---|
| `include` | the word or phrase `value` appears | a case-insensitive whole-word match |
| `exclude` | the word or phrase `value` never appears | no case-insensitive whole-word match |
| `heading` | a section heading `value` | a line that, read as a title (no leading #s, * or _, trailing colon), equals it |
| `paragraphs` | exactly `n` paragraphs | `len(text.paragraphs(t)) == n` (headings are not paragraphs) |
| `paragraph_words` | at most `n` words in every paragraph | every paragraph has `count_words <= n` |
| `closing` | end with the sentence `value` | the normalised text ends with the normalised sentence |

A constraint is a frozen dataclass; `to_dict()` / `from_dict()` carry it through JSON (a trajectory's `info`),
so a reward source can re-verify a finished episode (`feedback/checklist.py`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any, ClassVar

from longhorizon.envs.longwrite.text import count_words, has_words, heading_title, normalise, paragraphs

MAX_SHOWN = 60  # characters of a text quoted in a reason


@dataclass(frozen=True)
class Verdict:
    """One constraint checked: `score` 1.0 (met) or 0.0 (not), and why."""

    score: float
    reason: str


EMPTY = Verdict(0.0, "the text is empty")


@dataclass(frozen=True)
class Constraint:
    """Base: `kind` names the rule; subclasses hold `value` (a phrase) or `n` (a number)."""

    kind: ClassVar[str] = ""

    def describe(self) -> str:
        raise NotImplementedError

    def check(self, text: str) -> Verdict:
        raise NotImplementedError

    def verify(self, text: str) -> Verdict:
        """The verdict on `text`; an empty text meets nothing."""
        return self.check(text) if has_words(text) else EMPTY

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


def _phrase_re(phrase: str) -> re.Pattern[str]:
    """A case-insensitive whole-word pattern for a phrase (its spaces match any whitespace)."""
    words = [re.escape(w) for w in phrase.split()]
    return re.compile(r"\b" + r"\s+".join(words) + r"\b", re.IGNORECASE)


@dataclass(frozen=True)
class Include(Constraint):
    value: str
    kind: ClassVar[str] = "include"

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        return _phrase_re(self.value)

    def describe(self) -> str:
        return f'Use the word "{self.value}" at least once.'

    def check(self, text: str) -> Verdict:
        found = self.pattern.search(text) is not None
        return Verdict(float(found), f'"{self.value}" {"appears" if found else "never appears"}')


@dataclass(frozen=True)
class Exclude(Constraint):
    value: str
    kind: ClassVar[str] = "exclude"

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        return _phrase_re(self.value)

    def describe(self) -> str:
        return f'Never use the word "{self.value}".'

    def check(self, text: str) -> Verdict:
        hits = len(self.pattern.findall(text))
        return Verdict(float(hits == 0), f'"{self.value}" appears {hits} time(s)')


@dataclass(frozen=True)
class Heading(Constraint):
    value: str
    kind: ClassVar[str] = "heading"

    def describe(self) -> str:
        return f'Include a section with the heading "{self.value}" (a line "## {self.value}").'

    def check(self, text: str) -> Verdict:
        title = normalise(self.value)
        found = any(heading_title(line) == title for line in text.split("\n") if len(line) <= 4 * len(title) + 20)
        return Verdict(float(found), f'heading "{self.value}" {"found" if found else "not found"}')


@dataclass(frozen=True)
class Paragraphs(Constraint):
    n: int
    kind: ClassVar[str] = "paragraphs"

    def describe(self) -> str:
        return (f"Write exactly {self.n} paragraph{'s' if self.n != 1 else ''}, separated by blank lines "
                "(heading lines do not count as paragraphs).")

    def check(self, text: str) -> Verdict:
        got = len(paragraphs(text))
        return Verdict(float(got == self.n), f"{got} paragraph(s), {self.n} required")


@dataclass(frozen=True)
class ParagraphWords(Constraint):
    n: int
    kind: ClassVar[str] = "paragraph_words"

    def describe(self) -> str:
        return f"No paragraph may be longer than {self.n} words."

    def check(self, text: str) -> Verdict:
        longest = max((count_words(p) for p in paragraphs(text)), default=0)
        return Verdict(float(longest <= self.n), f"the longest paragraph has {longest} words, the limit is {self.n}")


@dataclass(frozen=True)
class Closing(Constraint):
    value: str
    kind: ClassVar[str] = "closing"

    def describe(self) -> str:
        return f'End the text with this exact sentence: "{self.value}"'

    def check(self, text: str) -> Verdict:
        tail = normalise(text.rstrip()[-(4 * len(self.value) + 200):])
        met = tail.endswith(normalise(self.value))
        return Verdict(float(met), "ends with the closing sentence" if met
                       else f"ends with {normalise(text)[-MAX_SHOWN:]!r} instead")


CONSTRAINTS: dict[str, type[Constraint]] = {c.kind: c for c in (Include, Exclude, Heading, Paragraphs, ParagraphWords,
                                                                   Closing)}


def from_dict(data: dict[str, Any]) -> Constraint:
    """The constraint `to_dict()` wrote (KeyError / TypeError on anything else)."""
    fields = {k: v for k, v in data.items() if k != "kind"}
    return CONSTRAINTS[data["kind"]](**fields)
