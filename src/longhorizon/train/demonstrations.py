"""What `algorithm.name: sft` trains on: demonstrations as training rows (`Sample`s), one list per demonstration.

`demonstrations: PATH` is one of
- a trajectories JSONL file (`longhorizon demos`, `save_trajectories`, a run's trajectories/*.jsonl):
  episodes whose turns carry token ids are used as recorded (token-in, token-out, as the RL loop trains on
  them), after a check that the ids belong to this tokenizer; text-only episodes (oracle demonstrations) are
  replayed in their env with the context strategy (`rollout.demos.replay_tokens`). Either way the rows are
  the strategy's `to_samples`, so the mask covers the agent's tokens only;
- a conversation JSONL file, or a `datasets` directory (`save_to_disk`), in TRL's conversational format:
  a `messages` list of `{"role", "content"}` per row (and optionally `tools`). Each conversation is one
  packed row; the mask covers each assistant message's text and its end-of-turn token, nothing else (TRL's
  `assistant_only_loss`). The context strategy does not apply: the conversation is taken as written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from longhorizon.context import ContextStrategy
from longhorizon.context.base import encode, render
from longhorizon.errors import UserError
from longhorizon.rollout.demos import replay_tokens
from longhorizon.types import Sample, Trajectory

Demonstration = Trajectory | dict[str, Any]  # an episode, or a conversation row {"messages": [...], "tools": ...}


def read_demonstrations(path: str | None) -> list[Demonstration]:
    """The episodes or conversations at `path`; every malformed input is a one-line user error naming it."""
    source = Path(str(path))
    if not source.exists():
        raise UserError(f"demonstrations: no such file or directory {path} (write one with `longhorizon demos ENV "
                        "--episodes N --out FILE`)")
    rows = _dataset_rows(source) if source.is_dir() else _jsonl_rows(source)
    demos = [_demonstration(row, source, i) for i, row in enumerate(rows)]
    if not demos:
        raise UserError(f"demonstrations: {path} holds no demonstration")
    return demos


def _jsonl_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            try:
                rows += [json.loads(line)] if line.strip() else []
            except json.JSONDecodeError as err:
                raise UserError(f"demonstrations: {path} line {lineno} is not JSON ({err.msg})") from None
    return rows


def _dataset_rows(path: Path) -> list[dict[str, Any]]:
    import datasets

    try:
        return list(datasets.load_from_disk(str(path)))
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"demonstrations: {path} is not a datasets directory saved with save_to_disk ({err})") from None


def _demonstration(row: Any, path: Path, i: int) -> Demonstration:
    """Row i as a Trajectory (it has `turns`) or a conversation (it has `messages`)."""
    if isinstance(row, dict) and "turns" in row and "env_id" in row:
        try:
            return Trajectory.from_dict(row)
        except TypeError as err:
            raise UserError(f"demonstrations: {path} row {i} is not a trajectory ({err})") from None
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list) or not all(isinstance(m, dict) and {"role", "content"} <= m.keys()
                                                   for m in messages):
        raise UserError(f"demonstrations: {path} row {i} is neither a trajectory (env_id, turns) nor a conversation "
                        "(messages: a list of {role, content})")
    if not any(m["role"] == "assistant" for m in messages):
        raise UserError(f"demonstrations: {path} row {i} has no assistant message to learn from")
    return {"messages": messages, "tools": row.get("tools")}


def check_held_out(demos: list[Demonstration], env_id: str, seeds: range, path: str) -> None:
    """Demonstrations of the held-out tasks (same env, a held-out seed) would leak the eval's answers."""
    leaked = sorted({d.seed for d in demos if isinstance(d, Trajectory) and d.env_id == env_id and d.seed in seeds})
    if leaked:
        raise UserError(f"demonstrations: {path} holds episodes of held-out eval seeds ({', '.join(map(str, leaked[:3]))}"
                        f"{', ...' if len(leaked) > 3 else ''}); write demonstrations with other seeds (`longhorizon demos"
                        " --seed`) or move eval.seed")


# ------------------------------------------------------------------ rows


def demonstration_samples(demos: list[Demonstration], strategy: ContextStrategy, tokenizer: Any, path: str,
                          prefill: bool = True, stop: tuple[str, ...] = ()) -> list[list[Sample]]:
    """Each demonstration's training rows, in order (see the module docstring)."""
    text_only = [d for d in demos if isinstance(d, Trajectory) and not _has_tokens(d)]
    replayed = iter(replay_tokens(text_only, strategy, tokenizer, prefill, stop)) if text_only else iter(())
    out = []
    for demo in demos:
        if isinstance(demo, dict):
            out.append([conversation_sample(tokenizer, demo["messages"], demo["tools"])])
        elif _has_tokens(demo):
            check_tokens(demo, tokenizer, path)
            out.append(_to_samples(strategy, demo, path))
        else:
            out.append(_to_samples(strategy, next(replayed), path))
    return out


def _has_tokens(traj: Trajectory) -> bool:
    return any(turn.action_ids for turn in traj.turns)


def check_tokens(traj: Trajectory, tokenizer: Any, path: str) -> None:
    """Recorded ids must be this tokenizer's: in its vocabulary, and decoding to the recorded action text."""
    vocab = len(tokenizer)
    for turn in traj.turns:
        ids = turn.prompt_ids + turn.action_ids
        decoded = tokenizer.decode(turn.action_ids, skip_special_tokens=True) if max(ids, default=0) < vocab else None
        if decoded is None or min(ids, default=0) < 0 or not turn.action.endswith(decoded):
            raise UserError(f"demonstrations: {path}: demonstration tokens do not match the tokenizer "
                            f"({traj.env_id}, seed {traj.seed})")


def _to_samples(strategy: ContextStrategy, traj: Trajectory, path: str) -> list[Sample]:
    try:
        return strategy.to_samples(traj)
    except ValueError as err:
        raise UserError(f"demonstrations: {path}: the {strategy.name} context cannot train on {traj.env_id} "
                        f"seed {traj.seed} as recorded ({err})") from None


def conversation_sample(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict] | None = None) -> Sample:
    """One packed row of a conversation; mask 1 on each assistant message's text and end-of-turn token only.

    Segment j is what the template adds for message j (a chat rendered as a prefix of its extension), the
    assistant's opened by the generation prompt, so the prompt ids are the ones the model sees when it answers.
    """
    ids, mask, turns = [], [], []
    before = ""
    for j, message in enumerate(messages):
        opens = j + 1 < len(messages) and messages[j + 1]["role"] == "assistant"
        text = render(tokenizer, messages[: j + 1], tools, opens)
        if not text.startswith(before):
            raise UserError("the chat template does not render a conversation as a prefix of its extension; "
                            "conversation demonstrations need one that does")
        head, learned, tail = _segment(tokenizer, text[len(before):], message)
        for part, on in ((head, 0), (learned, 1), (tail, 0)):
            part_ids = encode(tokenizer, part) if part else []
            ids, mask, turns = ids + part_ids, mask + [on] * len(part_ids), turns + [j if on else -1] * len(part_ids)
        before = text
    return Sample(input_ids=ids, loss_mask=mask, old_logprobs=[0.0] * len(ids), token_turns=turns)


def _segment(tokenizer: Any, segment: str, message: dict[str, Any]) -> tuple[str, str, str]:
    """(before, learned, after) of message j's segment: the learned part is an assistant's content + end-of-turn."""
    content = str(message["content"])
    if message["role"] != "assistant" or content not in segment:
        return segment, "", ""
    start = segment.rindex(content)
    end = start + len(content)
    if segment.startswith(tokenizer.eos_token, end):
        end += len(tokenizer.eos_token)
    return segment[:start], segment[start:end], segment[end:]
