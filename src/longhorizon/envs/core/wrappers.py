"""Feedback wrappers: try-again, feedback loops, turn limits.

`TryAgain` and `FeedbackLoop` turn an env whose episode ends in one verifiable
answer (a step that terminates with `info["correct"]`, such as
`longhorizon/Execution-v0` with `horizon=1`) into a multi-attempt episode.

How the same task is presented again (the replay mechanism). The wrapped env
is left untouched: the wrapper remembers the seed and options of `reset` and,
after a wrong answer ends the inner episode, resets the inner env with that
same seed and options, which rebuilds the identical task (every longhorizon
env is deterministic given its seed; the wrapper checks that the rebuilt first
observation is identical and raises otherwise). The inner env stays the
verifier: each attempt is one ordinary `step` on a fresh copy of the task, so
`info["correct"]`, `info["error"]` (unparseable answer), `info["parsed"]` and
`info["expected"]` come from the env's own rules. `reset(seed=None)` draws the
task seed from a generator seeded by the last explicit seed, so a seeded
wrapper stays deterministic. Multi-turn envs also work: an attempt is then a
whole inner episode, the non-final steps pass through unchanged, the verdict
is the final step's `info["success"]` (else `info["correct"]`) and the answer
is the final action.

Answers are compared after normalisation (UFO's `_minimal_normalize_answer`:
lowercase, whitespace removed), on the env's parsed value `info["parsed"]`
when the env reports one, else on the raw action. An unparseable answer (the
inner step set `info["error"]`) has no answer value: it is a format error.

Also here: `TurnLimit` (truncate at a turn limit), the name -> class registry
`WRAPPERS` and `apply_wrappers(env, specs)` for the CLI. Goal reminders are
the context option `reminder_every` (`context/reminder.py`), not an env
wrapper; a wrapper changes the task they restate by overriding `agent_spec`
(`envs/base.py`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from longhorizon.envs.core.base import clip_text
from longhorizon.feedback.corrections import Corrections  # mid-episode corrections (YAY Robot)

Step = tuple[str, SupportsFloat, bool, bool, dict[str, Any]]
FINAL_KEYS = ("success", "metrics")


# -- shared helpers ---------------------------------------------------------------


def normalise_answer(text: Any) -> str:
    """UFO's minimal normalisation: lowercase and drop all whitespace."""
    return re.sub(r"\s+", "", str(text).strip().lower())


def answer_key(action: str, info: dict[str, Any]) -> str | None:
    """The answer an attempt gave, normalised; None for an unparseable answer."""
    if info.get("error"):
        return None
    parsed = info.get("parsed")
    return normalise_answer(action if parsed is None else parsed)


def verdict(info: dict[str, Any]) -> bool:
    """Whether the finished inner episode was solved."""
    return bool(info.get("success", info.get("correct", False)))


def format_error_line(error: str | None) -> str:
    return f"Your answer could not be read: {error}.\n" if error else ""


def _check_number(name: str, value: Any, low: float, high: float = float("inf")) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not (low <= value <= high):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")


def _check_count(name: str, value: Any, low: int = 1) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class Attempt:
    """One answered attempt: the raw action, its normalised answer (None: format error), the verdict."""

    action: str
    key: str | None
    correct: bool
    error: str | None
    repeated: bool  # the same answer was given in an earlier attempt


class RetryWrapper(gym.Wrapper):
    """Shared replay mechanics of `TryAgain` and `FeedbackLoop` (see the module docstring)."""

    def __init__(self, env: gym.Env, max_attempts: int):
        super().__init__(env)
        _check_count("max_attempts", max_attempts)
        self.max_attempts = max_attempts
        self._seed_rng: np.random.Generator | None = None
        self._task_seed, self._options, self.task = 0, None, ""
        self.attempts: list[Attempt] = []
        self._finished = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._task_seed, self._options = self._draw_seed(seed), options
        obs, info = self.env.reset(seed=self._task_seed, options=options)
        self.task, self.attempts, self._finished = obs, [], False
        return obs, info

    def _draw_seed(self, seed: int | None) -> int:
        if seed is not None:
            self._seed_rng = np.random.default_rng(seed)
            return int(seed)
        if self._seed_rng is None:
            self._seed_rng = np.random.default_rng()
        return int(self._seed_rng.integers(2**31 - 1))

    def _replay(self) -> None:
        """Rebuild the same task in the inner env for the next attempt."""
        obs, _ = self.env.reset(seed=self._task_seed, options=self._options)
        if obs != self.task:
            raise RuntimeError("the wrapped env is not deterministic given its seed; it cannot be replayed")

    def _oracle(self) -> str | None:
        try:  # through the inner wrappers, like the rollout's oracle (a wrapper may define its own)
            return self.env.get_wrapper_attr("oracle_action")()
        except (AttributeError, NotImplementedError):
            return None

    def _inner_step(self, action: str) -> tuple[Step, str | None]:
        """Step the inner env; also return the oracle's answer for the same state (the ground truth)."""
        if self._finished:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        truth = self._oracle()
        return self.env.step(action), truth

    def _record(self, action: str, info: dict[str, Any]) -> Attempt:
        key = answer_key(action, info)
        repeated = key is not None and any(a.key == key for a in self.attempts)
        error = info.get("error")
        attempt = Attempt(str(action), key, verdict(info), str(error) if error else None, repeated)
        self.attempts.append(attempt)
        return attempt

    def unique_answer_ratio(self) -> float:
        """E/T of UFO: distinct answers over valid (parseable) answers; 1.0 when there are none."""
        keys = [a.key for a in self.attempts if a.key is not None]
        return len(set(keys)) / len(keys) if keys else 1.0


def _carry_info(info: dict[str, Any], final: bool) -> dict[str, Any]:
    """The inner step's info; the inner end-of-episode keys are dropped unless the wrapper ends too."""
    return dict(info) if final else {k: v for k, v in info.items() if k not in FINAL_KEYS}


# -- TryAgain (UFO) -----------------------------------------------------------------


class TryAgain(RetryWrapper):
    """Unary feedback: after a wrong answer the agent is only told to try again.

    From "A Simple 'Try Again' Can Elicit Multi-Turn LLM Reasoning" (UFO, Liu et
    al., arXiv 2507.14295; code github.com/lichengliu03/unary-feedback). The
    episode ends at the first correct answer (terminated, success) or after
    `max_attempts` answers (terminated, failure: running out of attempts is
    failing the task, not a time limit).

    Reward of attempt t (0-based, as `1.0 / (2 ** step_num)` in UFO's
    `metamathqa/env.py` with `step_num` starting at 0):

        r_t = decay**t * 1[correct_t] - format_penalty * 1[answer t unparseable]

    and on the last attempt additionally the UFO answer-diversity penalty

        - repeat_penalty * (1 - E / T)

    with E the number of distinct normalised answers and T the number of
    parseable answers of the episode (UFO's lambda = 0.5; the term is 0 when
    T = 0). Defaults follow UFO: decay 0.5, repeat_penalty 0.5,
    format_penalty 0.1, max_attempts 5 (UFO's max_turn).

    Departures from UFO: the paper shows the question plus all previous
    attempts, which here is the context strategy's job (the observation after a
    wrong answer is only `retry_message`: the paper's "Let's try again"; UFO's
    code says "Incorrect. Please try again."); UFO's `es_manager` adds the
    format penalty to an episode-level penalty once per invalid turn, here it
    is paid on the step it happens (same total); the diversity penalty's
    placement at the episode end follows the UFO README formula R = sum_t r_t -
    lambda(1 - E/T) (not checked against the training code); an unparseable
    answer is also explained (`info["error"]` quoted in the observation, a repo
    rule), which is format feedback, not correctness feedback.

    `info`: `attempt` (1-based), `correct`, `repeated`; on the last step
    `success` and `metrics` = the inner env's metrics plus `solved`,
    `attempts` (Succ@k = solved and attempts <= k), `unique_answer_ratio`
    (E/T) and `repeat_penalty` (the penalty paid).
    """

    def __init__(
        self,
        env: gym.Env,
        max_attempts: int = 5,
        decay: float = 0.5,
        repeat_penalty: float = 0.5,
        format_penalty: float = 0.1,
        retry_message: str = "Let's try again.",
    ):
        super().__init__(env, max_attempts)
        _check_number("decay", decay, 0.0, 1.0)
        _check_number("repeat_penalty", repeat_penalty, 0.0)
        _check_number("format_penalty", format_penalty, 0.0)
        self.decay, self.repeat_penalty, self.format_penalty = decay, repeat_penalty, format_penalty
        self.retry_message = str(retry_message)

    def step(self, action: str) -> Step:
        (obs, reward, terminated, truncated, info), _ = self._inner_step(action)
        if not (terminated or truncated):
            return obs, reward, terminated, truncated, info
        t = len(self.attempts)
        attempt = self._record(action, info)
        reward = self.decay**t * attempt.correct  # UFO: r_t = gamma^t * 1[correct], t 0-based
        reward -= self.format_penalty * (attempt.error is not None)
        final = attempt.correct or len(self.attempts) >= self.max_attempts
        out = _carry_info(info, final) | {"attempt": t + 1, "correct": attempt.correct, "repeated": attempt.repeated}
        if final:
            penalty = self._diversity_penalty()
            reward -= penalty
            out |= self._final_info(info, attempt, penalty)
            self._finished = True
            return self._final_obs(obs, attempt), float(reward), True, False, out
        self._replay()
        return format_error_line(attempt.error) + self.retry_message, float(reward), False, False, out

    def _diversity_penalty(self) -> float:
        return self.repeat_penalty * (1.0 - self.unique_answer_ratio())  # UFO: lambda * (1 - E/T)

    def _final_info(self, info: dict[str, Any], attempt: Attempt, penalty: float) -> dict[str, Any]:
        metrics = dict(info.get("metrics", {})) | {
            "solved": float(attempt.correct), "attempts": float(len(self.attempts)),
            "unique_answer_ratio": self.unique_answer_ratio(), "repeat_penalty": penalty,
        }
        return {"success": attempt.correct, "metrics": metrics}

    def _final_obs(self, obs: str, attempt: Attempt) -> str:
        if attempt.correct:
            return obs
        left = f"That is not correct, and no attempts are left ({self.max_attempts} used)."
        return format_error_line(attempt.error) + left


# -- FeedbackLoop (Feedback Friction) ---------------------------------------------------


@dataclass(frozen=True)
class FeedbackContext:
    """What a feedback generator may look at after a wrong answer."""

    env_id: str | None
    task: str  # the task as first shown to the solver
    answer: str  # the solver's raw answer
    parsed: Any  # the env's parsed answer (`info["parsed"]`), else the raw answer
    expected: Any  # the ground truth: `info["expected"]`, else the oracle's action
    error: str | None  # why the answer could not be read, if it could not
    round: int  # 1 for the feedback after the first wrong answer


FeedbackFn = Callable[[FeedbackContext], str]


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def numeric_feedback(answer: float, expected: float, noun: str = "answer") -> str:
    """Direction and rough size of the error, without the value."""
    direction = "too high" if answer > expected else "too low"
    size = "less than 10" if abs(answer - expected) < 10 else "10 or more"
    return f"Your {noun} is {direction} (off by {size})."


def sequence_feedback(answer: Any, expected: Any) -> str:
    """Which parts (word tokens) of the answer are wrong, and whether its length is."""
    got, want = re.findall(r"\w+", str(answer)), re.findall(r"\w+", str(expected))
    wrong = [i + 1 for i, (a, b) in enumerate(zip(got, want)) if a != b]
    notes = []
    if len(got) != len(want):
        notes.append(f"Your answer has {len(got)} parts but the correct answer has {len(want)}.")
    if len(wrong) == 1:
        notes.append(f"Part {wrong[0]} (counting from 1) is wrong.")
    elif wrong:
        notes.append(f"Parts {', '.join(map(str, wrong[:20]))} (counting from 1) are wrong.")
    return " ".join(notes) or "Your answer is not in the expected form."


def rule_feedback(ctx: FeedbackContext) -> str:
    """Generic targeted feedback: format problems, too high / too low, or which parts are wrong."""
    if ctx.error:
        return "Your answer could not be read, so it cannot be right. Give it in the required format."
    got, want = _as_number(ctx.parsed), _as_number(ctx.expected)
    if got is not None and want is not None:
        return numeric_feedback(got, want)
    return sequence_feedback(ctx.parsed, ctx.expected)


def execution_feedback(ctx: FeedbackContext) -> str:
    """Execution-v0: the running total is too high or too low; re-check the lookups and additions."""
    got, want = _as_number(ctx.parsed), _as_number(ctx.expected)
    if ctx.error or got is None or want is None:
        return rule_feedback(ctx)
    return numeric_feedback(got, want, "running total") + " Re-check the value of each key and your additions."


# Per-env rule-based feedback; envs not listed get `rule_feedback`.
RULE_FEEDBACK: dict[str, FeedbackFn] = {
    "longhorizon/Execution-v0": execution_feedback,
}

MODEL_FEEDBACK_PROMPT = """You are a teacher giving feedback to a student whose answer was wrong.

Task given to the student:
{task}

The student's answer:
{answer}
{error}
The correct answer (for you only; the student must not see it):
{expected}

Write short, targeted feedback (at most a few sentences) that tells the student what is wrong with the
answer and how to find the mistake. Do NOT reveal the correct answer, not even partly, and do not state
it in any form.
Feedback:"""


def redact(text: str, secret: Any) -> str:
    """Replace whole-token occurrences of the ground truth with [redacted]."""
    secret = "" if secret is None else str(secret).strip()
    if not secret:
        return text
    return re.sub(rf"(?<![\w]){re.escape(secret)}(?![\w])", "[redacted]", text)


@dataclass
class ModelFeedback:
    """Feedback written by a model: `generate(prompt) -> text` is any text-generation callable.

    The prompt holds the task, the wrong answer and the ground truth, and asks
    the model not to reveal the answer (Feedback Friction's strong-model
    feedback with access to the ground truth). With `redact`, occurrences of
    the ground truth in the reply are replaced by `[redacted]` as a backstop.
    """

    generate: Callable[[str], str]
    template: str = MODEL_FEEDBACK_PROMPT
    redact: bool = True
    max_chars: int = 2000

    def prompt(self, ctx: FeedbackContext) -> str:
        error = f"(It could not be read: {ctx.error}.)\n" if ctx.error else ""
        return self.template.format(task=ctx.task, answer=clip_text(ctx.answer, self.max_chars),
                                    error=error, expected=ctx.expected)

    def __call__(self, ctx: FeedbackContext) -> str:
        text = str(self.generate(self.prompt(ctx))).strip()
        return clip_text(redact(text, ctx.expected) if self.redact else text, self.max_chars)


class FeedbackLoop(RetryWrapper):
    """Targeted feedback from a generator that sees the ground truth, then another attempt.

    From "Feedback Friction: LLMs Struggle to Fully Incorporate External
    Feedback" (Jiang et al., arXiv 2506.11930): solve -> if wrong, a feedback
    model with access to the ground truth writes targeted feedback -> retry
    with the history, up to 10 iterations (`max_attempts`, default 10).

    Generators: `feedback="rule"` (default; `RULE_FEEDBACK[env_id]` if the env
    has one, else `rule_feedback`), `feedback="model"` with `generate`, a
    `generate(prompt) -> str` callable (see `ModelFeedback`), or any callable
    `FeedbackContext -> str`.

    Reward (the paper is an evaluation protocol and defines none; ours):
    `r = 1[correct] - format_penalty * 1[unparseable]` per attempt
    (format_penalty defaults to 0), so the return is 1 iff solved.

    The paper's mitigations: its rising sampling temperature per feedback round
    is not offered (it was removed: training samples and scores every turn
    with one temperature, so a per-attempt temperature would break the
    log-prob ratio); as an option:
    - `reject_repeats`: an answer equal to a previously rejected one is not
      judged again: the observation says so (also `info["error"]`), it costs
      no attempt and gets reward 0 (the paper's rejection sampling discards
      such samples before they are used). To keep episodes finite, after
      `max_rejections` rejected repeats the episode ends unsolved.

    `info`: `attempt`, `correct`, `repeated` (the answer equals an earlier
    one), `feedback` (the text, after a wrong answer), `round`; on the last
    step `success` and `metrics` = the inner env's metrics plus `solved`,
    `attempts`, `rounds` (feedback rounds given), `rounds_to_correct` (only
    when solved: rounds of feedback needed), `repeated_rejected` (1.0 if the
    solver ever repeated a rejected answer, the paper's feedback-resistance
    sign) and `repeats` (how many times).
    """

    def __init__(
        self,
        env: gym.Env,
        max_attempts: int = 10,
        feedback: str | FeedbackFn = "rule",
        generate: Callable[[str], str] | None = None,
        format_penalty: float = 0.0,
        reject_repeats: bool = False,
        max_rejections: int = 10,
        retry_message: str = "Please try again.",
    ):
        super().__init__(env, max_attempts)
        self.feedback_fn = self._pick_feedback(feedback, generate)
        _check_number("format_penalty", format_penalty, 0.0)
        _check_count("max_rejections", max_rejections)
        self.format_penalty, self.reject_repeats = format_penalty, bool(reject_repeats)
        self.max_rejections = max_rejections
        self.retry_message = str(retry_message)
        self.repeats = self.rejections = 0

    def _pick_feedback(self, feedback: str | FeedbackFn, generate: Callable[[str], str] | None) -> FeedbackFn:
        if feedback == "model":
            if not callable(generate):
                raise ValueError("feedback='model' needs generate, a callable prompt -> text")
            return ModelFeedback(generate)
        if feedback == "rule":
            spec = getattr(self.env.unwrapped, "spec", None)
            return RULE_FEEDBACK.get(spec.id if spec else "", rule_feedback)
        if callable(feedback):
            return feedback
        raise ValueError(f"feedback must be 'rule', 'model' or a callable, got {feedback!r}")

    # -- episode ---------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        self.repeats = self.rejections = 0
        return obs, info

    @property
    def rounds(self) -> int:
        """Feedback rounds given so far (= wrong attempts)."""
        return sum(not a.correct for a in self.attempts)

    def step(self, action: str) -> Step:
        ((obs, reward, terminated, truncated, info), truth) = self._inner_step(action)
        if not (terminated or truncated):
            return obs, reward, terminated, truncated, info
        key = answer_key(action, info)
        rejected = {a.key for a in self.attempts if not a.correct and a.key is not None}
        if key in rejected:
            self.repeats += 1
            if self.reject_repeats:
                return self._reject_repeat(key, info)
        return self._judge(action, obs, info, truth)

    def _reject_repeat(self, key: str, info: dict[str, Any]) -> Step:
        self.rejections += 1
        error = f"you already gave the answer {clip_text(key, 80)!r}, which was wrong; give a different answer"
        out = _carry_info(info, False) | {"error": error, "correct": False, "repeated": True, "round": self.rounds}
        if self.rejections >= self.max_rejections:
            obs = f"Rejected: {error}. Too many repeated answers; the episode is over."
            return self._finish(obs, 0.0, out, False, info)
        self._replay()
        return f"Rejected: {error}.", 0.0, False, False, out

    def _judge(self, action: str, obs: str, info: dict[str, Any], truth: str | None) -> Step:
        attempt = self._record(action, info)
        reward = float(attempt.correct) - self.format_penalty * (attempt.error is not None)
        out = _carry_info(info, False) | {"attempt": len(self.attempts), "correct": attempt.correct,
                                          "repeated": attempt.repeated}
        if attempt.correct:
            return self._finish(obs, reward, out, True, info)
        text = self.feedback_fn(self._context(action, info, truth))
        out |= {"feedback": text, "round": self.rounds}
        message = f"{format_error_line(attempt.error)}Feedback: {text}\n"
        if len(self.attempts) >= self.max_attempts:
            return self._finish(message + "No attempts are left; the episode is over.", reward, out, False, info)
        self._replay()
        return message + self.retry_message, reward, False, False, out

    def _context(self, action: str, info: dict[str, Any], truth: str | None) -> FeedbackContext:
        spec = getattr(self.env.unwrapped, "spec", None)
        parsed = info["parsed"] if info.get("parsed") is not None else action
        return FeedbackContext(spec.id if spec else None, self.task, str(action), parsed,
                               info.get("expected", truth), info.get("error"), self.rounds)

    def _finish(self, obs: str, reward: float, out: dict[str, Any], solved: bool, info: dict[str, Any]) -> Step:
        self._finished = True
        metrics = dict(info.get("metrics", {})) | {
            "solved": float(solved), "attempts": float(len(self.attempts)), "rounds": float(self.rounds),
            "repeated_rejected": float(self.repeats > 0), "repeats": float(self.repeats)}
        if solved:
            metrics["rounds_to_correct"] = float(self.rounds)
        return obs, reward, True, False, out | {"success": solved, "metrics": metrics}


# -- TurnLimit ------------------------------------------------------------------------------


class TurnLimit(gym.Wrapper):
    """Truncate the episode after `max_turns` turns.

    Gymnasium semantics: reaching the limit sets `truncated=True` (the task
    was not finished, it was cut off), never `terminated`; an episode that
    terminates on that same turn stays terminated. On truncation the
    observation says so, `info["turn_limit_reached"]` is True and, unless the
    env already gave them, `success` is False and `metrics` are the env's
    `metrics()` if it has that method, else empty.

    Reward: unchanged.
    """

    def __init__(self, env: gym.Env, max_turns: int):
        super().__init__(env)
        _check_count("max_turns", max_turns)
        self.max_turns, self.turn = max_turns, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.turn = 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action: str) -> Step:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.turn += 1
        if self.turn >= self.max_turns and not (terminated or truncated):
            truncated, info = True, self._truncation_info(info)
            obs = f"{obs}\n\nThe turn limit ({self.max_turns} turns) is reached. The episode is over."
        return obs, reward, terminated, truncated, info

    def _truncation_info(self, info: dict[str, Any]) -> dict[str, Any]:
        metrics = getattr(self.env.unwrapped, "metrics", None)
        out = dict(info) | {"turn_limit_reached": True}
        out.setdefault("success", False)
        out.setdefault("metrics", metrics() if callable(metrics) else {})
        return out


class PrivilegedHint(gym.Wrapper):
    """Show the env's oracle action as a hint, with probability `prob` per observation (a curriculum aid).

    The hint is part of the observation, so a policy reads it as prompt and is never trained to write it. The
    draw for turn t of the episode with env seed s depends only on (`seed`, s, t), so a resumed run shows the
    same hints. `info["hinted"]` says whether the observation the agent is answering carried one (training's
    `curriculum/hinted_frac`).
    """

    def __init__(self, env: gym.Env, prob: float, seed: int = 0):
        super().__init__(env)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"hint prob must be in [0, 1], got {prob}")
        self.prob, self.seed, self.episode_seed, self.turn, self.hinted = prob, seed, 0, 0, False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.episode_seed, self.turn = seed or 0, 0
        return self._hint(obs), info

    def step(self, action: str) -> Step:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info) | {"hinted": self.hinted}
        self.turn += 1
        return (obs if terminated or truncated else self._hint(obs)), reward, terminated, truncated, info

    def _hint(self, obs: str) -> str:
        rng = np.random.default_rng([self.seed, self.episode_seed, self.turn])
        self.hinted = bool(rng.random() < self.prob)
        if not self.hinted:
            return obs
        return f"{obs}\n\nHint: a correct next answer is: {self.env.get_wrapper_attr('oracle_action')()}"


class FeedbackMarker(gym.Wrapper):
    """Append a feedback marker to every observation the agent answers: Chain of Hindsight's inference-time
    conditioning ("A helpful answer:" by default; `feedback/hindsight.py` writes the training data with the
    same "\n\n" + marker after each observation)."""

    def __init__(self, env: gym.Env, text: str = "A helpful answer:"):
        super().__init__(env)
        if not isinstance(text, str) or not text.strip():
            raise ValueError("feedback_marker text must be a non-empty string")
        self.text = text

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return f"{obs}\n\n{self.text}", info

    def step(self, action: str) -> Step:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return (obs if terminated or truncated else f"{obs}\n\n{self.text}"), reward, terminated, truncated, info


# Critique-GRPO's refinement prompt (zhangxy-2019/critique-GRPO, refinement_prompts.py::refine_prompt), with the
# episode's first observation as the question, and the step-by-step and boxed-answer lines replaced by the env's own
# answer format; `train/critique.py` fills it in.
REFINE_TEMPLATE = """Given the following inputs:
**Question**: {task}
**Previous Solution**: {attempt}
**Critique**: {critique}

Please re-answer by:
- Correcting potential errors identified in the critique, if they exist.
- Giving each answer in the format the question asks for.

Ensure the revised solution addresses all issues raised in the critique."""


class Refine(gym.Wrapper):
    """The first observation asks for a refinement: the task, the previous attempt and its critique
    (Critique-GRPO); the later observations are the env's own."""

    def __init__(self, env: gym.Env, attempt: str, critique: str, template: str = REFINE_TEMPLATE):
        super().__init__(env)
        if not isinstance(critique, str) or not critique.strip():
            raise ValueError("refine needs a non-empty critique")
        self.attempt, self.critique, self.template = str(attempt), critique, template

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self.template.format(task=obs, attempt=self.attempt, critique=self.critique), info


# -- registry -----------------------------------------------------------------------------------

WRAPPERS: dict[str, type[gym.Wrapper]] = {
    "try_again": TryAgain,
    "feedback_loop": FeedbackLoop,
    "turn_limit": TurnLimit,
    "hint": PrivilegedHint,
    "feedback_marker": FeedbackMarker,
    "refine": Refine,
    "corrections": Corrections,
}


def apply_wrappers(env: gym.Env, specs: Sequence[dict[str, Any]]) -> gym.Env:
    """Wrap `env` with each `{"name": ..., **kwargs}` spec in order (the first spec is innermost)."""
    for spec in specs:
        kwargs = dict(spec)
        name = kwargs.pop("name", None)
        if name not in WRAPPERS:
            raise ValueError(f"unknown wrapper {name!r}; known: {', '.join(WRAPPERS)}")
        try:
            env = WRAPPERS[name](env, **kwargs)
        except TypeError as exc:
            raise ValueError(f"bad arguments for wrapper {name!r}: {exc}") from exc
    return env
