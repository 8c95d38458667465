"""Exact match and token F1 of a short answer, with SQuAD's normalisation.

`normalize_answer` is the official SQuAD v1.1 evaluation script's
(Rajpurkar et al., 2016, `evaluate-v1.1.py`): lower-case, drop punctuation,
drop the articles a/an/the, collapse whitespace, in that order.
`f1_score` is that script's token F1, with SQuAD v2.0's rule for empty
answers: when either side normalises to no tokens, F1 is 1 if both do, else 0.
ASearcher trains on this F1 (reference/methods-2.md §15, `reward_type: F1`).
"""

from __future__ import annotations

import re
import string
from collections import Counter

PUNCTUATION = frozenset(string.punctuation)
ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    return " ".join(ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, truth: str) -> float:
    """1.0 if the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1_score(prediction: str, truth: str) -> float:
    """Token F1 of the normalised answers: 2PR / (P + R) over the multiset of shared tokens."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)
