"""Turn an episode into what its page shows: per turn the prompt, the action, the env's reply, the reward, token heat map.

Everything here is plain data (strings and numbers); the templates escape it.
Heat-map colours are one of `BUCKETS` CSS classes picked from the token's
probability exp(log-prob), so no style is built from run content.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from longhorizon.store.feedback import Label, episode_stages, tool_call_names
from longhorizon.types import Trajectory

BUCKETS = 10


@dataclass
class TokenView:
    text: str
    logprob: float
    bucket: int  # 0 (p near 0, red) .. BUCKETS - 1 (p near 1, green)


@dataclass
class TurnView:
    index: int
    observation: str
    prompt: str | None  # the decoded prompt ids, when the tokenizer is available
    action: str
    reply: str | None  # the env's answer to this action (the next observation)
    reply_role: str
    reward: float
    tokens: list[TokenView]
    tool_calls: list[str]
    stages: list[str]
    labels: list[Label] = field(default_factory=list)


def bucket(logprob: float) -> int:
    p = math.exp(min(0.0, logprob)) if math.isfinite(logprob) else 0.0
    return min(BUCKETS - 1, int(p * BUCKETS))


def token_views(ids: list[int], logprobs: list[float], tokenizer: Any | None) -> list[TokenView]:
    """One view per sampled token: its text (or `#id` without a tokenizer), log-prob and colour bucket."""
    texts = (tokenizer.decode_batch([[i] for i in ids], skip_special_tokens=False) if tokenizer is not None and ids
             else [f"#{i} " for i in ids])
    return [TokenView(text, float(lp), bucket(float(lp))) for text, lp in zip(texts, logprobs)]


def replies(traj: Trajectory) -> list[tuple[str | None, str]]:
    """(the env's reply to each turn, its role): the next turn's observation, the final observation after the last."""
    final = traj.metadata.get("final_observation")
    nexts = [t.observation for t in traj.turns[1:]] + [final if isinstance(final, str) else None]
    return [(text, str(turn.info.get("role", "user"))) for text, turn in zip(nexts, traj.turns)]


def decode(tokenizer: Any | None, ids: list[int]) -> str | None:
    """The text of `ids` with special tokens kept (the chat template is part of what the model saw)."""
    return tokenizer.decode(ids, skip_special_tokens=False) if tokenizer is not None and ids else None


def turn_views(traj: Trajectory, tokenizer: Any | None, labels: list[Label]) -> list[TurnView]:
    stages = episode_stages(traj)
    views = []
    for t, (turn, (reply, role)) in enumerate(zip(traj.turns, replies(traj))):
        prompt = decode(tokenizer, turn.prompt_ids)
        views.append(TurnView(
            index=t, observation=turn.observation, prompt=prompt, action=turn.action, reply=reply, reply_role=role,
            reward=turn.reward, tokens=token_views(turn.action_ids, turn.action_logprobs, tokenizer),
            tool_calls=tool_call_names(turn.action), stages=[name for name, ts in stages.items() if t in ts],
            labels=[label for label in labels if label.turn == t and label.kind != "stage_rating"]))
    return views


def episode_id(source: str, index: int) -> str:
    """The episode's id inside its run: `trajectories.jsonl#3`."""
    return f"{source}#{index}"
