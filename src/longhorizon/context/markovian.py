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
The strategy only declares this (`chunk_plan()`, a `ChunkPlan`); the model
policy samples it with `rollout.chunked.generate_chunked` (one sampler call
per chunk index, all live answers together). The turn records
`info["policy"]` = `{"chunk_tokens": [...], "chunk_prompt_tokens": [...]}`.

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
from typing import Any

from longhorizon.context.base import (ChunkPlan, ContextStrategy, EpisodeView, chat_ids, chunk_prompt, encode,
                                      per_turn_samples, role_of, system_messages, turn_sample)
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

    def chunk_plan(self) -> ChunkPlan | None:
        if self.mode == "turns":
            return None
        return ChunkPlan(chunk=self.chunk, carryover=self.carryover, head=self.head, max_chunks=self.max_chunks)

    def to_samples(self, trajectory: Trajectory) -> list[Sample]:
        """One row per turn (`turns`) or per chunk (`chunked`); mask on that row's own sampled ids only."""
        if self.mode == "turns":
            return per_turn_samples(trajectory)
        return [row for t, turn in enumerate(trajectory.turns) for row in self._chunk_rows(turn, t)]

    def _chunk_rows(self, turn: Turn, t: int) -> list[Sample]:
        if not turn.action_ids:
            return []
        return [turn_sample(prompt, turn.action_ids[s:e], turn.action_logprobs[s:e], t, chunk=c)
                for c, (prompt, s, e) in enumerate(split_chunks(turn, self.head, self.carryover - self.head))]


def _integer(name: str, value: Any, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"option {name} must be an integer >= {low}, got {value!r}")
    return value


def _only_chunked(**options: Any) -> None:
    for name, value in options.items():
        if value is not None:
            raise ValueError(f"option {name} applies only to mode='chunked'")
