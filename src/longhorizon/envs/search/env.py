"""`longhorizon/Search-v0`: answer a multi-hop question by searching and reading a local corpus (ASearcher, offline).

The setting of ASearcher (Gao, Fu et al., arXiv 2508.07976; `reference/methods-2.md` §15) without the internet:
each episode generates a corpus of documents holding facts about invented entities, look-alike distractors and
news documents (`corpus.py`), and one question whose answer needs `hops + 1` documents found one after the
other. Tools, in the OpenAI function schema:

- `search(query)`: BM25 over the corpus, the top 5 documents as `doc_id | title | snippet`. ASearcher's search
  returns the top 5 of a web search (Serper) or of a local E5 retriever; here it is BM25 from `bm25s`
  (chosen over rank-bm25: maintained, released through 2025, numpy only, and scores all documents in one sparse
  product). Query and documents are tokenised the same way: lower-cased word characters, English stop words
  dropped, no stemming. Ties are broken by corpus order.
- `open(doc_id)`: the whole document (ASearcher's `<access>` of a page).
- `answer(answer)`: ends the episode.

Reward: on the last step, token F1 of the answer against the gold one (ASearcher's `reward_type: F1`), with
SQuAD's normalisation (`verifier.py`); 0 on every other step and when the turn limit truncates. `success` and
`info["correct"]`: exact match. `info["metrics"]`: `exact_match`, `f1`, `searches`, `opens`,
`gold_docs_opened` (fraction of the chain's documents the agent read).

Knobs: `hops` (relations in the question, the horizon knob), `corpus_size`, `difficulty` (distractors, see
`corpus.py`), `max_turns` (turn limit; ASearcher uses 32 for its 7B web agents and up to 128 for its QwQ agent).

Departures from ASearcher: generated facts and questions instead of a web and synthesised questions; tools
in the OpenAI function schema instead of `<search>`/`<access>` tags; no format gate, no "invalid question"
answers, no summarisation turns (a context strategy can add those). The oracle plays
`search(name) → open(doc) ` along the chain, then answers (`2·(hops+1)+1` turns), taking the next step of that
script that has not happened yet, so a mistake in between does not derail it.
"""

from __future__ import annotations

import functools
import re
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from longhorizon.envs.core.base import clip_text
from longhorizon.envs.core.knobs import Int, Knobs, set_knobs
from longhorizon.envs.core.tools import ToolCall, ToolEnv, ToolError, ToolResult, format_tool_call, tool_schema
from longhorizon.envs.search.corpus import SNIPPET_CHARS, World, new_world
from longhorizon.envs.search.verifier import exact_match, f1_score

TOP_K = 5  # ASearcher: top-5 search results
WORD = re.compile(r"\w+")


@functools.cache
def stopwords() -> frozenset[str]:
    """bm25s's English stop words. bm25s is imported only when a Search env is built: it loads numba where numba
    is installed, and vLLM's kernel scan of every loaded module fails on numba's llvmlite objects."""
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens without English stop words (the same for documents and queries)."""
    stop = stopwords()
    return [w for w in WORD.findall(text.lower()) if w not in stop]


class SearchKnobs(Knobs):
    """Search's knobs."""

    hops: Int = Field(2, ge=1, le=8, description="relations the question chains; the answer needs hops + 1 "
                      "documents, found one after the other")
    corpus_size: Int = Field(200, ge=20, le=20_000, description="documents in the generated corpus")
    difficulty: Int = Field(1, ge=1, le=3, description="distractors: 1 none, 2 look-alike names and 25% news "
                            "documents, 3 50% news documents crowding the chain and shorter snippets")
    max_turns: Int = Field(32, ge=1, le=1024, description="turn limit; the episode is truncated there with reward "
                           "0 (ASearcher: 32 for 7B agents, 128 for its QwQ agent)")


class SearchEnv(ToolEnv):
    """One multi-hop question over a seeded local corpus, with BM25 search."""

    HORIZON_KNOB: ClassVar[str | None] = "hops"
    REWARD: ClassVar[str] = "F1 of the answer (SQuAD normalisation) on the answer step: 0 to 1; 0 if the turn limit comes first"
    Knobs = SearchKnobs
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "easy": {"hops": 1, "difficulty": 1, "corpus_size": 50},
        "medium": {"hops": 2, "difficulty": 2, "corpus_size": 200},
        "hard": {"hops": 4, "difficulty": 3, "corpus_size": 500},
        "long": {"hops": 8, "difficulty": 3, "corpus_size": 300, "max_turns": 128},
    }
    system_prompt = ("You answer questions by searching a document collection. Search, open documents to read "
                     "them, follow the facts from one document to the next, and call answer with a short answer.")

    def __init__(self, render_mode: str | None = None, **knobs: Any):
        super().__init__(render_mode)
        self.knobs = set_knobs(self, SearchKnobs, knobs)
        self.max_steps = self.max_turns
        self.horizon = self.hops

    # -- episode ------------------------------------------------------------------------------
    def _reset_task(self) -> str:
        self.world: World = new_world(self.np_random, self.corpus_size, self.hops, self.difficulty)
        self.docs = {d.doc_id: d for d in self.world.documents}
        import bm25s  # here, not at import time (see `stopwords`)

        self.retriever = bm25s.BM25()
        self.retriever.index([tokenize(f"{d.title} {d.text}") for d in self.world.documents], show_progress=False)
        self.searched: set[str] = set()
        self.opened: set[str] = set()
        self.n_searches = self.n_opens = 0
        self.answer: str | None = None
        self.task_statement = f"Question: {self.world.question.text}"
        return (f"Answer the question using the document collection ({len(self.docs)} documents). "
                f"{self.tool_usage()}\n\n{self.task_statement}")

    # -- tools ------------------------------------------------------------------------------------
    def tool_search(self, query: str) -> str:
        """Search the documents (BM25); returns the best 5 as `doc_id | title | snippet` lines.

        Args:
            query: words to search for, such as a name
        """
        terms = tokenize(query)
        if not terms:
            raise ToolError("the query has no searchable words; search for a name or a few keywords")
        self.n_searches += 1
        self.searched.add(query.strip().lower())
        scores = self.retriever.get_scores(terms)  # (N,) over the corpus
        best = [int(i) for i in np.lexsort((np.arange(len(scores)), -scores))[:TOP_K] if scores[i] > 0]
        if not best:
            return f"no document matches {clip_text(query, 80)!r}"
        return "\n".join(self._hit(self.world.documents[i]) for i in best)

    def _hit(self, doc: Any) -> str:
        limit = SNIPPET_CHARS[self.difficulty]
        return f"{doc.doc_id} | {doc.title} | {clip_text(doc.text, limit) if len(doc.text) > limit else doc.text}"

    def tool_open(self, doc_id: str) -> str:
        """Read one whole document.

        Args:
            doc_id: the document's id, from search results (such as D1a2b3c)
        """
        doc = self.docs.get(doc_id.strip())
        if doc is None:
            raise ToolError(f"no document has id {clip_text(doc_id, 40)!r}; ids come from search results")
        self.n_opens += 1
        self.opened.add(doc.doc_id)
        return f"{doc.title}\n{doc.text}"

    def tool_answer(self, answer: str) -> str:
        """Give the final answer (short: a name, a number or a word); this ends the episode.

        Args:
            answer: the answer to the question
        """
        self.answer, self.done = answer, True
        return "Answer recorded."

    # -- ToolEnv hooks ------------------------------------------------------------------------
    def scores(self) -> tuple[float, float]:
        """(exact match, F1) of the answer given (0, 0 if none)."""
        if self.answer is None:
            return 0.0, 0.0
        gold = self.world.question.answer
        return exact_match(self.answer, gold), f1_score(self.answer, gold)

    def step_reward(self, results: list[ToolResult]) -> float:
        """ASearcher's reward: F1 of the answer, on the last step only."""
        return self.scores()[1] if self.done else 0.0

    def final_info(self) -> dict[str, Any]:
        em, f1 = self.scores()
        chain = [self.world.entities[i].doc_id for i in self.world.question.chain]
        metrics = {"exact_match": em, "f1": f1, "searches": float(self.n_searches), "opens": float(self.n_opens),
                   "gold_docs_opened": sum(d in self.opened for d in chain) / len(chain)}
        return {"success": em == 1.0, "correct": em == 1.0, "metrics": metrics,
                "gold_answer": self.world.question.answer}

    # -- oracle ----------------------------------------------------------------------------------
    def solution(self) -> list[ToolCall]:
        """The scripted solution: search each chain entity's name and open its document, then answer."""
        calls = []
        for i in self.world.question.chain:
            entity = self.world.entities[i]
            calls += [ToolCall("search", {"query": entity.name}), ToolCall("open", {"doc_id": entity.doc_id})]
        return calls + [ToolCall("answer", {"answer": self.world.question.answer})]

    def oracle_call(self) -> ToolCall:
        """The first step of the solution that has not happened yet."""
        return next(c for c in self.solution() if not self._done_already(c))

    def _done_already(self, call: ToolCall) -> bool:
        if call.name == "search":
            return call.arguments["query"].lower() in self.searched
        return call.name == "open" and call.arguments["doc_id"] in self.opened

    def wrong_action(self, rng: np.random.Generator) -> str:
        """A well-formed wrong answer, sharing no token with any gold answer (ends the episode with reward 0)."""
        return format_tool_call("answer", {"answer": ("unknown", "nobody", "none")[int(rng.integers(3))]})


LIMIT = {"maxLength": 500}
SearchEnv.tools = [
    tool_schema(SearchEnv.tool_search, {"query": LIMIT}),
    tool_schema(SearchEnv.tool_open, {"doc_id": {"maxLength": 40}}),
    tool_schema(SearchEnv.tool_answer, {"answer": LIMIT}),
]
