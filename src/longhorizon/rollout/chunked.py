"""Sampling answers: one model call each, or several per answer when the context strategy
declares a `ChunkPlan` (Delethink's chunked generation, `context/markovian.py`).

The strategy says what each call sees (`ChunkPlan.prompt`) and how many
tokens it may make (`ChunkPlan.budget`); this module makes the calls:
`generate_chunked` runs chunk k of every live answer in one sampler call, and
an answer goes on only while its chunk ended at the token cap (finish reason
"length"); an EOS or a stop string ends it. `as_answer` joins an answer's
chunks into one env action and records the chunk sizes for training.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from longhorizon.context.base import ChunkPlan


@dataclass
class Answer:
    """One sampled answer: ids, their behaviour log-probs, the decoded text, and facts for the turn's info."""

    token_ids: list[int]
    logprobs: list[float]
    text: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Chunk:
    """One model call of a chunked answer: what it saw and what it sampled."""

    prompt_ids: list[int]
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str


def generate_answers(sampler: Any, prompts: list[list[int]], params: Any, plan: ChunkPlan | None) -> list[Answer]:
    """One answer per prompt: a single sampler call, or chunk by chunk as the plan says."""
    if plan is None:
        return [Answer(list(g.token_ids), list(g.logprobs), g.text) for g in sampler.generate(prompts, params)]
    return [as_answer(c, sampler.tokenizer) for c in generate_chunked(sampler, prompts, params, plan)]


def generate_chunked(sampler: Any, queries: list[list[int]], params: Any, plan: ChunkPlan) -> list[list[Chunk]]:
    """Chunked generation for a batch of queries; one sampler call per chunk index."""
    chunks: list[list[Chunk]] = [[] for _ in queries]
    live = list(range(len(queries)))
    for k in range(plan.max_chunks):
        if not live:
            break
        prompts = [plan.prompt(queries[i], answer_ids(chunks[i])) for i in live]
        for i, p, g in zip(live, prompts, sampler.generate(prompts, replace(params, max_new_tokens=plan.budget(k)))):
            chunks[i].append(Chunk(p, list(g.token_ids), list(g.logprobs), g.finish_reason))
        live = [i for i in live if chunks[i][-1].finish_reason == "length"]
    return chunks


def answer_ids(chunks: list[Chunk]) -> list[int]:
    return [i for c in chunks for i in c.token_ids]


def as_answer(chunks: list[Chunk], tokenizer: Any) -> Answer:
    """The chunks as one answer (one env action); chunk sizes go into the turn's info."""
    ids = answer_ids(chunks)
    return Answer(token_ids=ids, logprobs=[x for c in chunks for x in c.logprobs],
                  text=tokenizer.decode(ids, skip_special_tokens=True),
                  info={"chunk_tokens": [len(c.token_ids) for c in chunks],
                        "chunk_prompt_tokens": [len(c.prompt_ids) for c in chunks]})
