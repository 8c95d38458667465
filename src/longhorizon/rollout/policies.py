"""Policies the runner can drive: a model behind a context strategy, or scripted oracles.

- `ModelPolicy`: builds each episode's prompt with the context strategy and
  samples all of them in one batched call.
- `oracle`: the env's own oracle action (model-free, scores the maximum).
- `noisy-oracle:p`: the oracle's action with probability p, else the env's
  `wrong_action`. On Execution, success(H) = p^H, so H_0.5 = ln 0.5 / ln p.

The model policy reads what the env tells the agent (response prefix, stop
strings; the strategy reads the rest) from each episode's `AgentSpec`. The
oracles call `oracle_action` / `wrong_action` through Gymnasium's
`get_wrapper_attr` too (not `env.unwrapped`), so a wrapper may define its own
oracle; the wrappers in `envs/wrappers.py` define none, so the inner env's is used.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from longhorizon.context.base import ContextStrategy, chat_ids, encode
from longhorizon.errors import UserError
from longhorizon.models.sampler import SamplingParams, TransformersSampler
from longhorizon.rollout.chunked import Answer, generate_answers
from longhorizon.rollout.runner import Action, LiveEpisode
from longhorizon.types import Trajectory, jsonable

if TYPE_CHECKING:
    from longhorizon.models.vllm_sampler import VLLMSampler


class ModelPolicy:
    """A sampler plus a context strategy.

    With `prefill=True`, an env's `response_prefix` (e.g. "<answer>") is appended
    to the prompt as forced tokens and prepended to the sampled text, so the env
    parses `prefix + completion`. The prefix tokens are prompt, never loss.
    The strategy's hooks may change the prefix, how an answer is split into
    model calls (a `ChunkPlan`: Delethink chunks, sampled here by
    `rollout.chunked`) and which part of it the env sees (see `context/base.py`).
    """

    def __init__(self, sampler: TransformersSampler | VLLMSampler, strategy: ContextStrategy, prefill: bool = True):
        self.sampler, self.strategy, self.prefill = sampler, strategy, prefill

    def prompts(self, episodes: list[LiveEpisode]) -> tuple[list[list[int]], list[str]]:
        """Each episode's prompt ids (the strategy's prompt, then the forced response prefix) and its prefix."""
        prefixes = [self._prefix(e) for e in episodes]
        tok = self.sampler.tokenizer
        return [self.strategy.build_prompt(e.view(), tok) + encode(tok, p) for e, p in zip(episodes, prefixes)], prefixes

    def act(self, episodes: list[LiveEpisode]) -> list[Action]:
        prompts, prefixes = self.prompts(episodes)
        plan = self.strategy.chunk_plan()
        budget = self.sampler.max_length - (plan.chunk if plan else self.sampler.params.max_new_tokens)
        fits = [i for i, p in enumerate(prompts) if len(p) <= budget]
        params = replace(self.sampler.params, stop=self.sampler.params.stop + _env_stops(episodes))
        answers = generate_answers(self.sampler, [prompts[i] for i in fits], params, plan) if fits else []
        gens = dict(zip(fits, answers))
        return [self._action(prompts[i], prefixes[i], gens.get(i)) for i in range(len(episodes))]

    def end_episode(self, trajectory: Trajectory) -> None:
        """The runner reports each finished episode; the strategy may learn from it (memory); its cached keys go."""
        release = getattr(self.sampler, "release", None)  # samplers without a cache have none
        if release and trajectory.turns:
            release(trajectory.turns[-1].prompt_ids + trajectory.turns[-1].action_ids)
        self.strategy.end_episode(trajectory)

    def end_rollout(self) -> None:
        """The runner's rollout is over: the next one runs other episodes (or new weights), so the cache goes."""
        if hasattr(self.sampler, "clear_cache"):
            self.sampler.clear_cache()

    def _prefix(self, episode: LiveEpisode) -> str:
        env_prefix = episode.agent_spec.response_prefix
        return self.strategy.response_prefix(env_prefix) if self.prefill else ""

    def _action(self, prompt: list[int], prefix: str, answer: Answer | None) -> Action:
        if answer is None:
            return Action(text="", prompt_ids=prompt, overflow=True)
        text = prefix + answer.text
        env_text = self.strategy.env_action(text)
        return Action(text=text, prompt_ids=prompt, token_ids=answer.token_ids, logprobs=answer.logprobs,
                      env_text=None if env_text == text else env_text, info=answer.info)


class ReplayPolicy:
    """Recorded turns fed back through a model policy's prompts: the episode of group g takes the actions (and
    their tokens and log-probs) of `recorded[g]` in order, each after the prompt the policy would build now.

    Critique-GRPO (`train/critique.py`) replays a refinement, sampled with a critique in its first observation,
    on the task without it. The env must be deterministic given its seed: a replay that runs past or ends before
    the recorded turns raises.
    """

    def __init__(self, policy: ModelPolicy, recorded: dict[int, Trajectory]):
        self.policy, self.recorded = policy, recorded

    def act(self, episodes: list[LiveEpisode]) -> list[Action]:
        prompts, _ = self.policy.prompts(episodes)
        return [self._action(e, prompt) for e, prompt in zip(episodes, prompts)]

    def _action(self, episode: LiveEpisode, prompt: list[int]) -> Action:
        turns, k = self.recorded[episode.spec.group_id].turns, len(episode.trajectory.turns)
        if k >= len(turns):
            raise RuntimeError(f"{episode.spec.env_id} (seed {episode.spec.seed}) went on past the {len(turns)} "
                               "recorded turns: the env is not deterministic given its seed, so it cannot be replayed")
        turn = turns[k]
        env_text = self.policy.strategy.env_action(turn.action)
        return Action(text=turn.action, prompt_ids=prompt, token_ids=list(turn.action_ids),
                      logprobs=list(turn.action_logprobs), env_text=None if env_text == turn.action else env_text)


def _env_stops(episodes: list[LiveEpisode]) -> tuple[str, ...]:
    """Stop strings declared by the envs in the batch."""
    stops = {s for e in episodes for s in e.agent_spec.stop}
    return tuple(sorted(stops))


class OraclePolicy:
    """The env's oracle action for every episode."""

    def act(self, episodes: list[LiveEpisode]) -> list[Action]:
        return [Action(text=oracle_action(e.env)) for e in episodes]


class NoisyOraclePolicy:
    """Each step is the oracle's with probability p, else a well-formed wrong action.

    The draws of a turn depend only on (seed, the episode's seed and knobs, the turn index), not on which
    other episodes share the batch, so a resumed evaluation replays exactly what an unbroken one does.
    """

    def __init__(self, p: float, seed: int = 0):
        if not 0.0 <= p <= 1.0:
            raise UserError(f"noisy-oracle probability must be in [0, 1], got {p}")
        self.p, self.seed = p, seed

    def act(self, episodes: list[LiveEpisode]) -> list[Action]:
        return [Action(text=self._one(e)) for e in episodes]

    def _one(self, episode: LiveEpisode) -> str:
        knobs = zlib.crc32(json.dumps(jsonable(episode.spec.env_kwargs), sort_keys=True).encode())
        rng = np.random.default_rng([self.seed, episode.spec.seed, knobs, len(episode.trajectory.turns)])
        env = episode.env
        return oracle_action(env) if rng.random() < self.p else env.get_wrapper_attr("wrong_action")(rng)


def oracle_action(env: Any) -> str:
    """The oracle's action, as the outermost wrapper that defines `oracle_action` gives it."""
    try:
        oracle = env.get_wrapper_attr("oracle_action")
    except AttributeError:
        raise UserError(f"{env.unwrapped} has no oracle_action; the oracle policies need one") from None
    return oracle()


def _noisy(arg: str, seed: int) -> NoisyOraclePolicy:
    try:
        p = float(arg)
    except ValueError:
        raise UserError(f"noisy-oracle needs a probability, as in noisy-oracle:0.9; got {arg!r}") from None
    return NoisyOraclePolicy(p, seed)


SCRIPTED_POLICIES: dict[str, Callable[[str, int], Any]] = {
    "oracle": lambda arg, seed: OraclePolicy(),
    "noisy-oracle": _noisy,
}


def scripted_policy(spec: str, seed: int = 0) -> Any | None:
    """`oracle` or `noisy-oracle:p` as a policy; None if the spec names no scripted policy."""
    name, _, arg = spec.partition(":")
    return SCRIPTED_POLICIES[name](arg, seed) if name in SCRIPTED_POLICIES else None


def text_generator(sampler: TransformersSampler | VLLMSampler, max_new_tokens: int = 48) -> Callable[[str], str]:
    """`generate(prompt) -> str` from a sampler: the prompt as one user message, greedy (e.g. for the memory
    strategy's model-written lessons: `make_strategy("memory", generate=text_generator(sampler))`)."""
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)

    def generate(prompt: str) -> str:
        ids = chat_ids(sampler.tokenizer, [{"role": "user", "content": prompt}], None)
        return sampler.generate([ids], params)[0].text

    return generate


def model_policy(model_spec: str, strategy: ContextStrategy, params: SamplingParams, dtype: str = "float32",
                 batch_size: int = 64, prefill: bool = True, sampler: str = "transformers",
                 vllm: Any = None, kv_cache_mb: int = 1024) -> ModelPolicy:
    """Load a model (or start a vLLM engine on it: `sampler="vllm"`, `vllm` its settings) and wrap it as a policy."""
    from longhorizon.models import make_sampler

    backend = make_sampler(sampler, model_spec, params, dtype=dtype, vllm=vllm, batch_size=batch_size,
                           kv_cache_mb=kv_cache_mb)
    return ModelPolicy(backend, strategy, prefill=prefill)
