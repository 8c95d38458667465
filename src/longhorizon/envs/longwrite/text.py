"""Measuring a text: LongBench-Write's word count and length score S_l, paragraphs and headings.

`count_words` and `length_score` are LongBench-Write's (Bai et al., LongWriter, arXiv 2408.07055; code
github.com/THUDM/LongWriter, `evaluation/pred.py: count_words` and `evaluation/eval_length.py: score`),
read in the code:

    count_words(text) = #CJK characters [\\u4e00-\\u9fff] + #English words \\b[a-zA-Z]+\\b
    score(x, y) = 100 * max(0, 1 - (y/x - 1)/3)   if y > x        (x: required, y: output length)
                  100 * max(0, 1 - (x/y - 1)/2)   otherwise

Departure: the official `score` divides by zero for an empty output (y = 0); here S_l(x, 0) = 0, the limit
of the formula as y -> 0. A required length x <= 0 is a caller's bug (ValueError): the paper never has one.

Paragraphs (ours, for the paragraph constraints): blocks separated by blank lines; inside a block, lines
that start with `#` are headings and are not part of the paragraph; a block with no word left is not a
paragraph. Headings are the `#` lines, or any line that is a required title on its own (see `heading_lines`).
"""

from __future__ import annotations

import re
from functools import lru_cache

CJK_RE = re.compile(r"[\u4e00-\u9fff]")
WORD_RE = re.compile(r"\b[a-zA-Z]+\b")
BLANK_LINE_RE = re.compile(r"\n[ \t\r\f\v]*\n")
SPACE_RE = re.compile(r"\s+")


def count_words(text: str) -> int:
    """LongBench-Write's length unit: Chinese characters plus English words (`pred.py: count_words`)."""
    return len(CJK_RE.findall(text)) + len(WORD_RE.findall(text))


def has_words(text: str) -> bool:
    """Whether `count_words(text) > 0`, without counting."""
    return WORD_RE.search(text) is not None or CJK_RE.search(text) is not None


def length_score(required: int, output: int) -> float:
    """S_l in 0..100: LongBench-Write's length score (`eval_length.py: score(x, y)`, x = required, y = output)."""
    if required <= 0:
        raise ValueError(f"the required length must be positive, got {required}")
    if output <= 0:
        return 0.0  # the code divides by zero here; 0 is the formula's limit as y -> 0
    if output > required:
        return 100 * max(0.0, 1.0 - (output / required - 1) / 3)  # over-length: 0 at y = 4x
    return 100 * max(0.0, 1.0 - (required / output - 1) / 2)  # under-length: 0 at y = x/3


def normalise(text: str) -> str:
    """Lower case, runs of whitespace as one space, stripped: how phrases are compared."""
    return SPACE_RE.sub(" ", text).strip().lower()


def is_heading(line: str) -> bool:
    """A Markdown heading line (`# ...`, `## ...`)."""
    return line.lstrip().startswith("#")


def heading_title(line: str) -> str:
    """A line read as a title: no leading #s, no surrounding * or _, no trailing colon, normalised."""
    return normalise(line.strip().lstrip("#").strip().strip("*_").strip().rstrip(":").strip("*_ "))


@lru_cache(maxsize=4)  # several constraints read the paragraphs of the same document
def paragraphs(text: str) -> tuple[str, ...]:
    """The paragraphs of a text: blank-line-separated blocks without their heading lines, if any word is left."""
    found = []
    for block in BLANK_LINE_RE.split(text):
        body = "\n".join(line for line in block.split("\n") if not is_heading(line)).strip()
        if has_words(body):
            found.append(body)
    return tuple(found)
