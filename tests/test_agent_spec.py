"""The env-to-agent contract: an `AgentSpec` read through the wrappers, so a wrapper changes what the policy sees."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace

import gymnasium as gym
import pytest

import longhorizon.envs  # noqa: F401  (registers the envs)
from longhorizon.context import make_strategy
from longhorizon.context.base import encode
from longhorizon.envs.core.base import AgentSpec, FreeText, TextEnv, agent_spec
from longhorizon.envs.core.wrappers import WRAPPERS
from longhorizon.models import SamplingParams, TransformersSampler
from longhorizon.rollout import EpisodeSpec, LiveEpisode, ModelPolicy, OraclePolicy, run_episodes

EXEC = "longhorizon/Execution-v0"
SYSTEM = "You are the override system prompt."
TASK = "Override task: keep the sum."


class Briefed(gym.Wrapper):
    """Gives the agent its own system prompt, task statement and answer prefix."""

    @property
    def agent_spec(self) -> AgentSpec:
        inner = self.env.get_wrapper_attr("agent_spec")
        return replace(inner, system_prompt=SYSTEM, task_statement=TASK, response_prefix="<answer>7")


@pytest.fixture
def briefed(monkeypatch):
    monkeypatch.setitem(WRAPPERS, "briefed", Briefed)
    return [{"name": "briefed"}]


def test_text_env_spec_comes_from_its_attributes():
    env = gym.make(EXEC, horizon=3, dict_size=5)
    env.reset(seed=0)
    spec = agent_spec(env)  # through gym.make's own wrappers (order enforcing, checker)
    assert spec == AgentSpec(response_prefix="<answer>", stop=("</answer>",), horizon=3)
    with pytest.raises(FrozenInstanceError):
        spec.horizon = 4


def test_outermost_wrapper_wins(briefed):
    episode = LiveEpisode(EpisodeSpec(EXEC, seed=0, env_kwargs={"horizon": 2, "dict_size": 5}, wrappers=briefed))
    view = episode.view()
    assert (view.system_prompt, view.task_statement) == (SYSTEM, TASK)
    assert episode.agent_spec.stop == ("</answer>",) and episode.trajectory.horizon == 2  # the rest is the env's


def test_model_policy_prompt_holds_the_wrapper_override(tiny, briefed):
    sampler = TransformersSampler(tiny.model, tiny.tokenizer, SamplingParams(max_new_tokens=2))
    policy = ModelPolicy(sampler, make_strategy("full", reminder_every=1))
    specs = [EpisodeSpec(EXEC, seed=0, env_kwargs={"horizon": 2, "dict_size": 5}, wrappers=w) for w in ([], briefed)]
    plain, wrapped = run_episodes(specs, policy)
    text = tiny.tokenizer.decode(wrapped.turns[1].prompt_ids)
    assert SYSTEM in text and "Reminder of your task:\n" + TASK in text
    assert SYSTEM not in tiny.tokenizer.decode(plain.turns[1].prompt_ids)
    prefix = encode(tiny.tokenizer, "<answer>7")
    assert wrapped.turns[0].prompt_ids[-len(prefix):] == prefix and wrapped.turns[0].action.startswith("<answer>7")


class PlainText(gym.Env):
    """A Gymnasium text env that knows nothing of longhorizon."""

    observation_space = action_space = FreeText()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return "say hi", {}

    def step(self, action):
        return "bye", float(action == "hi"), True, False, {"success": action == "hi"}


class Misdeclared(TextEnv):
    agent_spec = {"system_prompt": "not a spec"}


def test_plain_env_gets_the_empty_spec_and_a_wrong_type_is_an_error():
    assert agent_spec(PlainText()) == AgentSpec()
    with pytest.raises(TypeError, match="must be an AgentSpec"):
        agent_spec(Misdeclared())


def test_oracle_goes_through_the_wrappers():
    class Oracle(gym.Wrapper):
        def oracle_action(self) -> str:
            return "<answer>0</answer>"

    gym.register("test/Wrapped-oracle-v0", entry_point=lambda **kw: Oracle(gym.make(EXEC, horizon=1, dict_size=5)))
    try:
        traj = run_episodes([EpisodeSpec("test/Wrapped-oracle-v0", seed=0)], OraclePolicy())[0]
    finally:
        gym.registry.pop("test/Wrapped-oracle-v0")
    assert traj.turns[0].action == "<answer>0</answer>"
