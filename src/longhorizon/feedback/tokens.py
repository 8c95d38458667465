"""Preference pairs as token ids: the context, then a continuation whose own tokens carry the loss mask.

    ids, mask = continuation_tokens(tokenizer, pair.context, pair.chosen)

Chat messages go through the tokenizer's chat template one message at a
time: segment j is the text the template adds for continuation message j
(with the generation prompt of the next assistant message when one
follows), so the ids are the context's prompt followed by every segment, and
the mask is 1 on the segments of assistant messages only (their text and the
template's end-of-turn tokens): the env's observations between the actions of a
trajectory never reach the loss. This needs a template that renders a
conversation as a prefix of its extension (ChatML and most others do).
Plain text is the context's tokens, then the continuation's, which are all masked in.
"""

from __future__ import annotations

from typing import Any

from longhorizon.context.base import encode, render
from longhorizon.errors import UserError
from longhorizon.feedback.preferences import Text


def _messages(text: Text) -> list[dict[str, Any]]:
    return [m.model_dump() for m in text]


def continuation_tokens(tokenizer: Any, context: Text, continuation: Text) -> tuple[list[int], list[int]]:
    """(ids, loss mask) of context + continuation; the mask covers the continuation's assistant tokens."""
    if isinstance(continuation, str):
        head = encode(tokenizer, context) if context else []
        tail = encode(tokenizer, continuation)
        return head + tail, [0] * len(head) + [1] * len(tail)
    msgs, cont = _messages(context), _messages(continuation)
    texts = [_render(tokenizer, msgs + cont[:j], cont[j:]) for j in range(len(cont) + 1)]
    ids, mask = encode(tokenizer, texts[0]), [0] * len(encode(tokenizer, texts[0]))
    for j, message in enumerate(cont):
        if not texts[j + 1].startswith(texts[j]):
            raise UserError("the chat template does not render a conversation as a prefix of its extension; "
                            "preference pairs of message lists need one that does")
        segment = encode(tokenizer, texts[j + 1][len(texts[j]):])
        ids += segment
        mask += [int(message["role"] == "assistant")] * len(segment)
    return ids, mask


def _render(tokenizer: Any, messages: list[dict[str, Any]], rest: list[dict[str, Any]]) -> str:
    """The template of `messages`, opening the next assistant message if it comes next."""
    return render(tokenizer, messages, None, bool(rest) and rest[0]["role"] == "assistant")
