"""`longhorizon/JudgePairs-v0`: train a judge with RL on its accuracy against labelled pairs (Think-RM, stage 2).

After Think-RM (Hong et al., NeurIPS 2025, arXiv 2505.16265; code github.com/IlgeeHong/Think-RM),
methods-2.md §1. One turn: the observation is Think-RM's pairwise judge prompt (`feedback/judges.py`'s
`pairwise_messages`: the system message is the judge instruction, the user message the context and the
two responses between Start/End markers), the reply is pre-filled with `<think>\\n` as the judges'
replies are, and the agent answers `<think>...</think><answer>s</answer>` with a strength s in
{-3..-1, 1..3} (negative: Assistant A is better). The verdict is read by the judges' own parser
(`parse_pairwise`: the last <answer> block, its last valid strength; anything else is unparsable), so a
judge trained here is scored exactly as `judge_pairwise` reads it, and hostile output (no tags, two
answers, out of range, 100k characters) gets a defined reward and the reason in `info["error"]`.

Reward, Think-RM's multiclass judge reward (`VERL/.../think-rm/run_*_max_grpo.sh`; `judges.think_rm_judge_reward`):
    r = 1.0 if s == s*;  0.5 if sign(s) == sign(s*);  0.0 otherwise (also unparsable or |s| > 3)
For a pair whose label has a direction but no strength (the verifier's pairs of `longhorizon prefs build`),
Think-RM's binary reward on the direction: r = 1.0 if sign(s) == sign(s*) else 0.0.

Pairs (`pairs.py`): from `pairs` (a pairs JSONL file, a `prefs build` directory or a TRL-format datasets
directory), else made procedurally from Execution-v0's verifier: its oracle's episode against one with m
of its H = `horizon` running totals wrong, strength ceil(3 m / H). `horizon` is the context length of
what is judged (the horizon knob); it does not apply to file pairs.

Both orders: env seed s judges pair s // 2 (modulo the file's pairs), shown as stored when s is even and
with A and B swapped (the label negated) when s is odd; so consecutive seeds show the same pair in both
orders, and a judge that always names the same position gets the direction right half the time. Keep
`tasks_per_step` even so that every training step holds both orders of each of its pairs.

Choices (methods-2.md leaves them open or the paper has no counterpart):
1. the procedural pairs and their strengths are ours (Think-RM trains on HelpSteer2-Preference's human
   strengths); strength-0 (tied) file pairs are dropped, as Think-RM drops them;
2. the A/B swap by seed parity is ours (the official RL data keeps HelpSteer2's order);
3. the `<think>\\n` pre-fill in RL rollouts is [UNVERIFIED] in the paper; we use it because our judges
   pre-fill it, so training and use see the same prompt;
4. the stop string `</answer>` ends a verdict at its first answer block (a cost saving; the parser would
   take the last block).

Step `info`: `correct` and `success` (the reward is 1), `expected` (s*), `parsed` (s, or None), `error`
(why the verdict could not be read), `metrics` {accuracy (the direction is right), exact, parsed, says_a
(the verdict prefers A: 0.5 on average for an unbiased judge)}.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from longhorizon.envs.core.base import TextEnv
from longhorizon.envs.core.knobs import Int, Knobs, set_knobs
from longhorizon.envs.execution.words import WORDS
from longhorizon.envs.judgepairs.pairs import JudgeItem, execution_item, file_items, shown
from longhorizon.feedback.judges import Verdict, pairwise_messages, parse_pairwise, think_rm_judge_reward

THINK_PREFIX = "<think>\n"  # what `Judge` pre-fills in a judge's reply (feedback/judges.py)


def judge_reward(text: str, gold: int, exact: bool = True) -> tuple[float, Verdict]:
    """Think-RM's judge reward for the reply `text` against the label `gold` (and the verdict read from it):
    multiclass (1 exact, 0.5 right sign, else 0) when the label is a strength, binary on the sign otherwise."""
    verdict = parse_pairwise(text)
    if exact:
        return think_rm_judge_reward(text, gold), verdict  # Hong et al. 2025, methods-2.md §1, stage 2
    return float(verdict.parsed and (verdict.score > 0) == (gold > 0)), verdict


class JudgePairsKnobs(Knobs):
    """JudgePairs' knobs."""

    horizon: Int = Field(3, ge=1, le=256, description="turns of the Execution-v0 episodes being judged: the "
                         "context length (the horizon knob); unused with `pairs`")
    dict_size: Int = Field(8, ge=1, le=len(WORDS), description="words in the judged episodes' dictionary")
    pairs: str | None = Field(None, description="judge these labelled pairs instead: a pairs JSONL file, a "
                              "`longhorizon prefs build` directory or a TRL-format datasets directory "
                              "(ties dropped); None = pairs made from Execution-v0's verifier")
    max_chars: Int = Field(4000, ge=100, description="the context and each response are cut in the middle to "
                           "this many characters (as the judge reward components cut them)")


class JudgePairsEnv(TextEnv):
    """Judge which of two responses is better, Think-RM style; rewarded against the pair's label."""

    REWARD: ClassVar[str] = ("Think-RM's judge reward, one turn: 1 exact strength, 0.5 right direction, 0 "
                             "otherwise (0 to 1)")
    Knobs = JudgePairsKnobs
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "short": {"horizon": 1, "dict_size": 4},
        "default": {},
        "long": {"horizon": 32, "dict_size": 20},
    }
    response_prefix = THINK_PREFIX
    stop = ("</answer>",)

    def __init__(self, render_mode: str | None = None, **knobs: Any):
        super().__init__(render_mode)
        self.knobs = set_knobs(self, JudgePairsKnobs, knobs)
        self.items = file_items(self.pairs) if self.pairs else None  # a bad path fails here, before any model
        self.done = True

    def _item(self, task: int) -> JudgeItem:
        if self.items is not None:
            return self.items[(task // 2) % len(self.items)]
        return execution_item(task // 2, self.horizon, self.dict_size)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        task = seed if seed is not None else int(self.np_random.integers(2**31))
        self.item, self.swapped = self._item(task), task % 2 == 1
        context, a, b, self.gold = shown(self.item, self.swapped)
        system, user = pairwise_messages(context, a, b, self.max_chars)
        self.system_prompt, self._last_obs, self.done = system["content"], user["content"], False
        return self._last_obs, {"pair": task // 2, "swapped": self.swapped, "expected": self.gold}

    def step(self, action: str):
        if self.done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        self.done = True
        reward, verdict = judge_reward(str(action), self.gold, self.item.exact)
        info: dict[str, Any] = {"correct": reward == 1.0, "success": reward == 1.0, "expected": self.gold,
                                "parsed": int(verdict.score) if verdict.parsed else None,
                                "metrics": self._metrics(verdict)}
        if not verdict.parsed:
            info["error"] = verdict.reason
            self._last_obs = f"Your verdict could not be read: {verdict.reason}. The label was {self.gold}."
        else:
            self._last_obs = f"Your verdict: {int(verdict.score)}. The label: {self.gold}. Reward {reward:g}."
        return self._last_obs, reward, True, False, info

    def _metrics(self, verdict: Verdict) -> dict[str, float]:
        """Direction right, strength exact, parsed, and whether the verdict prefers A (position bias)."""
        s = verdict.score if verdict.parsed else 0.0
        return {"accuracy": float(s * self.gold > 0), "exact": float(s == self.gold), "parsed": float(verdict.parsed),
                "says_a": float(s < 0)}

    # -- oracle -------------------------------------------------------------------
    def _rationale(self) -> str:
        worse = "A" if self.gold > 0 else "B"
        if not self.item.wrong_turns:
            return f"The label says Assistant {'B' if worse == 'A' else 'A'}'s response is better."
        turns = ", ".join(map(str, self.item.wrong_turns))
        return (f"Assistant {worse}'s running total is wrong at turn(s) {turns} ({len(self.item.wrong_turns)} of "
                f"{self.item.horizon}); the other assistant's totals are all right.")

    def oracle_action(self) -> str:
        """The label's strength after a rationale (procedural pairs: which turns the worse side got wrong)."""
        return f"{THINK_PREFIX}{self._rationale()}\n</think>\n<answer>{self.gold}</answer>"

    def wrong_action(self, rng: np.random.Generator) -> str:
        """A well-formed verdict for the other side."""
        return f"{THINK_PREFIX}</think>\n<answer>{-self.gold}</answer>"
