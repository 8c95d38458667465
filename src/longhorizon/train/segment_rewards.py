"""Small named reward functions, each scoring segments of an episode, as in verifiers' rubrics.

Two kinds, both picked by name in `algorithm.rewards.components`:

Turn functions (`SEGMENT_REWARDS`) take a `Trajectory` and return one score per turn:
- "env": the env's own turn reward;
- "success": 1 on the last turn of an episode the env calls a success, else 0 (the outcome level for G-RA);
- "correct": 1 on a turn whose info says `correct`, else 0;
- "format": -1 on a turn whose info carries an `error` (bad or illegal action), else 0;
- "checklist": ACE-RL's checklist reward (constraints met x length score) on the last turn of an episode whose
  env reports a checklist (LongWrite-v0; `feedback/checklist.py`), else 0.

Span functions (`SPAN_REWARDS`) score spans inside the agent's turns, found by a
rule, as Fine-Grained RLHF scores sub-sentences and sentences (Wu et al. 2023,
methods.md §15: the reward of a segment sits on its last token). A span
function takes the episode's sampled turn texts (each turn's `action_ids`
decoded) and returns, per turn, `(end, score)` pairs: `end` is the span's end
character (exclusive) in that turn's text.
- "repeated_sentence" / "repeated_line": -1 for every sentence / non-empty line
  whose text (case and spacing folded) already appeared earlier in the
  episode: the degenerate repetition long generations fall into.

Judges (`train/reward_sources.py`: "judge", "judge_pairwise") score the
whole batch with a model and put each episode's score on its last turn.

The trainer stacks every component's per-turn totals into `(C, N, K)`
(`components`), gates them by priority (G-RA) and mixes them with weights into
dense per-turn rewards (`algorithms.turn_credit`). Span scores are also placed
on their spans' last tokens (`span_token_rewards`) for the token-level methods.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from longhorizon.types import Trajectory

SegmentReward = Callable[[Trajectory], list[float]]


def env_reward(traj: Trajectory) -> list[float]:
    return [float(t.reward) for t in traj.turns]


def success(traj: Trajectory) -> list[float]:
    scores = [0.0] * len(traj.turns)
    if scores and traj.success:
        scores[-1] = 1.0
    return scores


def correct(traj: Trajectory) -> list[float]:
    return [float(bool(t.info.get("correct"))) for t in traj.turns]


def format_penalty(traj: Trajectory) -> list[float]:
    return [-1.0 if t.info.get("error") else 0.0 for t in traj.turns]


def checklist(traj: Trajectory) -> list[float]:
    """ACE-RL's checklist reward on the last turn, for envs whose last info carries a checklist (LongWrite-v0)."""
    scores = [0.0] * len(traj.turns)
    if scores and "checklist" in traj.turns[-1].info:
        from longhorizon.feedback.checklist import checklist_reward

        scores[-1] = checklist_reward(traj.turns[-1].info)[0]
    return scores


SEGMENT_REWARDS: dict[str, SegmentReward] = {
    "env": env_reward,
    "success": success,
    "correct": correct,
    "format": format_penalty,
    "checklist": checklist,
}


Span = tuple[int, float]  # (end character of the span in its turn's text, exclusive; score)
SpanReward = Callable[[list[str]], list[list[Span]]]
SpanRule = Callable[[str], list[tuple[int, int]]]  # a turn's text → (start, end) character ranges


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentences: runs of text up to and including ., ! or ? (or the end), leading spaces left out."""
    return [(m.start(), m.end()) for m in re.finditer(r"[^\s.!?][^.!?]*(?:[.!?]+|$)", text)]


def line_spans(text: str) -> list[tuple[int, int]]:
    """Non-empty lines, without their newline."""
    return [(m.start(), m.end()) for m in re.finditer(r"[^\n]*\S[^\n]*", text)]


def repeated(rule: SpanRule) -> SpanReward:
    """-1 at the end of every span whose folded text appeared earlier in the episode (in this turn or before)."""

    def score(texts: list[str]) -> list[list[Span]]:
        seen: set[str] = set()
        out: list[list[Span]] = []
        for text in texts:
            spans = []
            for start, end in rule(text):
                key = " ".join(text[start:end].lower().split())
                spans.append((end, -1.0 if key in seen else 0.0))
                seen.add(key)
            out.append(spans)
        return out

    return score


SPAN_REWARDS: dict[str, SpanReward] = {
    "repeated_sentence": repeated(sentence_spans),
    "repeated_line": repeated(line_spans),
}


def components(trajectories: list[Trajectory], names: Sequence[str], turns: int,
               decode: Callable[[list[int]], str] | None = None, sources: Any = None) -> Tensor:
    """Per-turn scores of each named function `(C, N, K)`, K = `turns` (0 past an episode's end).

    A span function's turn score is the sum of its spans' scores in that turn (`decode` turns ids into text);
    a judge's come from `sources` (`train/reward_sources.RewardSources`), which scores the whole batch.
    """
    out = torch.zeros(len(names), len(trajectories), turns)
    for c, name in enumerate(names):
        batch_scores = sources.scores(name, trajectories) if sources is not None and sources.handles(name) else None
        for i, traj in enumerate(trajectories):
            if batch_scores is not None:
                scores = batch_scores[i]
            elif name in SPAN_REWARDS:
                scores = [sum(s for _, s in spans) for spans in SPAN_REWARDS[name](turn_texts(traj, decode))]
            else:
                scores = SEGMENT_REWARDS[name](traj)
            out[c, i, : len(scores)] = torch.tensor(scores, dtype=out.dtype)
    return out


def turn_texts(traj: Trajectory, decode: Callable[[list[int]], str] | None) -> list[str]:
    """The text the model sampled in each turn: its decoded `action_ids` (the action string when it has none)."""
    if decode is None:
        raise ValueError("span rewards need the tokenizer's decode to find spans in the sampled tokens")
    return [decode(t.action_ids) if t.action_ids else t.action for t in traj.turns]


def char_to_token(ids: list[int], end: int, decode: Callable[[list[int]], str]) -> int:
    """Index of the token whose text reaches character `end` (the span's last token): the smallest i with
    len(decode(ids[:i + 1])) >= end, by bisection (the last token when `end` is past the text)."""
    lo, hi = 0, len(ids) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if len(decode(ids[: mid + 1])) >= end:
            hi = mid
        else:
            lo = mid + 1
    return lo


def span_token_scores(traj: Trajectory, name: str, decode: Callable[[list[int]], str]) -> list[dict[int, float]]:
    """Per turn, {index in the turn's action_ids: summed score of the spans ending on that token}."""
    out: list[dict[int, float]] = []
    for turn, spans in zip(traj.turns, SPAN_REWARDS[name](turn_texts(traj, decode))):
        placed: dict[int, float] = {}
        for end, value in spans:
            if value and turn.action_ids:
                k = char_to_token(turn.action_ids, end, decode)
                placed[k] = placed.get(k, 0.0) + value
        out.append(placed)
    return out
