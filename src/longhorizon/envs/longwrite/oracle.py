"""The oracle writer: a plan that splits the length evenly, and paragraphs of exactly the planned length that
meet every constraint.

Paragraph k of P is `## <heading k>` (if the request has a k-th heading) on its own line, then a body: the
include-words assigned to it (word i goes to paragraph i mod P; the last paragraph also takes any include-word
the text so far lacks), filler sentences, and, in the last paragraph, the closing sentence. Its word count
(LongBench-Write's, heading included) is exactly the target. The filler is grammatical-looking nonsense built
from word lists disjoint from every excluded word, drawn from its own seeded generator so that
`oracle_action()` is a pure function of the env's state.
"""

from __future__ import annotations

import numpy as np

from longhorizon.envs.longwrite.constraints import Closing, Constraint, Heading, Include
from longhorizon.envs.longwrite.text import count_words

DETERMINERS = ("the", "every", "one", "this", "that", "each", "our", "their")
ADJECTIVES = ("small", "large", "early", "late", "new", "old", "simple", "careful", "quiet", "steady", "clear",
              "plain", "open", "common", "local", "useful", "practical", "honest", "patient", "bright", "narrow",
              "gentle", "modest", "lively")
NOUNS = ("people", "place", "idea", "morning", "season", "neighbor", "journey", "question", "answer", "habit",
         "story", "street", "teacher", "visitor", "tool", "method", "lesson", "record", "village", "machine",
         "friend", "reason", "picture", "evening")
VERBS = ("shapes", "keeps", "finds", "gives", "shows", "builds", "teaches", "carries", "follows", "changes",
         "starts", "notices", "remembers", "shares", "watches", "measures", "improves", "explains", "describes")
PREPOSITIONS = ("in", "near", "after", "before", "with", "beside", "across", "under", "beyond")
SENTENCE = (DETERMINERS, ADJECTIVES, NOUNS, VERBS, DETERMINERS, NOUNS, PREPOSITIONS, DETERMINERS, ADJECTIVES, NOUNS)


def filler_words(rng: np.random.Generator, n: int) -> list[str]:
    """n words of filler sentences (10 words each, the last one cut short), capitalised and full-stopped."""
    rows = -(-n // len(SENTENCE))
    draws = [rng.integers(len(slot), size=rows) for slot in SENTENCE]
    words = [SENTENCE[j][draws[j][i]] for i in range(rows) for j in range(len(SENTENCE))][:n]
    for start in range(0, n, len(SENTENCE)):
        words[start] = words[start].capitalize()
        end = min(start + len(SENTENCE), n) - 1
        words[end] += "."
    return words


def paragraph(rng: np.random.Generator, target: int, heading: str | None, keywords: list[str],
              closing: str | None) -> str:
    """A paragraph of exactly max(target, its fixed parts) words: heading line, keywords, filler, closing."""
    fixed = count_words(heading or "") + len(keywords) + count_words(closing or "")
    body = filler_words(rng, max(0, target - fixed))
    if keywords:
        body.append(" ".join(keywords).capitalize() + ".")  # a one-line "sentence" of the keywords
    if closing:
        body.append(closing)
    return (f"## {heading}\n" if heading else "") + " ".join(body)


def assigned(constraints: tuple[Constraint, ...], kind: type[Constraint], k: int, n_paragraphs: int) -> list[str]:
    """The values of this kind's constraints that go in paragraph k (0-based): the i-th goes to i mod P."""
    values = [c.value for c in constraints if isinstance(c, kind)]
    return [v for i, v in enumerate(values) if i % n_paragraphs == k]


def oracle_paragraph(rng: np.random.Generator, constraints: tuple[Constraint, ...], k: int, n_paragraphs: int,
                     target: int, text_so_far: str) -> str:
    """Paragraph k (0-based) of P with `target` words; the last one ends with the closing sentence and adds any
    include-word still missing."""
    headings = [c.value for c in constraints if isinstance(c, Heading)]
    keywords = assigned(constraints, Include, k, n_paragraphs)
    closing = None
    if k == n_paragraphs - 1:
        missing = [c.value for c in constraints if isinstance(c, Include) and c.check(text_so_far).score < 1]
        keywords = list(dict.fromkeys(keywords + missing))
        closing = next((c.value for c in constraints if isinstance(c, Closing)), None)
    heading = headings[k] if k < len(headings) else None
    return paragraph(rng, target, heading, keywords, closing)
