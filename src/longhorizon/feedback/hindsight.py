"""Chain of Hindsight (Liu, Sferrazza, Abbeel, arXiv 2302.02676): preference pairs as feedback-conditioned
conversations, to fine-tune on with `algorithm: sft`.

    rows = hindsight_conversations(load_pairs("pairs.jsonl"), formats=("p", "n", "pn", "np"))
    write_conversations("coh.jsonl", rows)     # then: algorithm: sft, demonstrations: coh.jsonl

    longhorizon prefs coh PAIRS --out coh.jsonl [--formats p,n,pn,np] [--aux]

What the official code does (`coh/data/pack_hf.py` @ 9f55cea, methods.md §12 and methods-2.md §0):
- every reply is preceded by the user's turn and a feedback marker, "A helpful answer:" before the
  chosen reply and "An unhelpful answer:" before the rejected one, and followed by an end of sequence;
- four formats: p (the chosen conversation alone), n (the rejected alone), pn (chosen, then rejected),
  np (rejected, then chosen);
- `aux` replaces the two markers by 12 pairs of auxiliary phrasings ("The following is a better
  response." / "... worse response.", ...): one sequence per format and phrasing pair. The code's default
  is `p,n,pn,np,aux`; here `aux` is off unless asked for, so that inference can condition on the
  default positive marker, as the paper does;
- loss: the user turns and the markers carry none, every reply (good or bad) and its end of sequence do.

How it maps here:
- A sequence is a chat conversation in TRL's `messages` format; the SFT trainer
  (`train/demonstrations.py`) puts the loss on each assistant message and its end-of-turn token, on
  nothing else, which is CoH's mask.
- The marker is appended to the user message that precedes each assistant message ("\\n\\n" + marker):
  for a multi-turn continuation, every observation the agent answered gets it, as the official code marks
  every assistant turn of a multi-turn dialogue. At inference the `feedback_marker` wrapper appends the
  same text to every observation (`--wrap feedback_marker` in `longhorizon eval`, or `eval.wrappers`).
- In pn and np the second conversation repeats the context without its system messages (one system
  prompt per sequence).
- Plain-text pairs become one user message (context + marker) and one assistant message.
- Ties carry no good/bad signal and are skipped.
Not built: the pretraining-corpus regulariser (pt_loss_weight 0.01, optional in the paper) and the random
masking of past tokens (recalled from the paper, absent from the code).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from longhorizon.errors import UserError
from longhorizon.feedback.preferences import PreferencePair, Text
from longhorizon.io import atomic_write

FORMATS = ("p", "n", "pn", "np")
GOOD_MARKER, BAD_MARKER = "A helpful answer:", "An unhelpful answer:"
# coh/data/pack_hf.py DIALOGUE: the auxiliary phrasings, good and bad in the same order.
AUX_GOOD = ("The following is a better response.", "The following is a more helpful response.",
            "The following is a more harmless response.", "The following is a better chat.",
            "The following is a more helpful chat.", "The following is a more harmless chat.",
            "Generate a better response.", "Generate a more helpful response.", "Generate a more harmless response.",
            "Generate a better chat.", "Generate a more helpful chat.", "Generate a more harmless chat.")
AUX_BAD = ("The following is a worse response.", "The following is a less helpful response.",
           "The following is a more harmful response.", "The following is a worse chat.",
           "The following is a less helpful chat.", "The following is a more harmful chat.",
           "Generate a worse response.", "Generate a less helpful response.", "Generate a more harmful response.",
           "Generate a worse chat.", "Generate a less helpful chat.", "Generate a more harmful chat.")


def with_marker(text: str, marker: str) -> str:
    """An observation or prompt followed by a feedback marker (what the `feedback_marker` wrapper shows)."""
    return f"{text}\n\n{marker}"


def marked(context: Text, continuation: Text, marker: str, system: bool = True) -> list[dict[str, Any]]:
    """One side of a pair as messages, the marker after every user turn that an assistant message answers."""
    if isinstance(continuation, str):
        return [{"role": "user", "content": with_marker(str(context), marker)},
                {"role": "assistant", "content": continuation}]
    messages = [m.model_dump() for m in (*context, *continuation)]
    if not system:
        messages = [m for m in messages if m["role"] != "system"]
    for i, message in enumerate(messages[:-1]):
        if message["role"] in ("user", "tool") and messages[i + 1]["role"] == "assistant":
            message["content"] = with_marker(message["content"], marker)
    if not any(m["role"] == "assistant" for m in messages):
        raise UserError("a preference pair's continuation has no assistant message to learn")
    return messages


def hindsight_conversations(pairs: Iterable[PreferencePair], formats: Sequence[str] = FORMATS,
                            aux: bool = False) -> list[dict[str, Any]]:
    """CoH training conversations (`{"messages": [...], "metadata": {...}}` rows), for every decided pair, format
    and marker pair (the default two, or the 12 auxiliary pairs with `aux`)."""
    if bad := [f for f in formats if f not in FORMATS]:
        raise UserError(f"unknown Chain-of-Hindsight format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
    markers = list(zip(AUX_GOOD, AUX_BAD)) if aux else [(GOOD_MARKER, BAD_MARKER)]
    rows = []
    for index, pair in enumerate(pairs):
        if pair.preferred == "tie":
            continue
        for good, bad in markers:
            sides = {"p": (pair.chosen, good), "n": (pair.rejected, bad)}
            for fmt in formats:
                messages: list[dict[str, Any]] = []
                for k, key in enumerate(fmt):  # "pn": chosen then rejected; the second copy without system
                    continuation, marker = sides[key]
                    messages += marked(pair.context, continuation, marker, system=k == 0)
                rows.append({"messages": messages, "metadata": {"format": fmt, "pair": index, "good_marker": good}})
    return rows


def write_conversations(path: str | Path, rows: list[dict[str, Any]],
                        empty: str = "no Chain-of-Hindsight conversation to write: every pair was a tie") -> Path:
    """One conversation per line, atomically (a file `algorithm: sft` reads as `demonstrations`); `empty` is the
    error when there is none."""
    if not rows:
        raise UserError(empty)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, text)
