"""A DeepCritic-style step critic: find the first wrong step of a multi-step answer or a multi-turn episode.

DeepCritic (Yang et al., arXiv 2505.00662, methods-2.md §2; format from its code
`critique_template_new.txt`): the critic reads a problem and a solution whose steps
are numbered `Step i:`, critiques the steps in order, each ending with
`#### The correctness of Step <i> is: \\boxed{1}` (or `\\boxed{-1}`), stops at the
first wrong one, and answers `**Answer**: \\boxed{k}`: the first wrong step, or -1
when every step is right.

Labels come from our envs' verifiers, which know exactly which step is wrong
(`FIRST_ERROR`, by env id; 1-indexed, -1 for none):
- Execution-v0: a step is a turn; the first turn whose running total is wrong.
- Compose-v0: multi mode, a step is a turn (one problem); single mode, a step is
  problem k's final answer; the first wrong answer.
- Countdown-v0: a step is one of the solution's three equations; the step the
  verifier rejects ("step k: ..."), the last one when the final result misses the
  target, 1 when no solution could be read.

Uses:
- `critic_reward(text, gold)`: the RL reward for training a critic, 1 if its
  answer is the labelled index, else 0 (DeepCritic's RL reward is UNVERIFIED;
  this is methods-2.md's reading).
- `steps_before_error(k, n)`: the critic as a reward for a policy: the fraction of
  the n steps before the first error, (k - 1) / n, and 1 when k = -1.
- `critique_messages` / `parse_critique`: the prompt and the parsed verdicts; the
  per-step critiques are the critique text Critique-GRPO can condition on.
Parsing never raises: an unusable critique gives k = None and a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from longhorizon.types import Trajectory

CRITIC_SYSTEM = (
    "You are a careful critic. The solution below is split into numbered steps. Check the steps in order. For "
    "each step, think about whether it is correct, and end its critique with '#### The correctness of Step <i> "
    "is: \\boxed{1}' if it is correct or '\\boxed{-1}' if it is not. Stop at the first incorrect step. Finally "
    "write '**Answer**: \\boxed{k}' where k is the number of the first incorrect step, or -1 if all steps are correct."
)
ANSWER_RE = re.compile(r"\*\*Answer\*\*:?\s*\\boxed\{\s*(-?\d+)\s*\}", re.IGNORECASE)
STEP_RE = re.compile(r"correctness of Step\s*(\d+)\s*is:?\s*\\boxed\{\s*(-?1)\s*\}", re.IGNORECASE)
STEP_ERROR_RE = re.compile(r"^step (\d+):")


# ------------------------------------------------------------------ labels from the verifiers


def _first_wrong(flags: list[bool]) -> int:
    return next((i + 1 for i, ok in enumerate(flags) if not ok), -1)


def execution_first_error(traj: Trajectory) -> int:
    return _first_wrong([bool(t.info.get("correct")) for t in traj.turns])


def compose_first_error(traj: Trajectory) -> int:
    if traj.turns and "per_problem_correct" in traj.turns[-1].info:  # single mode: one turn, every answer
        return _first_wrong(list(traj.turns[-1].info["per_problem_correct"]))
    return _first_wrong([bool(t.info.get("correct")) for t in traj.turns])


def countdown_first_error(traj: Trajectory) -> int:
    info = traj.turns[-1].info if traj.turns else {}
    if traj.success:
        return -1
    error = str(info.get("error", ""))
    if m := STEP_ERROR_RE.match(error):
        return int(m.group(1))
    return 3 if error.startswith("the last result") else 1  # missed target: the last equation; unreadable: step 1


FIRST_ERROR: dict[str, Callable[[Trajectory], int]] = {
    "longhorizon/Execution-v0": execution_first_error,
    "longhorizon/Compose-v0": compose_first_error,
    "longhorizon/Countdown-v0": countdown_first_error,
}


def first_error(traj: Trajectory) -> int:
    """The verifier's first wrong step of an episode (1-indexed), or -1 when every step is right."""
    if traj.env_id not in FIRST_ERROR:
        raise ValueError(f"no step labels for {traj.env_id}: step critics are labelled on {', '.join(FIRST_ERROR)}")
    return FIRST_ERROR[traj.env_id](traj)


# ------------------------------------------------------------------ the critic's input and output


def turn_steps(traj: Trajectory) -> list[str]:
    """Each turn is a step (after the first, with the observation it answered)."""
    return [t.action if i == 0 else f"(after: {t.observation.strip()[:500]}) {t.action}" for i, t in enumerate(traj.turns)]


def compose_steps(traj: Trajectory) -> list[str]:
    info = traj.turns[-1].info if traj.turns else {}
    if "per_problem_correct" in info:  # single mode: problem k's final answer is step k
        return [f"Problem {k}: {value}" for k, value in enumerate(info.get("parsed") or [], start=1)]
    return turn_steps(traj)


def countdown_steps(traj: Trajectory) -> list[str]:
    """The solution's equations (the last <Solution> block's lines); the whole answer when none can be read."""
    blocks = re.findall(r"<Solution>(.*?)</Solution>", traj.turns[-1].action, re.DOTALL) if traj.turns else []
    lines = [line.strip() for line in (blocks[-1] if blocks else "").splitlines() if line.strip()]
    return lines or ([traj.turns[-1].action] if traj.turns else [])


STEPS: dict[str, Callable[[Trajectory], list[str]]] = {
    "longhorizon/Execution-v0": turn_steps,
    "longhorizon/Compose-v0": compose_steps,
    "longhorizon/Countdown-v0": countdown_steps,
}


def solution_steps(traj: Trajectory) -> list[str]:
    """The numbered steps a critic reads, aligned with `first_error`'s numbering (turns for other envs)."""
    return STEPS.get(traj.env_id, turn_steps)(traj)


def critique_messages(problem: str, steps: list[str]) -> list[dict[str, str]]:
    numbered = "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, start=1))
    return [{"role": "system", "content": CRITIC_SYSTEM},
            {"role": "user", "content": f"[Problem]\n{problem}\n\n[Solution]\n{numbered}"}]


@dataclass(frozen=True)
class Critique:
    """The critic's first wrong step (`None` if unusable), its per-step verdicts {step: ok}, and why not."""

    first_error: int | None
    steps: dict[int, bool]
    reason: str


def parse_critique(text: str, n_steps: int | None = None) -> Critique:
    """`**Answer**: \\boxed{k}` (the last one counts) and the per-step verdicts; never raises."""
    steps = {int(i): v == "1" for i, v in STEP_RE.findall(text)}
    answers = ANSWER_RE.findall(text)
    if not answers:
        return Critique(None, steps, "no **Answer**: \\boxed{k}")
    k = int(answers[-1])
    if k == 0 or k < -1 or (n_steps is not None and k > n_steps):
        return Critique(None, steps, f"answer {k} is not a step (1..{n_steps or 'n'}) or -1")
    return Critique(k, steps, "")


def critic_reward(text: str, gold: int, n_steps: int | None = None) -> float:
    """1 if the critique's answer is the labelled first wrong step (or -1 for a right solution), else 0."""
    return float(parse_critique(text, n_steps).first_error == gold)


def steps_before_error(k: int | None, n_steps: int) -> float:
    """The critic's verdict as a policy reward: (k - 1) / n, 1 when nothing is wrong, 0 when unusable."""
    if k is None or n_steps <= 0:
        return 0.0
    return 1.0 if k == -1 else (k - 1) / n_steps
