"""Mid-episode language corrections (Yell At Your Robot, Shi et al., arXiv 2403.12910; methods-2.md §9).

    env = Corrections(gymnasium.make("longhorizon/Execution-v0", horizon=8))     # the rule teacher
    wrappers: [{name: corrections}]                        # the same from a recipe (off unless listed)
    wrappers: [{name: corrections, teacher: runs/gen/model}]   # a model writes the corrections

After each agent turn a teacher judges whether the agent went off course; if it did, and the episode goes
on, a short correction in words is put in front of the next observation ("Correction: Stop — ...\n\n" then
the env's own observation). It is prompt, never loss: the context strategies train only on sampled tokens.
`rollout/corrections.py` turns such episodes into the two datasets (`longhorizon corrections`).

What YAY Robot does (its code, methods-2.md §9): an operator pauses the robot and speaks a correction; the
low-level policy executes it at once, from the state the robot is in; (observation, correction) pairs are
saved and the high-level policy, which writes the instructions, is fine-tuned on them (10% of each batch).
How it maps here, with the choices the paper leaves open for text:

1. When a turn is off course (`judge`): `auto` (default) takes the verifier's per-turn verdict
   `info["correct"]` where the env gives one (Execution, Compose, Tabletop's `done`, LongWrite), else an
   action the env rejected (`info["error"]`), else an action that differs from the env's oracle action for
   the same state (compared after whitespace and case are dropped). `verifier` never compares with the oracle
   (use it on tool envs, whose many fine actions an exact match would flag); `oracle` always does.
2. The env state: no env can undo a step, as a robot cannot undo a motion, so the wrong turn stands. It
   keeps its reward (0 on Execution), the episode's success is lost where the env needs every turn right,
   and the episode continues from the state the wrong action left. On the last turn there is nothing to
   continue, so no correction is given (and with Execution's `stop_on_error` the first wrong turn is last).
3. What the correction changes: only the agent's next observation, except where an env keeps a model of
   the agent's own state (`RESYNC`). Execution tracks the agent's own running total (for its step accuracy
   and its oracle, which continue from the agent's last answer); the rule correction states the true total,
   so it resets that total to it: afterwards the oracle and `step_correct` continue from the corrected
   total. A model's correction may state anything, so it changes nothing in the env.
4. The rule teacher's words (`rule_correction`, per env `RULE_CORRECTIONS`): Execution names each key of
   the turn with its value and the true total ("Stop — the value of apple is 3, so the running total is 10,
   not 12. Continue from 10."); an env whose step reports the answer (`info["expected"]`) gets "the answer
   was X, not Y"; other envs the oracle's action for the state ("The right action there was: ...").
5. The model teacher (`teacher:` a registered model name or a model directory, or `generate=` a callable):
   the rule still decides *when* to correct; the model writes *what* to say, greedily, from
   `correction_prompt` (the transcript up to and including the off-course action, no ground truth): the
   same prompt as the instruction generator's data, so a model trained on that data is the teacher that
   closes the loop. Its reply is cut to `max_chars` (and `max_new_tokens`); an empty reply falls back to the
   rule's words (`info["correction_by"]`). Each correction is one unbatched call; loaded models are shared
   by every env of the process.
6. Not from the paper: the paper's operator also gives new instructions when the robot is not off course,
   and its instructor picks from a finite set of seen instructions; here the teacher only corrects, in free
   text, and what it sees is the text transcript.

Reward: unchanged. `info` of each step: `off_course`, `corrected` (the observation this action answered
carried a correction), `corrections` (so far), and `correction` / `correction_by` when one is given; on
the last step `metrics` gains `corrections` (given in the episode) and `corrections_heeded` (corrected turns
judged right), which training logs as `env/corrections`. Put the wrapper outermost, so that the episode's
last step reaches it (an outer `turn_limit` would end the episode without it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym

from longhorizon.envs.core.base import clip_text
from longhorizon.errors import UserError

Step = tuple[str, SupportsFloat, bool, bool, dict[str, Any]]
HEADER = "Correction:"
JUDGES = ("auto", "verifier", "oracle")


@dataclass(frozen=True)
class CorrectionContext:
    """What the rule teacher looks at after an off-course turn."""

    env: gym.Env  # the wrapped env, after the step (read it; do not step it)
    action: str  # the agent's action
    info: dict[str, Any]  # the step's info (correct, expected, parsed, error, turn, ...)
    truth: str | None  # the oracle's action for the state the agent acted in (None: the env has no oracle)


CorrectionFn = Callable[[CorrectionContext], str]


# ------------------------------------------------------------------ the judge


def normalise(text: Any) -> str:
    """Lowercase, all whitespace dropped (as `envs.core.wrappers.normalise_answer`)."""
    return re.sub(r"\s+", "", str(text).strip().lower())


def off_course(action: str, info: dict[str, Any], truth: str | None, judge: str = "auto") -> bool:
    """Whether the turn went off course (see choice 1 of the module docstring)."""
    if judge != "oracle" and "correct" in info:
        return not info["correct"]
    if info.get("error"):
        return True
    if judge != "verifier" and truth is not None:
        return normalise(action) != normalise(truth)
    return False


# ------------------------------------------------------------------ the rule teacher's words


def rule_correction(ctx: CorrectionContext) -> str:
    """Any env: the answer it expected, else the oracle's action for the state, else what was rejected."""
    info, error = ctx.info, ctx.info.get("error")
    if info.get("expected") is not None:
        if error:
            return f"Stop — your answer could not be read ({error}); the answer was {info['expected']}."
        return f"Stop — the answer was {info['expected']}, not {info.get('parsed', ctx.action)}."
    why = str(error) if error else "that was not the right action"
    if ctx.truth is not None:
        return f"Stop — {why}. The right action there was: {clip_text(ctx.truth, 200)}"
    return f"Stop — {why}."


def execution_correction(ctx: CorrectionContext) -> str:
    """Execution-v0: each key of the turn with its value, and the true running total to continue from."""
    env, info = ctx.env.unwrapped, ctx.info
    keys, total = env.keys[info["turn"] - 1], info["expected"]
    looked_up = _lookups({k: env.dictionary[k] for k in keys}, {k: keys.count(k) for k in keys})
    if info.get("error"):
        return (f"Stop — your answer could not be read ({info['error']}). {looked_up[0].upper()}{looked_up[1:]}, "
                f"so the running total is {total}. Continue from {total}.")
    return f"Stop — {looked_up}, so the running total is {total}, not {info['parsed']}. Continue from {total}."


def _lookups(values: dict[str, int], counts: dict[str, int]) -> str:
    """'the value of apple is 3', or 'apple is 3 and beach is -5 (given 2 times)'."""
    if len(values) == 1 and sum(counts.values()) == 1:
        (key, value), = values.items()
        return f"the value of {key} is {value}"
    parts = [f"{k} is {v}" + (f" (given {counts[k]} times)" if counts[k] > 1 else "") for k, v in values.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def execution_resync(env: gym.Env, info: dict[str, Any]) -> None:
    """Execution-v0: the agent was told the true total, so its own running total is now that (choice 3)."""
    env.unwrapped.own_total = info["expected"]


# Per-env words and state changes of the rule teacher; envs not listed get `rule_correction` and no change.
RULE_CORRECTIONS: dict[str, CorrectionFn] = {"longhorizon/Execution-v0": execution_correction}
RESYNC: dict[str, Callable[[gym.Env, dict[str, Any]], None]] = {"longhorizon/Execution-v0": execution_resync}


# ------------------------------------------------------------------ the model teacher

CORRECTION_PROMPT = """You are watching an agent work on a task, turn by turn. Its last action went off course.
Write a short correction (one or two sentences) that tells the agent what went wrong and how to get back on course.

{transcript}

Correction:"""


def transcript(history: list[tuple[str, str]], observation: str | None = None, limit: int | None = 8000) -> str:
    """The conversation as text, `[environment]` / `[agent]` blocks; past `limit` characters (if any) the middle
    goes, so a long episode still fits the teacher's window."""
    blocks = [f"[environment]\n{obs}\n[agent]\n{action}" for obs, action in history]
    blocks += [f"[environment]\n{observation}"] if observation is not None else []
    text = "The conversation so far:\n" + "\n".join(blocks)
    if limit is None or len(text) <= limit:
        return text
    head = limit // 4
    return f"{text[:head]}\n[... {len(text) - limit} characters left out ...]\n{text[len(text) - (limit - head):]}"


def correction_prompt(history: list[tuple[str, str]], limit: int = 8000) -> str:
    """The model teacher's prompt, and the instruction generator's input: the turns up to the off-course one."""
    return CORRECTION_PROMPT.format(transcript=transcript(history, limit=limit))


def check_teacher(teacher: str) -> None:
    """`rule`, a registered model name or a model directory; anything else is a one-line user error."""
    if teacher == "rule":
        return
    from longhorizon.models import MODEL_LOADERS

    if teacher not in MODEL_LOADERS and not (Path(str(teacher)) / "config.json").is_file():
        raise UserError(f"corrections: teacher {teacher!r} is neither 'rule' nor a model (use "
                        f"{', '.join(MODEL_LOADERS)}, or a local Hugging Face model directory)")


_GENERATORS: dict[tuple[str, str, int], Callable[[str], str]] = {}


def model_teacher(spec: str, dtype: str = "float32", max_new_tokens: int = 48) -> Callable[[str], str]:
    """`generate(prompt) -> text` on the model `spec` (greedy), loaded once per process."""
    key = (spec, dtype, max_new_tokens)
    if key not in _GENERATORS:
        from longhorizon.models import SamplingParams, TransformersSampler, load_model
        from longhorizon.rollout.policies import text_generator

        loaded = load_model(spec, dtype=dtype)
        sampler = TransformersSampler(loaded.model, loaded.tokenizer, SamplingParams(temperature=0.0),
                                      kv_cache_bytes=0)
        _GENERATORS[key] = text_generator(sampler, max_new_tokens)
    return _GENERATORS[key]


# ------------------------------------------------------------------ the wrapper


class Corrections(gym.Wrapper):
    """A teacher watches each turn and puts a short correction in front of the next observation when the
    agent goes off course (see the module docstring for every choice).

    `teacher`: `rule` (default) or a model (a registered name or a model directory); `generate`: instead of
    a model name, any `prompt -> text` callable; `judge`: `auto`, `verifier` or `oracle`; `max_chars` and
    `max_new_tokens` bound a model's correction; `dtype`: the teacher model's weights.
    """

    def __init__(self, env: gym.Env, teacher: str = "rule", judge: str = "auto", max_new_tokens: int = 48,
                 max_chars: int = 300, dtype: str = "float32", generate: Callable[[str], str] | None = None):
        super().__init__(env)
        check_teacher(str(teacher))
        if judge not in JUDGES:
            raise ValueError(f"corrections judge must be one of {', '.join(JUDGES)}, got {judge!r}")
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"corrections dtype must be float32 or bfloat16, got {dtype!r}")
        for name, value in (("max_new_tokens", max_new_tokens), ("max_chars", max_chars)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"corrections {name} must be an integer >= 1, got {value!r}")
        self.teacher, self.judge, self.max_new_tokens, self.max_chars = str(teacher), judge, max_new_tokens, max_chars
        self.dtype, self.generate = dtype, generate
        spec = getattr(self.env.unwrapped, "spec", None)
        self.env_id = spec.id if spec else ""
        self.history: list[tuple[str, str]] = []
        self.observation, self.corrected, self.count, self.heeded = "", False, 0, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.history, self.observation, self.corrected, self.count, self.heeded = [], obs, False, 0, 0
        return obs, info

    def step(self, action: str) -> Step:
        truth = self._oracle()  # before the step: the oracle acts in the state the agent acted in
        obs, reward, terminated, truncated, info = self.env.step(action)
        off = off_course(str(action), info, truth, self.judge)
        info = dict(info) | {"off_course": off, "corrected": self.corrected}
        self.heeded += self.corrected and not off
        self.history.append((self.observation, str(action)))
        self.corrected = off and not (terminated or truncated)
        if self.corrected:
            text, by = self._correct(str(action), info, truth)
            self.count += 1
            info |= {"correction": text, "correction_by": by}
            obs = f"{HEADER} {text}\n\n{obs}"
        info["corrections"] = self.count
        if terminated or truncated:
            info["metrics"] = dict(info.get("metrics") or {}) | {"corrections": float(self.count),
                                                                  "corrections_heeded": float(self.heeded)}
        self.observation = obs
        return obs, reward, terminated, truncated, info

    def _oracle(self) -> str | None:
        try:  # through the inner wrappers, like the rollout's oracle
            return self.env.get_wrapper_attr("oracle_action")()
        except (AttributeError, NotImplementedError):
            return None

    def _correct(self, action: str, info: dict[str, Any], truth: str | None) -> tuple[str, str]:
        """The correction's text and who wrote it (`rule` or `model`)."""
        generate = self.generate or (model_teacher(self.teacher, self.dtype, self.max_new_tokens)
                                     if self.teacher != "rule" else None)
        if generate is not None:
            text = str(generate(correction_prompt(self.history))).strip()[: self.max_chars].strip()
            if text:
                return text, "model"
        text = RULE_CORRECTIONS.get(self.env_id, rule_correction)(CorrectionContext(self.env, action, info, truth))
        if self.env_id in RESYNC:
            RESYNC[self.env_id](self.env, info)
        return text, "rule"
