"""Generative judges: a language model reads the task and the agent's answer(s), reasons, then gives a verdict.

Two kinds, picked by name (`JUDGE_KINDS`):

- "pairwise", Think-RM (Hong et al., NeurIPS 2025, methods-2.md §1, from its code
  `prompt_templates.py` / `comparison_reward_func.py`): the judge compares
  Assistant A and Assistant B on the HelpSteer2 criteria, thinks in
  `<think>...</think>` (the reply is pre-filled with `<think>\\n`), and puts a
  preference strength in `<answer></answer>`: -3, -2, -1 (A much better, better,
  slightly better) or 1, 2, 3 (the same for B). The last `<answer>` block counts,
  and in it the last number from {-3..3} \\ {0}; anything else scores 0.
- "pointwise": a rubric judge (ours; the seed papers define no pointwise
  format): it thinks the same way and puts an integer 1..10 in `<answer>`;
  the score is (s - 1) / 9 in [0, 1], and an unusable answer scores 0.

Parsing never raises, whatever the judge wrote (no tags, two answers, a number
out of range, a 100k-character ramble): a `Verdict` carries the score, whether it
parsed, and the reason. The judge's outputs are cached by a hash of (judge
model, kind, the exact prompt ids, the sampling settings) in a SQLite file
(`JudgeCache`, the run directory's `judge_cache.sqlite` in training), so a
resumed run or a second evaluation does not pay twice. Judge calls are batched
through a `TransformersSampler` (the same sampler class as rollouts); a batch
samples from a seed drawn from the hashes of what it judges, so the same batch
gets the same verdicts again (a resumed run stays exact even at temperature > 0).

`think_rm_judge_reward` is Think-RM's stage-2 reward for training a judge with
RL on labelled pairs (1 exact strength, 0.5 same sign, 0 otherwise).

Choices: contexts and answers longer than `max_chars` are cut in the middle
(kept: the start and the end) so a prompt stays inside the judge's window; the
judge sees the episode as the agent's turns in order, each after the observation
it answered (`episode_text`).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from longhorizon.context.base import encode, render
from longhorizon.types import Trajectory

PAIRWISE_SYSTEM = (
    "You are an impartial judge. Compare the two AI assistants' responses to the context below on helpfulness, "
    "correctness, coherence, complexity, verbosity and safety. Think step by step inside <think></think>, then "
    "give your final verdict inside <answer></answer> as one number: -3 if Assistant A's response is much better "
    "than Assistant B's, -2 if it is better, -1 if it is slightly better; 1 if Assistant B's response is slightly "
    "better than Assistant A's, 2 if it is better, 3 if it is much better."
)
POINTWISE_SYSTEM = (
    "You are an impartial judge. Rate the AI assistant's response to the context below for correctness and "
    "helpfulness against the task. Think step by step inside <think></think>, then give your final score inside "
    "<answer></answer> as one integer from 1 (useless or wrong) to 10 (fully correct and helpful)."
)
STRENGTHS = (-3, -2, -1, 1, 2, 3)
ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
ANSWER_TAG_RE = re.compile(r"<(/?)answer>", re.IGNORECASE)  # `answer_blocks` reads ANSWER_RE's blocks in one pass
NUMBER_RE = re.compile(r"[-+−]?\d+(?:\.\d+)?")
KEEP_TEXT = 2000  # characters of the judge's output kept in a verdict (its rationale)


@dataclass(frozen=True)
class Verdict:
    """One judgement: `score` (pairwise: the strength -3..3, negative = A better; pointwise: 0..1), whether the
    output parsed, why not if it did not, and the judge's text (the first `KEEP_TEXT` characters)."""

    score: float
    parsed: bool
    reason: str
    text: str


def answer_blocks(text: str) -> list[str]:
    """`ANSWER_RE.findall(text)` in one pass over the tags: the regex retries from every unclosed `<answer>`,
    which is quadratic (minutes for `"<answer>" * 50_000`)."""
    blocks, start = [], None
    for tag in ANSWER_TAG_RE.finditer(text):
        if start is None and not tag.group(1):
            start = tag.end()
        elif start is not None and tag.group(1):
            blocks.append(text[start:tag.start()])
            start = None
    return blocks


def _last_answer(text: str) -> tuple[str | None, str]:
    blocks = answer_blocks(text)
    if not blocks:
        return None, "no <answer></answer> block"
    return blocks[-1], ""


def _numbers(block: str) -> list[float]:
    return [float(n.replace("−", "-")) for n in NUMBER_RE.findall(block)]


def parse_pairwise(text: str) -> Verdict:
    """Think-RM's multiclass verdict: the last <answer> block's last number in {-3..3} \\ {0}; else 0."""
    block, reason = _last_answer(text)
    if block is None:
        return Verdict(0.0, False, reason, text[:KEEP_TEXT])
    numbers = _numbers(block)
    valid = [n for n in numbers if n in STRENGTHS]
    if not valid:
        why = f"answer {block.strip()[:40]!r} holds no strength in -3..-1, 1..3" if numbers else "answer holds no number"
        return Verdict(0.0, False, why, text[:KEEP_TEXT])
    return Verdict(valid[-1], True, "", text[:KEEP_TEXT])


def parse_pointwise(text: str) -> Verdict:
    """The last <answer> block's last integer in 1..10, as (s - 1) / 9; else 0."""
    block, reason = _last_answer(text)
    if block is None:
        return Verdict(0.0, False, reason, text[:KEEP_TEXT])
    valid = [n for n in _numbers(block) if n == int(n) and 1 <= n <= 10]
    if not valid:
        return Verdict(0.0, False, f"answer {block.strip()[:40]!r} holds no integer in 1..10", text[:KEEP_TEXT])
    return Verdict((valid[-1] - 1) / 9, True, "", text[:KEEP_TEXT])


def think_rm_judge_reward(text: str, gold: int) -> float:
    """Think-RM's RL reward for a judge (methods-2.md §1, stage 2): 1 for the exact strength, 0.5 for the right
    sign, 0 otherwise (also unparsable or out of range)."""
    verdict = parse_pairwise(text)
    if not verdict.parsed:
        return 0.0
    if verdict.score == gold:
        return 1.0
    return 0.5 if (verdict.score > 0) == (gold > 0) else 0.0


# ------------------------------------------------------------------ prompts


def clip_middle(text: str, max_chars: int) -> str:
    """`text`, or its start and end with the middle replaced by a marker when it is longer than `max_chars`."""
    if len(text) <= max_chars:
        return text
    half = max(max_chars // 2 - 20, 1)
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


def episode_text(traj: Trajectory) -> tuple[str, str]:
    """(context, response) of an episode: the first observation, then each agent turn after what it answered."""
    if not traj.turns:
        return "", ""
    parts = []
    for i, turn in enumerate(traj.turns):
        if i:
            parts.append(f"[Environment]\n{turn.observation}")
        parts.append(f"[Agent]\n{turn.action}")
    return traj.turns[0].observation, "\n\n".join(parts)


def pairwise_messages(context: str, a: str, b: str, max_chars: int) -> list[dict[str, str]]:
    user = (f"[Start of Context]\n{clip_middle(context, max_chars)}\n[End of Context]\n\n"
            f"[Start of Assistant A's Response]\n{clip_middle(a, max_chars)}\n[End of Assistant A's Response]\n\n"
            f"[Start of Assistant B's Response]\n{clip_middle(b, max_chars)}\n[End of Assistant B's Response]")
    return [{"role": "system", "content": PAIRWISE_SYSTEM}, {"role": "user", "content": user}]


def pointwise_messages(context: str, response: str, max_chars: int) -> list[dict[str, str]]:
    user = (f"[Start of Context]\n{clip_middle(context, max_chars)}\n[End of Context]\n\n"
            f"[Start of Assistant's Response]\n{clip_middle(response, max_chars)}\n[End of Assistant's Response]")
    return [{"role": "system", "content": POINTWISE_SYSTEM}, {"role": "user", "content": user}]


JUDGE_KINDS: dict[str, Callable[[str], Verdict]] = {"pairwise": parse_pairwise, "pointwise": parse_pointwise}


# ------------------------------------------------------------------ cache and judge


class JudgeCache:
    """Judge outputs by content hash, in SQLite (one row per prompt; safe to reopen after a crash)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.execute("CREATE TABLE IF NOT EXISTS outputs (key TEXT PRIMARY KEY, text TEXT NOT NULL)")
        self.hits = self.misses = 0

    @staticmethod
    def key(*parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT text FROM outputs WHERE key = ?", (key,)).fetchone()
        self.hits, self.misses = self.hits + (row is not None), self.misses + (row is None)
        return row[0] if row else None

    def put(self, items: dict[str, str]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO outputs VALUES (?, ?)", list(items.items()))

    def close(self) -> None:
        self.db.close()


class Judge:
    """A generative judge on a transformers sampler: `compare` (pairwise) and `rate` (pointwise), batched, cached."""

    def __init__(self, sampler: Any, name: str, cache: JudgeCache | None = None, max_chars: int = 4000):
        self.sampler, self.name, self.cache, self.max_chars = sampler, name, cache, max_chars
        self.tokenizer = sampler.tokenizer

    def compare(self, items: Sequence[tuple[str, str, str]]) -> list[Verdict]:
        """Think-RM verdicts for (context, A, B) triples: strength -3..3, negative when A is better."""
        prompts = [pairwise_messages(c, a, b, self.max_chars) for c, a, b in items]
        return [parse_pairwise(t) for t in self._outputs("pairwise", prompts)]

    def rate(self, items: Sequence[tuple[str, str]]) -> list[Verdict]:
        """Pointwise scores in [0, 1] for (context, response) pairs."""
        prompts = [pointwise_messages(c, r, self.max_chars) for c, r in items]
        return [parse_pointwise(t) for t in self._outputs("pointwise", prompts)]

    def critique(self, items: Sequence[tuple[str, list[str]]]) -> list[Any]:
        """DeepCritic step critiques (`feedback/critic.py`) of (problem, steps) items: the first wrong step."""
        from longhorizon.feedback.critic import critique_messages, parse_critique

        prompts = [critique_messages(problem, steps) for problem, steps in items]
        return [parse_critique(t, len(steps)) for t, (_, steps) in zip(self._outputs("critic", prompts, ""), items)]

    def write(self, conversations: Sequence[list[dict[str, str]]], kind: str = "write", prefill: str = "") -> list[str]:
        """The model's text for each conversation (Critique-GRPO's critiques, RLHS's ratings), batched and cached
        under `kind`; the reply starts with `prefill`, which is part of the returned text."""
        return self._outputs(kind, list(conversations), prefill)

    def _outputs(self, kind: str, conversations: list[list[dict[str, str]]], prefill: str = "<think>\n") -> list[str]:
        """The judge's text for each conversation: from the cache, or sampled in one batch (the reply pre-filled
        with `prefill`, which is part of the returned text)."""
        ids = [encode(self.tokenizer, render(self.tokenizer, c, None, True) + prefill) for c in conversations]
        p = self.sampler.params
        keys = [JudgeCache.key(self.name, kind, x, p.temperature, p.top_p, p.max_new_tokens, p.seed) for x in ids]
        found = {k: self.cache.get(k) for k in keys} if self.cache else {}
        todo = [i for i, k in enumerate(keys) if found.get(k) is None]
        if todo:  # seeded by what is judged, so the same batch gets the same verdicts in a resumed run
            seed = int(JudgeCache.key([keys[i] for i in todo])[:8], 16)
            gens = self.sampler.with_params(replace(p, seed=seed)).generate([ids[i] for i in todo])
            found.update({keys[i]: prefill + g.text for i, g in zip(todo, gens)})
            if self.cache:
                self.cache.put({keys[i]: found[keys[i]] for i in todo})
        return [found[k] for k in keys]
