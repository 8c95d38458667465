"""Data from mid-episode corrections (YAY Robot, methods-2.md §9): the policy's corrected turns, and the corrections
themselves for an instruction generator that learns to correct.

    trajectories = collect_corrections("longhorizon/Execution-v0", 64, policy, {"horizon": 8})   # teacher: rule
    write_conversations(out / "corrected_turns.jsonl", corrected_turn_rows(trajectories))   # (a) for the policy
    write_conversations(out / "corrections.jsonl", instruction_rows(trajectories))          # (b) for the generator

    longhorizon corrections ENV --episodes N --model M --out DIR [--teacher rule|MODEL] [--set KNOB=V]

The episodes run the policy through the `corrections` wrapper (`feedback/corrections.py`, outermost), so every
off-course turn that is not the last gets a correction in front of the next observation. Then:

(a) corrected turns: each turn that answered a corrected observation and that the teacher's judge finds right
    (`info["corrected"]` and not `info["off_course"]`) is one TRL `messages` conversation: the user message is
    the transcript up to that turn (`[environment]` / `[agent]` blocks, the wrong action and the correction
    included) and the assistant message is the action. A TRL conversation trains every assistant message,
    so the turns before are flattened into the user message: the loss falls on the corrected action only.
    (The policy meets the turn as a chat under its context strategy; the flattened transcript is the price
    of the mask. The earlier turns' actions are never trained on: one of them is the wrong one.)
(b) the instruction generator's data (YAY Robot's (observation, correction) pairs): each correction given is
    one conversation, user = `correction_prompt` (the transcript up to and including the off-course action),
    assistant = the correction. Train on it with `algorithm: sft`; the trained `RUN_DIR/model` is then a
    model teacher (`wrappers: [{name: corrections, teacher: RUN_DIR/model}]`), whose prompt is the same.
    YAY Robot fine-tunes its instructor on old data plus corrections, 10% of each batch from corrections
    (DAgger sampler); here the file holds corrections only, and mixing is left to the user.
Both files are read by `algorithm: sft` through `demonstrations:`. Episodes with no correction give no rows.
"""

from __future__ import annotations

from typing import Any

from longhorizon.errors import UserError
from longhorizon.feedback.corrections import correction_prompt, transcript
from longhorizon.rollout.runner import EpisodeSpec, run_episodes
from longhorizon.types import Trajectory

POLICY_PROMPT = "You are the agent in the conversation below. Write the agent's next message.\n\n{transcript}"


def with_corrections(wrappers: list[dict[str, Any]], teacher: str = "rule",
                     judge: str = "auto") -> list[dict[str, Any]]:
    """The wrappers, then the corrections wrapper outermost."""
    if any(spec.get("name") == "corrections" for spec in wrappers):
        raise UserError("corrections: the command adds the corrections wrapper itself (outermost); give its "
                        "teacher and judge with --teacher and --judge, not --wrap")
    return [*wrappers, {"name": "corrections", "teacher": teacher, "judge": judge}]


def collect_corrections(env_id: str, episodes: int, policy: Any, env_kwargs: dict[str, Any] | None = None,
                        seed: int = 0, wrappers: list[dict[str, Any]] | None = None, teacher: str = "rule",
                        judge: str = "auto") -> list[Trajectory]:
    """`episodes` episodes of `policy` (env seeds seed .. seed + episodes - 1) with the corrections wrapper on."""
    specs = [EpisodeSpec(env_id, seed=seed + k, env_kwargs=dict(env_kwargs or {}), group_id=k,
                         wrappers=with_corrections(list(wrappers or []), teacher, judge)) for k in range(episodes)]
    trajectories = run_episodes(specs, policy)
    for spec, traj in zip(specs, trajectories):
        traj.metadata.update(wrappers=spec.wrappers)
    return trajectories


def _history(traj: Trajectory, end: int) -> list[tuple[str, str]]:
    return [(turn.observation, turn.action) for turn in traj.turns[:end]]


def _metadata(traj: Trajectory, t: int, **more: Any) -> dict[str, Any]:
    return {"env_id": traj.env_id, "seed": traj.seed, "turn": t, **more}


def corrected_turn_rows(trajectories: list[Trajectory]) -> list[dict[str, Any]]:
    """(a): the right turns taken right after a correction, as conversations with the loss on the action only."""
    rows = []
    for traj in trajectories:
        for t, turn in enumerate(traj.turns):
            if turn.info.get("corrected") and not turn.info.get("off_course"):
                prompt = POLICY_PROMPT.format(transcript=transcript(_history(traj, t), turn.observation, limit=None))
                rows.append({"messages": [{"role": "user", "content": prompt},
                                          {"role": "assistant", "content": turn.action}],
                             "metadata": _metadata(traj, t, correction=traj.turns[t - 1].info.get("correction"))})
    return rows


def instruction_rows(trajectories: list[Trajectory]) -> list[dict[str, Any]]:
    """(b): the transcript up to each off-course action that was corrected -> the correction."""
    rows = []
    for traj in trajectories:
        for t, turn in enumerate(traj.turns):
            if turn.info.get("correction"):
                rows.append({"messages": [{"role": "user", "content": correction_prompt(_history(traj, t + 1))},
                                          {"role": "assistant", "content": turn.info["correction"]}],
                             "metadata": _metadata(traj, t, teacher=turn.info.get("correction_by"))})
    return rows


def summary(trajectories: list[Trajectory]) -> dict[str, int]:
    """Episodes, turns, off-course turns, corrections given, and corrected turns judged right."""
    turns = [turn.info for traj in trajectories for turn in traj.turns]
    return {"episodes": len(trajectories), "turns": len(turns),
            "off_course": sum(bool(i.get("off_course")) for i in turns),
            "corrections": sum(bool(i.get("correction")) for i in turns),
            "heeded": sum(bool(i.get("corrected")) and not i.get("off_course") for i in turns)}
