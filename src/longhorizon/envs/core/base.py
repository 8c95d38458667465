"""What every longhorizon environment shares.

An environment is a Gymnasium env whose observations and actions are text.
Besides `reset`/`step` it offers:

- `oracle_action()`: the action a perfect agent takes now (model-free);
- `wrong_action(rng)`: a well-formed but wrong action (for noisy oracles);
- `Knobs`: the typed model of the difficulty/horizon knobs (`core/knobs.py`), shown by `longhorizon envs`;
- `LEVELS`: named knob settings (e.g. short/long) that the registry tests cover;
- `tools`: OpenAI function schemas for tool-using envs (None otherwise);
- `system_prompt`: an optional system message for chat models;
- `response_prefix`: optional text a model policy may pre-fill at the start of
  each answer (e.g. "<answer>"), so small models spend their tokens on the task
  rather than the format. The prefix is part of the action the env parses;
- `stop`: strings that end a model's turn (e.g. "</answer>");
- `HORIZON_KNOB`: the knob that `longhorizon eval --horizons` sweeps;
- `REWARD`: one line stating the reward's scale (e.g. "0 to H per episode"),
  shown by `longhorizon envs`; every registered env declares it;
- `agent_spec`: the above (and `task_statement`, `horizon`) as one frozen
  `AgentSpec`, the env-to-agent contract (see `AgentSpec`).

Step `info` conventions: `correct` (bool, this turn's answer was right),
`error` (str, why the action was rejected; absent if it was fine), `role`
("user" by default, "tool" for tool results), and, on the last step,
`success` (bool, the task as a whole was solved) and `metrics` (dict of
floats: the env's paper metrics, e.g. F1 or a partial score).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from longhorizon.envs.core.knobs import Knobs

MAX_TEXT = 1 << 22  # 4M characters


class FreeText(spaces.Text):
    """A Text space that holds any Python string up to `max_length` characters.

    Gymnasium's `Text` only accepts characters from a fixed charset; model
    output can contain anything, and observations may quote it back.
    """

    def __init__(self, max_length: int = MAX_TEXT, seed: int | None = None):
        super().__init__(max_length=max_length, min_length=0, charset=string.printable, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length


def clip_text(text: str, limit: int = 200) -> str:
    """Shorten text quoted back to the agent so a huge answer can't blow up the observation."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


@dataclass(frozen=True)
class AgentSpec:
    """What the agent is told about an env besides its observations: the env-to-agent contract.

    The rollout reads it with `agent_spec(env)`, i.e. through Gymnasium's
    `env.get_wrapper_attr("agent_spec")`, so the outermost wrapper that defines
    `agent_spec` wins. A wrapper changes what the agent sees with

        @property
        def agent_spec(self) -> AgentSpec:
            return dataclasses.replace(self.env.get_wrapper_attr("agent_spec"), task_statement="...")

    `TextEnv.agent_spec` builds it from the env's attributes of the same names.
    """

    system_prompt: str | None = None  # system message for chat models
    tools: list[dict[str, Any]] | None = None  # OpenAI function schemas (tool-using envs)
    task_statement: str | None = None  # the env's own statement of the task (reminders restate it)
    response_prefix: str = ""  # text a model policy may pre-fill at the start of each answer
    stop: tuple[str, ...] = ()  # strings that end a model's turn
    horizon: int | None = None  # the episode's horizon, recorded in the Trajectory


def agent_spec(env: gym.Env) -> AgentSpec:
    """The env's `AgentSpec` as its outermost wrapper gives it.

    An env that is not a `TextEnv` and whose wrappers give none (a plain
    Gymnasium text env) gets the empty `AgentSpec()`: no system prompt, tools,
    prefix or stops. Anything that is not an `AgentSpec` is a TypeError.
    """
    try:
        spec = env.get_wrapper_attr("agent_spec")
    except AttributeError:
        if isinstance(env.unwrapped, TextEnv):
            raise
        return AgentSpec()
    if not isinstance(spec, AgentSpec):
        raise TypeError(f"agent_spec of {env} must be an AgentSpec, got {type(spec).__name__}")
    return spec


class TextEnv(gym.Env[str, str]):
    """Base class: text spaces, knob metadata and the oracle hooks."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 1}
    Knobs: ClassVar[type[Knobs] | None] = None
    # Named knob settings the registry-wide tests run the oracle on (smallest to largest).
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {"default": {}}
    tools: list[dict[str, Any]] | None = None
    system_prompt: str | None = None
    response_prefix: str | None = None
    stop: tuple[str, ...] = ()
    task_statement: str | None = None
    horizon: int | None = None
    # The knob `longhorizon eval --horizons` sweeps (None: the env has no single horizon knob).
    HORIZON_KNOB: ClassVar[str | None] = "horizon"
    # The reward's scale in one line, e.g. "1 per turn whose total is right: 0 to H per episode".
    REWARD: ClassVar[str | None] = None

    def __init__(self, render_mode: str | None = None):
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.observation_space = FreeText()
        self.action_space = FreeText()
        self._last_obs = ""

    @property
    def agent_spec(self) -> AgentSpec:
        """This env's `AgentSpec`, from its attributes (read after `reset`: some depend on the task)."""
        return AgentSpec(system_prompt=self.system_prompt, tools=self.tools, task_statement=self.task_statement,
                         response_prefix=self.response_prefix or "", stop=tuple(self.stop), horizon=self.horizon)

    def oracle_action(self) -> str:
        raise NotImplementedError

    def wrong_action(self, rng: np.random.Generator) -> str:
        """A well-formed action that the verifier rejects. Default: an empty answer."""
        return ""

    def render(self) -> str | None:
        return self._last_obs if self.render_mode == "ansi" else None
