"""`longhorizon/StepCritic-v0`: train a step critic with RL on the first wrong step our verifiers label (DeepCritic).

After DeepCritic (Yang et al., arXiv 2505.00662; code github.com/RUCBM/DeepCritic), methods-2.md §2. One
turn: the observation is the step critic's prompt (`feedback/critic.py`'s `critique_messages`: the system
message is `CRITIC_SYSTEM`, the user message the problem and the solution's steps numbered `Step i:`),
nothing is pre-filled (`Judge.critique` pre-fills nothing), and the agent critiques the steps in order, each
critique ending `#### The correctness of Step i is: \\boxed{1}` (or `\\boxed{-1}`), stops at the first wrong
one and answers `**Answer**: \\boxed{k}`: that step, or -1 when every step is right. The answer is read by
the critic's own parser (`parse_critique`: the last answer counts; none, or one that is neither -1 nor a
step 1..n, is unparsable), so a critic trained here is scored exactly as `Judge.critique` reads it, and
hostile output (no tags, two answers, out of range, 100k characters) gets a defined reward and the reason
in `info["error"]`.

Reward, DeepCritic's RL outcome reward as methods-2.md reads it (`critic.critic_reward`):
    r = 1.0 if k == k* (the labelled first wrong step, -1 for a right solution) else 0.0 (also unparsable)

Solutions (`source`): env seed s plays the source env at seed s with the noisy oracle
(`NoisyOraclePolicy(p_correct, seed=0)`: each step the oracle's with probability `p_correct`, else a
well-formed wrong one), labels it with the verifier (`critic.first_error`) and splits it into steps
(`critic.solution_steps`); `source_spec` is that episode. The default knobs are those of the critic part
of `benchmarks/judges.py` (the quickstart's Execution task, 4 turns, every turn played), so a critic trained
here is measured there on the same (problem, steps, label), and its held-out evaluation (env seeds
1000000..) judges the benchmark's very solutions.
- execution: Execution-v0, `horizon` turns of one key each (`dict_size` words, values in ±`value_range`),
  every turn played (`stop_on_error: false`); a step is a turn's running total.
- compose: Compose-v0 in multi mode, `horizon` chained problems (at most 32); a step is one answer.
- countdown: Countdown-v0 (level 0.5k); a step is one of the solution's three equations (`horizon` does
  not apply). The noisy oracle's wrong solution misses the target at its last equation: labels -1 or 3.

Choices (methods-2.md leaves them open or the paper has no counterpart):
1. the solutions and their labels are our envs' and verifiers' (DeepCritic: PRM800K human step labels, or
   Monte-Carlo rollouts from each prefix);
2. the oracle critique (`oracle_action`, the SFT data of `longhorizon demos`) is written by rule: each step
   up to the first wrong one gets one sentence that works it out (Execution: the keys' values added to the
   previous total; Compose: the variable the previous answer gives and the problem's answer; Countdown:
   the verifier's check) and its verdict. DeepCritic's SFT critiques are written by Qwen2.5-72B (an initial
   and an in-depth critique per step, merged into one reflective monologue); ours never re-check;
3. the reward is the exact first-error index, methods-2.md's reading [UNVERIFIED in the paper]; the
   per-step verdicts are not rewarded (`step_accuracy` reports them);
4. no stop string: a critique ends at `\\boxed{k}`, whose `}` no stop string can tell from the per-step
   verdicts', and `Judge.critique` stops only at end-of-turn.

Step `info`: `correct` and `success` (the reward is 1), `expected` (k*), `parsed` (k, or None), `error`
(why the answer could not be read), `metrics` {accuracy (k == k*), parsed, says_none (k == -1: a critic
that always says so scores the share of right solutions), step_accuracy (the share of its per-step verdicts
on steps 1..k* (all steps when k* = -1) that are right: the steps before k* are right, k* is wrong; 0 when
it judged none of them)}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from longhorizon.envs.compose.env import MAX_PROBLEMS, ComposeEnv
from longhorizon.envs.core.base import TextEnv
from longhorizon.envs.core.knobs import Int, Knobs, Real, set_knobs
from longhorizon.envs.execution.env import ExecutionEnv
from longhorizon.envs.execution.words import WORDS
from longhorizon.feedback.critic import (Critique, critique_messages, first_error, parse_critique,
                                         solution_steps)
from longhorizon.feedback.judges import episode_text
from longhorizon.types import Trajectory

if TYPE_CHECKING:
    from longhorizon.rollout import EpisodeSpec

SOURCES = {"execution": "longhorizon/Execution-v0", "compose": "longhorizon/Compose-v0",
           "countdown": "longhorizon/Countdown-v0"}


class StepCriticKnobs(Knobs):
    """StepCritic's knobs (defaults: the critic part of benchmarks/judges.py)."""

    source: Literal[tuple(SOURCES)] = Field("execution", description="the judged solutions: 'execution' (Execution-v0 "
                                            "running totals), 'compose' (Compose-v0 multi-turn answers) or "
                                            "'countdown' (Countdown-v0's three equations)")
    horizon: Int = Field(4, ge=1, le=256, description="steps of the judged solution: Execution turns, Compose "
                         f"problems (at most {MAX_PROBLEMS}); countdown: unused (3 equations)")
    p_correct: Real = Field(0.7, ge=0.0, le=1.0, description="the noisy oracle's probability of the right step "
                            "(1: every solution is right)")
    dict_size: Int = Field(2, ge=1, le=len(WORDS), description="execution: words in the dictionary")
    value_range: Int = Field(1, ge=1, description="execution: values are integers in [-value_range, value_range]")

    @model_validator(mode="after")
    def _compose_fits(self) -> StepCriticKnobs:
        if self.source == "compose" and self.horizon > MAX_PROBLEMS:
            raise ValueError(f"horizon is at most {MAX_PROBLEMS} with source compose, got {self.horizon}")
        return self


def source_spec(knobs: StepCriticKnobs, seed: int) -> EpisodeSpec:
    """The episode env seed `seed` judges: the source env at that seed, with its knobs."""
    from longhorizon.rollout import EpisodeSpec  # the rollout package loads torch: only when an env is reset

    kwargs = {"execution": {"horizon": knobs.horizon, "turn_complexity": 1, "dict_size": knobs.dict_size,
                            "value_range": knobs.value_range, "stop_on_error": False},
              "compose": {"mode": "multi", "n_problems": knobs.horizon}, "countdown": {}}[knobs.source]
    return EpisodeSpec(SOURCES[knobs.source], seed=seed, env_kwargs=kwargs)


def play(spec: EpisodeSpec, p_correct: float) -> Trajectory:
    """The judged solution: the noisy oracle's episode of `spec`, as `benchmarks/judges.py` plays it."""
    from longhorizon.rollout import NoisyOraclePolicy, run_episodes

    return run_episodes([spec], NoisyOraclePolicy(p_correct, seed=0))[0]


def format_critique(notes: list[str], k: int) -> str:
    """DeepCritic's completion: each step's note and verdict up to step k (all steps when k = -1), the answer."""
    n = k if k > 0 else len(notes)
    parts = [f"{notes[i - 1]}\n#### The correctness of Step {i} is: \\boxed{{{-1 if i == k else 1}}}"
             for i in range(1, n + 1)]
    return "\n\n".join(parts + [f"**Answer**: \\boxed{{{k}}}"])


# ------------------------------------------------------------------ the oracle's note on each step


def _gives(traj: Trajectory, i: int) -> str:
    parsed = traj.turns[i - 1].info.get("parsed")
    return f"the step gives {parsed}" if parsed is not None else "the step gives no readable answer"


def _source_env(traj: Trajectory, kwargs: dict[str, Any], cls: type[TextEnv]) -> Any:
    """The source env reset at the episode's seed: what its verifier knows (the dictionary, the answers)."""
    env = cls(**kwargs)
    env.reset(seed=traj.seed)
    return env


def execution_notes(traj: Trajectory, kwargs: dict[str, Any]) -> list[str]:
    env, notes = _source_env(traj, kwargs, ExecutionEnv), []
    for i, (keys, total) in enumerate(zip(env.keys, env.totals), start=1):
        values = [env.dictionary[key] for key in keys]
        looked = ", ".join(f"{key} is {v}" for key, v in zip(keys, values))
        notes.append(f"Step {i}: {looked}, so the running total is {total - sum(values)} + ({sum(values)}) = "
                     f"{total}; {_gives(traj, i)}.")
    return notes


def compose_notes(traj: Trajectory, kwargs: dict[str, Any]) -> list[str]:
    env = _source_env(traj, kwargs, ComposeEnv)
    return [f"Step {i}: " + (f"[answer{i - 1}] = {env.answers[i - 2]} gives [variable{i}] = {problem.value}, so "
                             if i > 1 else "") + f"Problem {i}'s answer is {problem.answer}; {_gives(traj, i)}."
            for i, problem in enumerate(env.problems, start=1)]


def countdown_notes(traj: Trajectory, kwargs: dict[str, Any]) -> list[str]:
    error, wrong = str(traj.turns[-1].info.get("error", "")), first_error(traj)
    return [f"Step {i}: {error.removeprefix(f'step {i}: ')}." if i == wrong else
            f"Step {i}: {step} is exact and uses only numbers still available."
            for i, step in enumerate(solution_steps(traj), start=1)]


NOTES: dict[str, Callable[[Trajectory, dict[str, Any]], list[str]]] = {
    "execution": execution_notes, "compose": compose_notes, "countdown": countdown_notes}


class StepCriticEnv(TextEnv):
    """Find the first wrong step of a solution, DeepCritic style; rewarded against the verifier's label."""

    REWARD: ClassVar[str] = "DeepCritic's critic reward, one turn: 1 if the answer is the first wrong step (or -1), else 0"
    Knobs = StepCriticKnobs
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {
        "short": {"horizon": 1},
        "default": {},
        "long": {"horizon": 32, "dict_size": 20, "value_range": 9},
        "compose": {"source": "compose"},
        "countdown": {"source": "countdown"},
    }
    response_prefix = ""  # `Judge.critique` pre-fills nothing

    def __init__(self, render_mode: str | None = None, **knobs: Any):
        super().__init__(render_mode)
        self.knobs = set_knobs(self, StepCriticKnobs, knobs)
        self.done = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        task = seed if seed is not None else int(self.np_random.integers(2**31))
        self.task_spec = source_spec(self.knobs, task)
        self.episode = play(self.task_spec, self.p_correct)
        self.gold, self.steps = first_error(self.episode), solution_steps(self.episode)
        system, user = critique_messages(episode_text(self.episode)[0], self.steps)
        self.system_prompt, self._last_obs, self.done = system["content"], user["content"], False
        return self._last_obs, {"expected": self.gold, "n_steps": len(self.steps)}

    def step(self, action: str):
        if self.done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        self.done = True
        critique = parse_critique(str(action), len(self.steps))
        reward = float(critique.first_error == self.gold)  # critic_reward, parsed once: DeepCritic (methods-2.md §2) [UNVERIFIED]
        info: dict[str, Any] = {"correct": reward == 1.0, "success": reward == 1.0, "expected": self.gold,
                                "parsed": critique.first_error, "metrics": self._metrics(critique)}
        if critique.first_error is None:
            info["error"] = critique.reason
            self._last_obs = f"Your critique could not be read: {critique.reason}. The label was {self.gold}."
        else:
            self._last_obs = f"Your answer: {critique.first_error}. The label: {self.gold}. Reward {reward:g}."
        return self._last_obs, reward, True, False, info

    def _metrics(self, critique: Critique) -> dict[str, float]:
        """Answer right, parsed, says no step is wrong, and the share of right verdicts on steps 1..k*."""
        k, last = critique.first_error, self.gold if self.gold > 0 else len(self.steps)
        judged = [ok == (i != self.gold) for i, ok in critique.steps.items() if 1 <= i <= last]
        return {"accuracy": float(k == self.gold), "parsed": float(k is not None), "says_none": float(k == -1),
                "step_accuracy": float(np.mean(judged)) if judged else 0.0}

    # -- oracle -------------------------------------------------------------------
    def oracle_action(self) -> str:
        """A critique that works out each step up to the first wrong one, then names it (or -1)."""
        return format_critique(NOTES[self.source](self.episode, self.task_spec.env_kwargs), self.gold)

    def wrong_action(self, rng: np.random.Generator) -> str:
        """A well-formed critique whose answer is another step (or -1)."""
        k = int(rng.choice([k for k in [-1, *range(1, len(self.steps) + 1)] if k != self.gold]))
        return format_critique([f"Step {i}: I check it." for i in range(1, len(self.steps) + 1)], k)
