"""Demonstrations: the env's oracle as trajectories, and any text trajectory replayed into the model's tokens.

    trajectories = oracle_demonstrations("longhorizon/Execution-v0", 64, {"dict_size": 10})   # no token ids
    tokenised = replay_tokens(trajectories, strategy, tokenizer)                              # as if sampled

`longhorizon demos ENV --episodes N --out PATH` writes the first. Oracle turns are text only, so before
training on them `replay_tokens` runs each episode again in its env (same seed, knobs and wrappers) with a
`TeacherPolicy` that answers every turn with the recorded action, building the prompt exactly as
`ModelPolicy` does: the context strategy's `build_prompt` on the live episode, then the pre-filled response
prefix. The action's ids are the tokens after that prefix, ending where the sampler would stop: at an env stop
string (e.g. `</answer>`), else with the end-of-turn token the model must sample. So every strategy's
`to_samples` gives the rows it gives a sampled episode, and the tokens trained on are the ones the policy
conditions on at evaluation.

Choices:
1. The replay checks each observation against the recorded one: a demonstration that does not replay (other
   knobs, wrappers or env version) is a user error, not silently different data.
2. Under `workspace`, whose answers are `<report>...</report>` then the action, a demonstration without a report
   gets the empty report `(empty)`: the model learns the format and the action, not what to report.
3. Under chunked `markovian`, the action is split into the chunks the sampler would make (C, then C - m ids).
4. Behaviour log-probs are 0 (nothing sampled them; SFT does not use them).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from longhorizon.context.base import ContextStrategy, encode
from longhorizon.context.workspace import EMPTY
from longhorizon.errors import UserError
from longhorizon.rollout.policies import OraclePolicy
from longhorizon.rollout.runner import Action, EpisodeSpec, LiveEpisode, run_episodes
from longhorizon.types import Trajectory


def oracle_demonstrations(env_id: str, episodes: int, env_kwargs: dict[str, Any] | None = None, seed: int = 0,
                          wrappers: list[dict[str, Any]] | None = None) -> list[Trajectory]:
    """`episodes` oracle episodes (env seeds seed .. seed + episodes - 1), text only; knobs and wrappers in metadata."""
    specs = [EpisodeSpec(env_id, seed=seed + k, env_kwargs=dict(env_kwargs or {}), group_id=k,
                         wrappers=list(wrappers or [])) for k in range(episodes)]
    trajectories = run_episodes(specs, OraclePolicy())
    for traj in trajectories:
        traj.metadata.update(wrappers=list(wrappers or []), policy="oracle")
    return trajectories


def demo_text(strategy: ContextStrategy, action: str) -> str:
    """The whole answer a model would write under `strategy` to take `action` (see choice 2)."""
    if strategy.response_prefix("") == "<report>" and "<report>" not in action:
        return f"<report>{EMPTY}</report>\n{action}"
    return action


class TeacherPolicy:
    """Answers each episode's turn t with demonstration turn t, tokenised as the model would have sampled it."""

    def __init__(self, demos: list[Trajectory], strategy: ContextStrategy, tokenizer: Any, prefill: bool = True,
                 stop: tuple[str, ...] = ()):
        self.demos, self.strategy, self.tokenizer, self.prefill, self.stop = demos, strategy, tokenizer, prefill, stop

    def act(self, episodes: list[LiveEpisode]) -> list[Action]:
        return [self._one(e) for e in episodes]

    def _one(self, episode: LiveEpisode) -> Action:
        demo, t = self.demos[episode.spec.group_id], len(episode.trajectory.turns)
        if t >= len(demo.turns) or demo.turns[t].observation != episode.observation:
            raise UserError(f"demonstration {episode.spec.group_id} ({demo.env_id}, seed {demo.seed}) does not replay: "
                            f"turn {t}'s observation differs from the env's (other knobs, wrappers or env version?)")
        spec = episode.agent_spec
        prefix = self.strategy.response_prefix(spec.response_prefix) if self.prefill else ""
        text = demo_text(self.strategy, demo.turns[t].action)
        if not text.startswith(prefix):
            raise UserError(f"demonstration {episode.spec.group_id}: turn {t}'s action {text[:40]!r} does not start with "
                            f"the response prefix {prefix!r} (set prefill: false)")
        ids = self.action_ids(text[len(prefix):], self.stop + spec.stop)
        prompt = self.strategy.build_prompt(episode.view(), self.tokenizer) + encode(self.tokenizer, prefix)
        env_text = self.strategy.env_action(text)
        return Action(text=text, prompt_ids=prompt, token_ids=ids, logprobs=[0.0] * len(ids),
                      env_text=None if env_text == text else env_text, info=self._chunks(len(ids)))

    def action_ids(self, completion: str, stops: tuple[str, ...]) -> list[int]:
        """The completion's ids, then the end-of-turn token unless a stop string ends it (the sampler stops there)."""
        ids = encode(self.tokenizer, completion)
        return ids if any(completion.endswith(s) for s in stops if s) else ids + [self.tokenizer.eos_token_id]

    def _chunks(self, n: int) -> dict[str, Any]:
        plan = self.strategy.chunk_plan()
        if plan is None:
            return {}
        lengths, k = [], 0
        while sum(lengths) < n:
            lengths.append(min(plan.budget(k), n - sum(lengths)))
            k += 1
        return {"chunk_tokens": lengths}


def replay_tokens(demos: list[Trajectory], strategy: ContextStrategy, tokenizer: Any, prefill: bool = True,
                  stop: tuple[str, ...] = ()) -> list[Trajectory]:
    """The demonstrations replayed in their envs with prompt and action ids filled in (see the module docstring)."""
    specs = [EpisodeSpec(d.env_id, seed=d.seed, env_kwargs=dict(d.metadata.get("env_kwargs", {})), group_id=i,
                         wrappers=list(d.metadata.get("wrappers", []))) for i, d in enumerate(demos)]
    with strategy.frozen():  # the demonstrations never reach a memory store
        replayed = run_episodes(specs, TeacherPolicy(demos, strategy, tokenizer, prefill, stop))
    for i, (demo, traj) in enumerate(zip(demos, replayed)):
        if len(traj.turns) != len(demo.turns):
            raise UserError(f"demonstration {i} ({demo.env_id}, seed {demo.seed}) does not replay: the env ended "
                            f"after {len(traj.turns)} turns, the demonstration has {len(demo.turns)}")
    return [replace(traj, group_id=demo.group_id, metadata={**demo.metadata, **traj.metadata})
            for demo, traj in zip(demos, replayed)]
