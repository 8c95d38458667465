"""Run many episodes at once, batching every live episode's prompt into one call per tick.

    specs = [EpisodeSpec("longhorizon/Execution-v0", seed=s, env_kwargs={"horizon": 8}) for s in range(16)]
    trajectories = run_episodes(specs, policy)

Each tick the policy gets every live episode and returns one action for each
(a model policy makes ONE batched generate call for all of them). Episodes
end independently; finished ones drop out of the batch.

What the agent is told besides the observations (system prompt, tools, task
statement, response prefix, stop strings, horizon) is the env's `AgentSpec`,
read through its wrappers (`envs.core.base.agent_spec`), so a wrapper can change it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import gymnasium as gym

import longhorizon.envs  # noqa: F401  (registers the envs)
from longhorizon.context.base import EpisodeView
from longhorizon.envs.core.base import AgentSpec, agent_spec
from longhorizon.envs.core.knobs import KnobError
from longhorizon.envs.core.wrappers import apply_wrappers
from longhorizon.errors import UserError
from longhorizon.types import Trajectory, Turn, jsonable


@dataclass
class EpisodeSpec:
    """Which task to run: env id, its knobs, the seed, and the group (samples of one task share it)."""

    env_id: str
    seed: int
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    group_id: int = 0
    wrappers: list[dict[str, Any]] = field(default_factory=list)  # [{"name": "try_again", ...}], innermost first


@dataclass
class Action:
    """A policy's answer for one episode: the text and, for model policies, the tokens behind it."""

    text: str
    prompt_ids: list[int] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    overflow: bool = False  # the prompt no longer fits the model's context: truncate the episode
    env_text: str | None = None  # what the env is given, if not all of `text` (workspace keeps its report)
    info: dict[str, Any] = field(default_factory=dict)  # policy facts for the turn's info["policy"] (e.g. chunk sizes)


class LiveEpisode:
    """An env plus the trajectory recorded so far."""

    def __init__(self, spec: EpisodeSpec):
        self.spec = spec
        self.env = apply_wrappers(gym.make(spec.env_id, **spec.env_kwargs), spec.wrappers)
        self.observation, info = self.env.reset(seed=spec.seed)
        self.role = info.get("role", "user")
        self.roles: list[str] = []
        self.trajectory = Trajectory(env_id=spec.env_id, seed=spec.seed, group_id=spec.group_id,
                                     horizon=self.agent_spec.horizon, metadata={"env_kwargs": jsonable(spec.env_kwargs)})
        self.done = False

    @property
    def agent_spec(self) -> AgentSpec:
        """What the env (through its wrappers) tells the agent now."""
        return agent_spec(self.env)

    def view(self) -> EpisodeView:
        spec = self.agent_spec
        return EpisodeView(turns=self.trajectory.turns, observation=self.observation, role=self.role,
                           system_prompt=spec.system_prompt, tools=spec.tools, roles=self.roles,
                           env_id=self.spec.env_id, task_statement=spec.task_statement,
                           metadata=self.trajectory.metadata)

    def step(self, action: Action) -> None:
        if action.overflow:
            self._finish(terminated=False, truncated=True, info={"truncated_reason": "context_overflow"})
            return
        env_text = action.text if action.env_text is None else action.env_text
        obs, reward, terminated, truncated, info = self.env.step(env_text)
        policy_info = {"policy": action.info} if action.info else {}
        self.trajectory.turns.append(Turn(
            observation=self.observation, action=action.text, reward=float(reward),
            prompt_ids=action.prompt_ids, action_ids=action.token_ids,
            action_logprobs=action.logprobs, info=jsonable({**info, **policy_info})))
        self.roles.append(self.role)
        self.observation, self.role = obs, info.get("role", "user")
        if terminated or truncated:
            self._finish(terminated, truncated, info)

    def _finish(self, terminated: bool, truncated: bool, info: dict[str, Any]) -> None:
        traj = self.trajectory
        traj.terminated, traj.truncated = bool(terminated), bool(truncated)
        traj.success = bool(info["success"]) if "success" in info else (False if truncated else None)
        traj.metadata["final_observation"] = self.observation
        traj.metadata.update({k: jsonable(info[k]) for k in ("metrics", "truncated_reason") if k in info})
        self.done = True
        self.env.close()


def make_env(env_id: str, env_kwargs: dict[str, Any], wrappers: list[dict[str, Any]] = ()) -> gym.Env:
    """Build an env (wrapped), turning unknown ids and bad knobs or wrappers into user errors."""
    from longhorizon.envs import list_envs

    if env_id not in list_envs() and env_id not in gym.registry:  # ours, or any registered Gymnasium env
        raise UserError(f"unknown env {env_id!r}; known envs: {', '.join(list_envs())}")
    try:
        return apply_wrappers(gym.make(env_id, **env_kwargs), wrappers)
    except KnobError as err:  # names the knob and the env already
        raise UserError(str(err)) from None
    except (TypeError, ValueError) as err:
        raise UserError(f"bad knobs for {env_id}: {err}") from None


class Policy(Protocol):
    """Anything that answers a batch of live episodes."""

    def act(self, episodes: list[LiveEpisode]) -> list[Action]: ...


def run_episodes(
    specs: list[EpisodeSpec],
    policy: Policy,
    *,
    on_tick: Callable[[int, int], None] | None = None,
    on_done: Callable[[int, Trajectory], None] | None = None,
) -> list[Trajectory]:
    """Run all episodes to the end; `on_tick(actions_this_tick, live_before_tick)` reports progress and
    `on_done(index_in_specs, trajectory)` sees each episode as it finishes (e.g. to write it at once)."""
    episodes = [LiveEpisode(spec) for spec in specs]
    try:
        while live := [e for e in episodes if not e.done]:
            actions = policy.act(live)
            if len(actions) != len(live):
                raise RuntimeError(f"policy returned {len(actions)} actions for {len(live)} episodes")
            for episode, action in zip(live, actions):
                episode.step(action)
                if episode.done and hasattr(policy, "end_episode"):
                    policy.end_episode(episode.trajectory)  # e.g. a memory strategy writes its lessons
                if episode.done and on_done:
                    on_done(episodes.index(episode), episode.trajectory)
            if on_tick:
                on_tick(len(actions), len(live))
    finally:
        if hasattr(policy, "end_rollout"):
            policy.end_rollout()  # e.g. a model policy frees its KV cache
    return [e.trajectory for e in episodes]
