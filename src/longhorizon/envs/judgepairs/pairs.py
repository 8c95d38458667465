"""The labelled pairs a judge is trained on: from a file, or made from Execution-v0's verifier.

    item = execution_item(pair=3, horizon=4, dict_size=8)   # an oracle episode against a perturbed one
    items = file_items("runs/prefs")                          # `longhorizon prefs build` output, JSONL, TRL datasets
    context, a, b, gold = shown(item, swap=True)              # A/B as the judge sees them, gold strength

Procedural pairs (no file needed): the task is Execution-v0's (seed = the pair index, `horizon` turns,
`dict_size` words). Response y+ answers every turn with the true running total (the oracle); response y-
answers m turns, m ~ U{1..H}, with the true total plus an offset in ±1..9 and the others right, so the two
differ in exactly m steps. Both are played through the Execution env, whose verifier gives returns H and
H - m: the higher return is preferred (as `longhorizon prefs build` labels), and the strength is
ceil(3 m / H) (ours: 1..3, the share of the steps that are wrong, on Think-RM's scale), negative because y+
is side `a`. Each side is rendered as the judge components render an episode (`judges.episode_text`), so a
judge trained here reads Execution episodes the way `judge_pairwise` shows them.

File pairs (`feedback/preferences.read_preferences`): each side as a judge reads it (`labellers.as_text`);
ties are dropped (Think-RM drops strength-0 pairs); a pair with a strength keeps it; a pair without one
(verifier labels carry none) has only a direction, and `exact` is False.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from longhorizon.errors import UserError
from longhorizon.feedback.judges import episode_text
from longhorizon.types import Trajectory, Turn

PAIR_SALT = 0x4A50  # separates the perturbation draws from Execution's own use of the seed


@dataclass(frozen=True)
class JudgeItem:
    """One labelled pair in its stored order: the label is Think-RM's strength, negative when `a` is better."""

    context: str
    a: str
    b: str
    strength: int  # -3..-1: a is better; 1..3: b is better
    exact: bool  # False: only the sign is a label (the source gave a direction, no strength)
    wrong_turns: tuple[int, ...] = ()  # procedural pairs: the 1-based turns the worse side got wrong
    horizon: int = 0  # procedural pairs: turns per episode


def shown(item: JudgeItem, swap: bool) -> tuple[str, str, str, int]:
    """(context, A, B, gold strength) as the judge sees the pair: swapped, A is `b` and the sign flips."""
    if swap:
        return item.context, item.b, item.a, -item.strength
    return item.context, item.a, item.b, item.strength


def strength_of(wrong: int, horizon: int) -> int:
    """ceil(3 m / H): 1..3 as the share of wrong steps grows (ours; the paper's labels are human strengths)."""
    return math.ceil(3 * wrong / horizon)


# ------------------------------------------------------------------ procedural: Execution-v0


def play(env, seed: int, answers: list[int]) -> Trajectory:
    """Run `answers` (one total per turn) through an Execution env from `seed`; the verified episode."""
    obs, _ = env.reset(seed=seed)
    traj = Trajectory(env_id="longhorizon/Execution-v0", seed=seed)
    for total in answers:
        action = f"<answer>{total}</answer>"
        nxt, reward, terminated, _, info = env.step(action)
        traj.turns.append(Turn(observation=obs, action=action, reward=float(reward), info=info))
        obs = nxt
        if terminated:
            break
    return traj


def execution_item(pair: int, horizon: int, dict_size: int) -> JudgeItem:
    """The oracle's episode of Execution task `pair` (side a) against one with m wrong totals (side b)."""
    from longhorizon.envs.execution.env import ExecutionEnv

    env = ExecutionEnv(horizon=horizon, dict_size=dict_size)
    env.reset(seed=pair)
    totals = list(env.totals)
    rng = np.random.default_rng([PAIR_SALT, pair, horizon, dict_size])
    m = int(rng.integers(1, horizon + 1))
    wrong = sorted(int(t) for t in rng.choice(horizon, size=m, replace=False))
    offsets = rng.integers(1, 10, size=m) * rng.choice([-1, 1], size=m)
    bad = list(totals)
    for t, off in zip(wrong, offsets):
        bad[t] += int(off)
    good_traj, bad_traj = play(env, pair, totals), play(env, pair, bad)
    if good_traj.total_reward - bad_traj.total_reward != m:
        raise RuntimeError(f"Execution's verifier disagrees with the perturbation of pair {pair}")
    context, a = episode_text(good_traj)
    return JudgeItem(context, a, episode_text(bad_traj)[1], -strength_of(m, horizon), True,
                     tuple(t + 1 for t in wrong), horizon)


# ------------------------------------------------------------------ from a file


@lru_cache(maxsize=8)
def _cached_items(path: str, mtime_ns: int) -> tuple[JudgeItem, ...]:
    from longhorizon.feedback.labellers import as_text
    from longhorizon.feedback.preferences import read_preferences

    items = []
    for p in read_preferences(path):
        if p.preferred == "tie":
            continue
        sign = -1 if p.preferred == "a" else 1
        strength = p.strength if p.strength is not None else sign
        side = p.model_dump(mode="json")  # messages as dicts, as `as_text` reads them
        items.append(JudgeItem(as_text(side["context"]), as_text(side["a"]), as_text(side["b"]), strength,
                               p.strength is not None))
    if not items:
        raise UserError(f"no labelled pairs to judge in {path} (ties are dropped)")
    return tuple(items)


def file_items(path: str | Path) -> tuple[JudgeItem, ...]:
    """The non-tied pairs of a pairs file or directory (read once per version of the file)."""
    from longhorizon.feedback.preferences import PREFERENCES_FILE

    path = Path(path)
    if not path.exists():
        raise UserError(f"no preference pairs at {path}")
    inner = path / PREFERENCES_FILE  # a `prefs build` directory: its file changes, not the directory
    version = max(p.stat().st_mtime_ns for p in (path, inner) if p.exists())
    return _cached_items(str(path.resolve()), version)
