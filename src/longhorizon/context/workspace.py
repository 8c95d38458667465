"""`workspace`: IterResearch's workspace reconstruction (Chen et al., Tongyi Lab, arXiv 2511.07327).

Each round the model writes an updated report, then its action:

    <report>everything learned so far, in a few lines</report>
    <the action the env should see, e.g. <answer>12</answer>>

The prompt of round t >= 1 is rebuilt from four things only (methods.md §7:
s_t = (q, M_t, a_{t-1}, TR_{t-1})), as one user message:

    Question:\\n{o_0}\\n\\nReport:\\n{M_t}\\n\\nLast action:\\n{a_{t-1}}\\n\\nLast observation:\\n{o_t}

Round 0's prompt is the question alone. The system prompt (the env's, if any)
gets `INSTRUCTIONS` appended, which explain this format. The context stays
O(1) in the number of rounds.

The env sees only the action: `env_action` drops everything up to the last
`</report>` (an answer that opens `<report>` but never closes it has no
action, so the env gets "" and answers with its usual error). `Turn.action`
keeps the whole text the model wrote. The answer is pre-filled with
`<report>` (instead of the env's own prefix, e.g. `<answer>`, which would end
the answer before any report is written).

Training: one row per round (exact prompt ids, then the sampled ids; mask on
the sampled ids only, which include the report). EAPO's discounted rewards
`r_t = gamma^(T-t) R_T` are credit assignment, not context: the trainer's
credit (`train/credit.py`, per_turn credit) gives them to each turn's tokens.

Departures from the paper:
1. no `<think>` block: a model may think inside the report or before the action;
2. a round without a (closed) report keeps the previous report M_t
   (IterResearch assumes a well-formed report every round);
3. the env's response prefix is not pre-filled (see above).
"""

from __future__ import annotations

import re
from typing import Any

from longhorizon.context.base import ContextStrategy, EpisodeView, chat_ids, per_turn_samples
from longhorizon.types import Sample, Trajectory

REPORT_RE = re.compile(r"<report>(.*?)</report>", re.DOTALL)
INSTRUCTIONS = (
    "Work in rounds. Each round, first write your updated report inside <report></report>: everything you "
    "have learned so far that you will need later. Then write your action. Each round you see only the "
    "question, your latest report, your last action and what it returned."
)
EMPTY = "(empty)"


def last_report(text: str) -> str | None:
    """The contents of the last closed `<report>` in text (None if there is none)."""
    found = REPORT_RE.findall(text)
    return found[-1].strip() if found else None


def action_part(text: str) -> str:
    """What follows the last `</report>`; "" if a report was opened but not closed; else all of it."""
    if "</report>" in text:
        return text.rsplit("</report>", 1)[1].strip()
    return "" if "<report>" in text else text


def current_report(episode: EpisodeView) -> str:
    """M_t: the newest report written so far."""
    for turn in reversed(episode.turns):
        if (report := last_report(turn.action)) is not None:
            return report
    return EMPTY


def workspace_text(episode: EpisodeView) -> str:
    """The one user message of the next round (IterResearch's reconstructed workspace)."""
    if not episode.turns:
        return episode.observation
    return (f"Question:\n{episode.task}\n\nReport:\n{current_report(episode)}\n\n"
            f"Last action:\n{action_part(episode.turns[-1].action) or EMPTY}\n\n"
            f"Last observation:\n{episode.observation}")


class Workspace(ContextStrategy):
    """Question + evolving report + last action + last observation, nothing else."""

    name = "workspace"

    def build_prompt(self, episode: EpisodeView, tokenizer: Any) -> list[int]:
        system = f"{episode.system_prompt}\n\n{INSTRUCTIONS}" if episode.system_prompt else INSTRUCTIONS
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": workspace_text(episode)}]
        return chat_ids(tokenizer, msgs, episode.tools)

    def to_samples(self, trajectory: Trajectory) -> list[Sample]:
        """One row per round (exact prompt ids + sampled ids, mask on the sampled ids only)."""
        return per_turn_samples(trajectory)

    def response_prefix(self, env_prefix: str) -> str:
        return "<report>"

    def env_action(self, text: str) -> str:
        return action_part(text)
