"""Writing requests, generated from a seed: genre, topic, audience, tone, a required length and constraints.

The required length is l = 10 * round(P * paragraph_words * u / 10), u ~ U(0.8, 1.2), at least 10 words per
paragraph. The constraints are `paragraphs(P)` (always: P is the horizon) plus `n_constraints` drawn without
replacement from a pool: 4 words to include, 3 to exclude, min(P, 3) section headings, one per-paragraph word
limit and one closing sentence. The word limit is 1.5 x the even share of l, rounded up to 10, so an even plan
meets it. Every word list is disjoint from the excluded words (tests check it), so the oracle's text can meet
every constraint at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from longhorizon.envs.longwrite.constraints import (Closing, Constraint, Exclude, Heading, Include, ParagraphWords,
                                                    Paragraphs)

GENRES = ("essay", "report", "short story", "blog post", "speech", "travel guide", "product review", "newsletter",
          "lecture", "opinion piece", "memoir chapter", "grant proposal")
TOPICS = ("urban beekeeping", "the history of the bicycle", "night trains", "learning a language as an adult",
          "community gardens", "the science of sleep", "lighthouse keepers", "ocean tides", "public libraries",
          "mountain rescue teams", "street food markets", "the invention of paper", "coral reefs",
          "volunteer fire brigades", "chess clubs", "desert cities", "vinyl records", "rainwater harvesting",
          "migratory birds", "open source software", "small island schools", "bread baking", "old maps",
          "wind farms", "river ferries", "the first telescopes", "weather forecasting", "school orchestras",
          "mushroom foraging", "glass blowing")
AUDIENCES = ("high school students", "retired engineers", "first-time visitors", "a city council", "parents",
             "software developers", "museum members", "a general audience", "amateur historians", "new employees")
TONES = ("friendly", "formal", "humorous", "reflective", "persuasive", "plain")
INCLUDE_WORDS = ("lantern", "compass", "harbor", "ledger", "orchard", "bridge", "whistle", "notebook", "meadow",
                 "anchor", "ribbon", "kettle", "ladder", "mirror", "ticket", "pocket", "candle", "feather", "pebble",
                 "signal", "blanket", "marble", "violin", "saddle", "tunnel", "basket", "beacon")
EXCLUDE_WORDS = ("delve", "tapestry", "crucial", "moreover", "furthermore", "landscape", "vibrant", "embark", "realm",
                 "leverage", "pivotal", "seamless", "robust", "testament", "myriad", "navigate", "bustling",
                 "intricate", "showcase", "unlock")
HEADINGS = ("Background", "Why It Matters", "A Closer Look", "Common Misconceptions", "Practical Advice",
            "Lessons Learned", "Looking Ahead", "The Early Days", "Key Challenges", "What Comes Next", "First Steps",
            "A Personal Note")
CLOSINGS = ("That is where the real work begins.", "Every long road starts with a single step.",
            "The rest of the story is still being written.", "And that is why it still matters today.",
            "We will meet this question again soon.", "Some lessons are only learned by doing.",
            "The door is open for anyone who asks.", "Nothing here is finished, and that is good.")
POOL_SIZES = {"include": 4, "exclude": 3, "heading": 3, "paragraph_words": 1, "closing": 1}
MAX_CONSTRAINTS = sum(POOL_SIZES.values()) - POOL_SIZES["heading"] + 1  # the pool at P = 1 (one heading fits)


@dataclass(frozen=True)
class Request:
    """One writing task: what to write, for whom, how long (`words`, in LongBench-Write's unit) and its rules."""

    genre: str
    topic: str
    audience: str
    tone: str
    words: int
    paragraphs: int
    constraints: tuple[Constraint, ...]

    def describe(self) -> str:
        """The task and its numbered requirements, as the first observation states them."""
        rules = "\n".join(f"{i}. {c.describe()}" for i, c in enumerate(self.constraints, 1))
        return (f"Write a {self.genre} about {self.topic} for {self.audience}, in a {self.tone} tone. "
                f"It must be {self.words} words long in total.\n\nRequirements:\n{rules}")


def pick(rng: np.random.Generator, items: tuple[str, ...], k: int = 1) -> list[str]:
    """k distinct items of a tuple, drawn with rng."""
    return [items[i] for i in rng.choice(len(items), size=k, replace=False)]


def required_words(rng: np.random.Generator, n_paragraphs: int, paragraph_words: int) -> int:
    """l = 10 * round(P * paragraph_words * U(0.8, 1.2) / 10), at least 10 per paragraph."""
    raw = n_paragraphs * paragraph_words * rng.uniform(0.8, 1.2)
    return max(10 * n_paragraphs, 10 * round(raw / 10))


def constraint_pool(rng: np.random.Generator, n_paragraphs: int, words: int) -> list[Constraint]:
    """Every constraint a request may draw from (see the module docstring)."""
    limit = 10 * math.ceil(1.5 * math.ceil(words / n_paragraphs) / 10)
    return ([Include(w) for w in pick(rng, INCLUDE_WORDS, POOL_SIZES["include"])]
            + [Exclude(w) for w in pick(rng, EXCLUDE_WORDS, POOL_SIZES["exclude"])]
            + [Heading(h) for h in pick(rng, HEADINGS, min(n_paragraphs, POOL_SIZES["heading"]))]
            + [ParagraphWords(limit), Closing(pick(rng, CLOSINGS)[0])])


def generate_request(rng: np.random.Generator, n_paragraphs: int, paragraph_words: int,
                     n_constraints: int) -> Request:
    """A seeded request with `paragraphs(P)` and `n_constraints` more constraints, in pool order."""
    genre, topic, audience, tone = (pick(rng, items)[0] for items in (GENRES, TOPICS, AUDIENCES, TONES))
    words = required_words(rng, n_paragraphs, paragraph_words)
    pool = constraint_pool(rng, n_paragraphs, words)
    chosen = sorted(rng.choice(len(pool), size=min(n_constraints, len(pool)), replace=False))
    constraints = (Paragraphs(n_paragraphs), *(pool[i] for i in chosen))
    return Request(genre, topic, audience, tone, words, n_paragraphs, constraints)
