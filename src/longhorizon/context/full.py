"""`full`: the whole history, as one growing chat.

Token-in, token-out: the prompt for turn t is the prompt of turn t-1, then the
exact ids the model sampled at turn t-1, then the template tokens that close
that assistant message and wrap the new observation. Earlier tokens are never
re-tokenised, so the final prompt plus the last action is one packed sequence
that contains every turn's prompt as a prefix, and training on it sees exactly
what the model saw. This needs a chat template that renders a conversation
as a prefix of its extension (ChatML and most others do); otherwise
`build_prompt` raises with an explanation.
"""

from __future__ import annotations

from typing import Any

from longhorizon.context.base import ContextStrategy, EpisodeView, encode, render
from longhorizon.types import Sample, Trajectory


def chat_messages(episode: EpisodeView, upto: int) -> list[dict[str, str]]:
    """System prompt, then (observation, action) for turns < upto, then the observation of turn `upto`."""
    msgs = [{"role": "system", "content": episode.system_prompt}] if episode.system_prompt else []
    for t, turn in enumerate(episode.turns[:upto]):
        msgs.append({"role": _role(episode, t), "content": turn.observation})
        msgs.append({"role": "assistant", "content": turn.action})
    current = episode.turns[upto].observation if upto < len(episode.turns) else episode.observation
    msgs.append({"role": _role(episode, upto), "content": current})
    return msgs


def _role(episode: EpisodeView, t: int) -> str:
    if t < len(episode.roles):
        return episode.roles[t]
    return episode.role if t == len(episode.turns) else "user"


class FullHistory(ContextStrategy):
    name = "full"

    def build_prompt(self, episode: EpisodeView, tokenizer: Any) -> list[int]:
        t = len(episode.turns)
        now = render(tokenizer, chat_messages(episode, t), episode.tools, True)
        if t == 0:
            return encode(tokenizer, now)
        last = episode.turns[-1]
        before = render(tokenizer, chat_messages(episode, t - 1), episode.tools, True)
        return last.prompt_ids + last.action_ids + encode(tokenizer, _suffix(tokenizer, before, now, last))

    def to_samples(self, trajectory: Trajectory) -> list[Sample]:
        """One packed sequence per episode; the mask is 1 on each turn's sampled ids only."""
        turns = trajectory.turns
        if not turns:
            return []
        ids = turns[-1].prompt_ids + turns[-1].action_ids
        mask, logprobs, turn_of = [0] * len(ids), [0.0] * len(ids), [-1] * len(ids)
        for t, turn in enumerate(turns):
            start, end = len(turn.prompt_ids), len(turn.prompt_ids) + len(turn.action_ids)
            if ids[:end] != turn.prompt_ids + turn.action_ids:
                raise ValueError("turn prompts are not prefixes of the final sequence; was this episode run with `full`?")
            mask[start:end] = [1] * (end - start)
            logprobs[start:end] = turn.action_logprobs
            turn_of[start:end] = [t] * (end - start)
        return [Sample(input_ids=ids, loss_mask=mask, old_logprobs=logprobs, token_turns=turn_of)]


def _suffix(tokenizer: Any, before: str, now: str, last) -> str:
    """Template text that follows the sampled action: closes it and opens the next turn."""
    if not now.startswith(before + last.action):
        raise ValueError(
            "the chat template does not render the history as a prefix of its extension; "
            "use a windowed or workspace context strategy with this model"
        )
    suffix = now[len(before) + len(last.action) :]
    eos = tokenizer.eos_token
    if last.action_ids and last.action_ids[-1] == tokenizer.eos_token_id and suffix.startswith(eos):
        suffix = suffix[len(eos) :]  # the model already sampled the end-of-turn token
    return suffix
