"""Small named reward functions, each scoring segments of an episode, as in verifiers' rubrics.

Two kinds, both picked by name in `algorithm.rewards.components`:

Turn functions (`SEGMENT_REWARDS`) take a `Trajectory` and return one score per turn:
- "env": the env's own turn reward;
- "success": 1 on the last turn of an episode the env calls a success, else 0 (the outcome level for G-RA);
- "correct": 1 on a turn whose info says `correct`, else 0;
- "format": -1 on a turn whose info carries an `error` (bad or illegal action), else 0;
- "checklist": ACE-RL's checklist reward (constraints met x length score) on the last turn of an episode whose
  env reports a checklist (LongWrite-v0; `feedback/checklist.py`), else 0.
- "length": LongBench-Write's length score S_l / 100 (0..1) on the last turn of an episode whose env reports
  its document and required length (LongWrite-v0), counted on the text a reader gets (`visible_text`: no
  `<think>` block, no `<answer>` tags), else 0: LongWriter-Zero's length reward (see `think_format`);
- "think_format": LongWriter-Zero's format reward per turn (Wu, Bai et al., arXiv 2506.18841, methods-2.md
  §4c): 1 when the turn is exactly one non-empty `<think>...</think>` then one `<answer>...</answer>` holding
  words, nothing else around them, and no sentence of the answer repeats an earlier one; else 0.

LongWriter-Zero's details are [UNVERIFIED] (methods-2.md §4c): its length RM gives full reward inside a
word range a model predicts per query and penalises outside it with an unpublished curve; "length" uses the
env's required length l and S_l's curve instead (100 at l, 0 at l/3 and 4l). Its format RM's exact values
and repetition test are not published; "think_format" is 1/0 and calls content repeated when a sentence
(case and spacing folded, `sentence_spans`) occurs twice in the answer.

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


THINK_ANSWER_RE = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
THINK_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def visible_text(text: str) -> str:
    """What a reader gets of a reply: after the last `</think>` (else before an unclosed `<think>`), without
    `<answer>` tags; plain text as it is."""
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    elif "<think>" in text:
        text = text.split("<think>", 1)[0]
    return text.replace("<answer>", "").replace("</answer>", "")


def repeats_a_sentence(text: str) -> bool:
    """Whether a sentence (case and spacing folded) occurs twice in `text`."""
    keys = [" ".join(text[a:b].lower().split()) for a, b in sentence_spans(text)]
    return len(set(keys)) < len(keys)


def think_answer_format(text: str) -> float:
    """LongWriter-Zero's format reward: 1 for exactly one `<think>` block then one `<answer>` block, both
    non-empty, nothing around them, no repeated sentence in the answer; else 0."""
    from longhorizon.envs.longwrite.text import has_words

    if any(text.count(tag) != 1 for tag in THINK_TAGS):
        return 0.0
    match = THINK_ANSWER_RE.fullmatch(text)
    if match is None:
        return 0.0
    think, answer = match.groups()
    return float(bool(think.strip()) and has_words(answer) and not repeats_a_sentence(answer))


def think_format(traj: Trajectory) -> list[float]:
    return [think_answer_format(t.action) for t in traj.turns]


def length(traj: Trajectory) -> list[float]:
    """S_l / 100 of the visible document on the last turn, for envs that report a document and a required length."""
    scores = [0.0] * len(traj.turns)
    info = traj.turns[-1].info if scores else {}
    required = info.get("metrics", {}).get("required_words")
    if "document" in info and required:
        from longhorizon.envs.longwrite.text import count_words, length_score

        scores[-1] = length_score(int(required), count_words(visible_text(info["document"]))) / 100  # LongBench-Write
    return scores


SEGMENT_REWARDS: dict[str, SegmentReward] = {
    "env": env_reward,
    "success": success,
    "correct": correct,
    "format": format_penalty,
    "checklist": checklist,
    "length": length,
    "think_format": think_format,
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
