"""`markovian`: Delethink, the Markovian Thinker (Aghajohari, Chitsaz, Kazemnejad et al., arXiv 2510.06557).

The model never sees an unbounded history; it sees the task plus a bounded
state it wrote itself. Two forms (option `mode`):

`turns` (across turns). The prompt of turn t >= 1 is

    [system] user: o_0   assistant: carryover(a_{t-1})   user: o_t

where `carryover(a)` is the text of the last `<carryover>...</carryover>` tag
in a, else the last m (`carryover`) tokens of a (the action text, including
any pre-filled prefix, re-tokenised: it is prompt, not loss). It sits in the
assistant's role because the model wrote it. Turn 0's prompt is [system] o_0.

`chunked` (within one long answer, methods.md §8). Each turn's prompt (the
query q, built exactly as in `turns`) starts an answer generated in chunks of
C (`chunk`) tokens with Markovian state m (`carryover`):

    chunk 0:    prompt = q                                        generate <= C
    chunk k>=1: prompt = q + first h ids of chunk 0 + last (m - h)
                ids of the answer so far                          generate <= C - m

with h = `head`, until an EOS or stop string ends a chunk or `max_chunks`
chunks are done. Every model call then sees at most |q| + C tokens. The
chunks together are ONE env action: the concatenated sampled ids, decoded.
`generate_chunked` does this for a batch of queries (one sampler call per
chunk index, all live answers together); the model policy reaches it through
the strategy's `generate` hook. The turn records `info["policy"]` =
`{"chunk_tokens": [...], "chunk_prompt_tokens": [...]}`.

Training: every chunk (`chunked`) or turn (`turns`) is its own row: its exact
prompt ids (mask 0), then its sampled ids (mask 1) carrying the turn's
advantage (Delethink: the trace's GRPO advantage on every chunk; pass the
same value for every turn to get exactly that). Rows of one episode form one
trace for the loss aggregation `trace-length` (Delethink's
`seq-mean-token-norm-trace-length`): the caller passes the episode index as
`trace_ids`. Tokens of earlier chunks that reappear in a later chunk's prompt
(head and tail) are prompt there: every sampled id is in exactly one mask.
Chunk prompts are rebuilt from `Turn.prompt_ids` (= q) and the chunk lengths
by the same function that built them, and checked against the recorded
prompt lengths.

Departures from the paper:
1. the paper's tail is "the last m - h tokens of chunk k-1"; here it is the
   last m - h sampled tokens of the answer so far, which is the same whenever
   C - m >= m - h (true for the paper's C = 8192, m = 4096, h = 100);
2. multi-turn use and the `turns` form are ours (Delethink is single-turn);
3. a stop string split across a chunk boundary is not seen (each sampler call
   only checks its own text); the answer then runs on to EOS or the chunk cap;
4. defaults are scaled down for small models: C = 256, m = 128, h = 16, I = 5
   (paper: 8192, 4096, 100, 5); `max_new_tokens` of the sampler is unused in
   `chunked` mode (the budget is C + (I - 1)(C - m)).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from longhorizon.context.base import (Answer, ContextStrategy, EpisodeView, chat_ids, encode, per_turn_samples,
                                      role_of, system_messages, turn_sample)
from longhorizon.types import Sample, Trajectory, Turn

CARRY_RE = re.compile(r"<carryover>(.*?)</carryover>", re.DOTALL)
MODES = ("turns", "chunked")


# ---------------------------------------------------------------- across turns
def carryover_text(action: str, tokenizer: Any, m: int) -> str:
    """The state carried to the next turn: the last `<carryover>` tag's text, else the last m tokens of the action."""
    tagged = CARRY_RE.findall(action)
    if tagged:
        return tagged[-1].strip()
    ids = encode(tokenizer, action)
    return tokenizer.decode(ids[max(0, len(ids) - m):], skip_special_tokens=True)


def markov_messages(episode: EpisodeView, tokenizer: Any, m: int) -> list[dict[str, str]]:
    """[system] o_0, then (carryover of a_{t-1}, o_t) for t >= 1."""
    t = len(episode.turns)
    msgs = system_messages(episode) + [{"role": role_of(episode, 0), "content": episode.task}]
    if t >= 1:
        carry = carryover_text(episode.turns[-1].action, tokenizer, m)
        msgs += [{"role": "assistant", "content": carry}, {"role": role_of(episode, t), "content": episode.observation}]
    return msgs


# ---------------------------------------------------------------- within one answer
@dataclass
class Chunk:
    """One model call of a chunked answer: what it saw and what it sampled."""

    prompt_ids: list[int]
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str


def chunk_prompt(query: list[int], answer: list[int], head: int, tail: int) -> list[int]:
    """Delethink §8: q, then the first `head` ids of chunk 0 and the last `tail` ids of the answer so far."""
    if not answer:
        return list(query)
    return list(query) + answer[:head] + answer[len(answer) - tail:]


def generate_chunked(sampler: Any, queries: list[list[int]], params: Any, chunk: int, carryover: int,
                     head: int, max_chunks: int) -> list[list[Chunk]]:
    """Delethink chunked generation for a batch of queries; one sampler call per chunk index.

    An answer goes on to the next chunk only when its chunk hit the token cap
    (finish reason "length"); an EOS or a stop string ends it.
    """
    chunks: list[list[Chunk]] = [[] for _ in queries]
    live = list(range(len(queries)))
    for k in range(max_chunks):
        if not live:
            break
        budget = chunk if k == 0 else chunk - carryover  # Delethink §8: C, then C - m new tokens
        prompts = [chunk_prompt(queries[i], answer_ids(chunks[i]), head, carryover - head) for i in live]
        for i, p, g in zip(live, prompts, sampler.generate(prompts, replace(params, max_new_tokens=budget))):
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


def split_chunks(turn: Turn, head: int, tail: int) -> list[tuple[list[int], int, int]]:
    """(prompt ids, start, end) of each chunk of a turn, rebuilt from `Turn.prompt_ids` and the chunk lengths."""
    policy = turn.info.get("policy", {})
    lengths = policy.get("chunk_tokens") or [len(turn.action_ids)]
    if sum(lengths) != len(turn.action_ids):
        raise ValueError(f"chunk lengths {lengths} do not add up to the turn's {len(turn.action_ids)} sampled ids")
    out, start = [], 0
    for n in lengths:
        out.append((chunk_prompt(turn.prompt_ids, turn.action_ids[:start], head, tail), start, start + n))
        start += n
    recorded = policy.get("chunk_prompt_tokens")
    if recorded is not None and recorded != [len(p) for p, _, _ in out]:
        raise ValueError("chunk prompts do not match the recorded ones; "
                         "was this episode run with these chunk settings?")
    return out


# ---------------------------------------------------------------- the strategy
class Markovian(ContextStrategy):
    """Delethink: a bounded Markovian state across turns (`turns`) or across chunks of one answer (`chunked`)."""

    name = "markovian"

    def __init__(self, mode: str = "turns", carryover: int | None = None, chunk: int | None = None,
                 head: int | None = None, max_chunks: int | None = None):
        if mode not in MODES:
            raise ValueError(f"option mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "turns":
            _only_chunked(chunk=chunk, head=head, max_chunks=max_chunks)
        self.mode = mode
        chunked = mode == "chunked"
        self.carryover = _integer("carryover", carryover if carryover is not None else (128 if chunked else 64), 1)
        self.chunk = _integer("chunk", 256 if chunk is None else chunk, 2)
        self.head = _integer("head", 16 if head is None else head, 0)
        self.max_chunks = _integer("max_chunks", 5 if max_chunks is None else max_chunks, 1)
        if chunked and not self.head < self.carryover < self.chunk:
            raise ValueError(f"options need head < carryover < chunk, got head={self.head}, "
                             f"carryover={self.carryover}, chunk={self.chunk}")

    def build_prompt(self, episode: EpisodeView, tokenizer: Any) -> list[int]:
        return chat_ids(tokenizer, markov_messages(episode, tokenizer, self.carryover), episode.tools)

    def max_new_tokens(self, params: Any) -> int:
        return self.chunk if self.mode == "chunked" else int(params.max_new_tokens)

    def generate(self, sampler: Any, prompts: list[list[int]], params: Any) -> list[Answer]:
        if self.mode == "turns":
            return super().generate(sampler, prompts, params)
        chunked = generate_chunked(sampler, prompts, params, self.chunk, self.carryover, self.head, self.max_chunks)
        return [as_answer(c, sampler.tokenizer) for c in chunked]

    def to_samples(self, trajectory: Trajectory, turn_advantages: list[float]) -> list[Sample]:
        """One row per turn (`turns`) or per chunk (`chunked`); mask on that row's own sampled ids only."""
        if self.mode == "turns":
            return per_turn_samples(trajectory, turn_advantages)
        if len(turn_advantages) != len(trajectory.turns):
            raise ValueError(f"{len(trajectory.turns)} turns but {len(turn_advantages)} advantages")
        return [row for t, (turn, a) in enumerate(zip(trajectory.turns, turn_advantages))
                for row in self._chunk_rows(turn, a, t)]

    def _chunk_rows(self, turn: Turn, advantage: float, t: int) -> list[Sample]:
        if not turn.action_ids:
            return []
        return [turn_sample(prompt, turn.action_ids[s:e], turn.action_logprobs[s:e], advantage, turn=t, chunk=c)
                for c, (prompt, s, e) in enumerate(split_chunks(turn, self.head, self.carryover - self.head))]


def _integer(name: str, value: Any, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"option {name} must be an integer >= {low}, got {value!r}")
    return value


def _only_chunked(**options: Any) -> None:
    for name, value in options.items():
        if value is not None:
            raise ValueError(f"option {name} applies only to mode='chunked'")
