"""KV reuse in the transformers sampler: the same episodes as recomputing every prompt, for less compute.

Multi-turn episodes of different lengths (horizons 2, 3 and 5, groups of two
sharing their first prompt) run in one batch with every context strategy,
once with the prefix cache and once without: the sampled ids, behaviour
log-probs and prompts must agree (fp32: greedy ids exactly, log-probs within
1e-5), the log-probs must match a teacher-forced pass, and the cache must
actually have skipped work.
"""

from __future__ import annotations

import pytest
import torch

from longhorizon.context import make_strategy
from longhorizon.models import SamplingParams, TransformersSampler
from longhorizon.models.kv_cache import PrefixCache, common_prefix
from longhorizon.rollout import EpisodeSpec, ModelPolicy, run_episodes
from test_sampler import chat_ids, teacher_forced
from test_train_context import STRATEGIES

HORIZONS = (2, 3, 5)


def specs() -> list[EpisodeSpec]:
    """Six episodes: three horizons, each task twice (a group of 2 shares its first prompt)."""
    return [EpisodeSpec("longhorizon/Execution-v0", seed=10 + i // 2, group_id=i // 2,
                        env_kwargs={"horizon": HORIZONS[i // 2], "stop_on_error": False}) for i in range(6)]


def rollout(tiny, name: str, kv: bool, temperature: float = 0.0):
    context, options = STRATEGIES[name]
    params = SamplingParams(temperature=temperature, max_new_tokens=6, seed=5)
    sampler = TransformersSampler(tiny.model, tiny.tokenizer, params, kv_cache_bytes=(1 << 28) if kv else 0)
    policy = ModelPolicy(sampler, make_strategy(context, **options), prefill=name != "workspace")
    return run_episodes(specs(), policy), sampler


def turns(trajectories):
    return [(t.prompt_ids, t.action_ids) for traj in trajectories for t in traj.turns]


def logprobs(trajectories) -> torch.Tensor:
    return torch.tensor([x for traj in trajectories for t in traj.turns for x in t.action_logprobs])


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_greedy_episodes_equal_recomputing_every_prompt(tiny, name):
    plain, _ = rollout(tiny, name, kv=False)
    reused, sampler = rollout(tiny, name, kv=True)
    assert [len(t.turns) for t in reused] == [2, 2, 3, 3, 5, 5]  # different lengths in one batch
    assert turns(reused) == turns(plain)
    torch.testing.assert_close(logprobs(reused), logprobs(plain), atol=1e-5, rtol=0)
    stats = sampler.kv_cache.stats
    assert stats["computed_tokens"] < stats["prompt_tokens"]  # something was reused
    assert sampler.kv_cache.entries == []  # the rollout's end freed the cache


def test_sampled_ids_are_identical_for_the_same_seed(tiny):
    plain, _ = rollout(tiny, "full", kv=False, temperature=1.0)
    reused, _ = rollout(tiny, "full", kv=True, temperature=1.0)
    assert turns(reused) == turns(plain)
    torch.testing.assert_close(logprobs(reused), logprobs(plain), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name,temperature", [("full", 1.0), ("window", 0.7), ("markovian_chunked", 1.0)])
def test_reused_logprobs_equal_a_teacher_forced_pass(tiny, name, temperature):
    reused, _ = rollout(tiny, name, kv=True, temperature=temperature)
    for traj in reused:
        for turn in traj.turns:
            if "chunk_tokens" in turn.info.get("policy", {}):
                continue  # a chunked answer has one prompt per chunk; checked through its first chunk below
            expected = teacher_forced(tiny.model, turn.prompt_ids, turn.action_ids, temperature)
            torch.testing.assert_close(torch.tensor(turn.action_logprobs), expected, atol=1e-4, rtol=0)


def test_full_context_computes_a_flat_number_of_prompt_tokens_per_turn(tiny):
    """With `full`, turn t's prompt extends turn t-1's sequence: only the new tokens are prefilled."""
    sampler = TransformersSampler(tiny.model, tiny.tokenizer, SamplingParams(temperature=0, max_new_tokens=6))
    policy = ModelPolicy(sampler, make_strategy("full"))
    spec = [EpisodeSpec("longhorizon/Execution-v0", seed=3, env_kwargs={"horizon": 6, "stop_on_error": False})]
    computed, prompt = [], []
    original = sampler.generate

    def counting(prompts, params=None):
        before = dict(sampler.kv_cache.stats)
        out = original(prompts, params)
        computed.append(sampler.kv_cache.stats["computed_tokens"] - before.get("computed_tokens", 0))
        prompt.append(sampler.kv_cache.stats["prompt_tokens"] - before["prompt_tokens"])
        return out

    sampler.generate = counting
    traj = run_episodes(spec, policy)[0]
    assert len(traj.turns) == 6 and prompt == [len(t.prompt_ids) for t in traj.turns]
    assert prompt[-1] - prompt[1] > 4 * 20  # the prompt grows by each turn's action and observation...
    assert max(computed[1:]) <= min(computed[1:]) + 3 < 60  # ...what is computed per turn does not
    assert computed[0] == prompt[0]


def test_a_group_prefills_its_shared_prompt_once(tiny):
    prompt = chat_ids(tiny.tokenizer, "the same task for every sample of the group")
    sampler = TransformersSampler(tiny.model, tiny.tokenizer, SamplingParams(temperature=1.0, max_new_tokens=4))
    sampler.generate([prompt] * 8)
    # one prefill of prompt[:-1], then each row feeds its own last prompt token
    assert sampler.kv_cache.stats["computed_tokens"] == len(prompt) - 1 + 8


def test_new_weights_clear_the_cache(tiny):
    """Keys and values of old weights are never served: an optimizer step invalidates every entry."""
    import copy

    model = copy.deepcopy(tiny.model)
    sampler = TransformersSampler(model, tiny.tokenizer, SamplingParams(temperature=0, max_new_tokens=5))
    prompt = chat_ids(tiny.tokenizer, "hello")
    first = sampler.generate([prompt])[0]
    extended = prompt + first.token_ids + chat_ids(tiny.tokenizer, "again")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(torch.tensor([prompt])).logits.sum().backward()
    optimizer.step()
    computed = sampler.kv_cache.stats["computed_tokens"]
    gen = sampler.generate([extended])[0]
    assert sampler.kv_cache.stats["computed_tokens"] - computed == len(extended)  # nothing reused
    expected = teacher_forced(model, extended, gen.token_ids, 1.0)
    torch.testing.assert_close(torch.tensor(gen.logprobs), expected, atol=1e-4, rtol=0)


def test_budget_and_release_free_entries(tiny):
    sampler = TransformersSampler(tiny.model, tiny.tokenizer, SamplingParams(temperature=0, max_new_tokens=4))
    prompts = [chat_ids(tiny.tokenizer, f"prompt number {i} " * (i + 1)) for i in range(4)]
    gens = sampler.generate(prompts)
    cache = sampler.kv_cache
    assert len(cache.entries) == 4 and cache.nbytes > 0
    sampler.release(gens[0].prompt_ids + gens[0].token_ids)
    assert len(cache.entries) == 3
    cache.max_bytes = cache.nbytes - 1  # one entry too many: the least recently added goes
    by_age = sorted(cache.entries, key=lambda e: e.last_used)
    cache.evict()
    assert cache.entries == by_age[1:][::-1] and cache.nbytes <= cache.max_bytes


def test_common_prefix_and_match():
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2 and common_prefix([], [1]) == 0 and common_prefix([9], [1]) == 0
    cache = PrefixCache()
    assert cache.match([1, 2, 3]) == (None, 0)


def test_kv_cache_mb_reaches_the_sampler_from_eval_and_train_configs():
    from longhorizon.errors import ConfigError

    from longhorizon.eval.config import EvalConfig
    from longhorizon.eval.evaluate import make_policy
    from longhorizon.train import load_config

    assert make_policy(EvalConfig(model="tiny-random", kv_cache_mb=0)).sampler.kv_cache is None  # reuse off
    assert make_policy(EvalConfig(model="tiny-random", kv_cache_mb=3)).sampler.kv_cache.max_bytes == 3 << 20
    assert load_config(None, ["kv_cache_mb=0"]).eval.kv_cache_mb == 0  # the held-out eval inherits it
    with pytest.raises(ConfigError, match="eval.kv_cache_mb must be the training kv_cache_mb"):
        load_config(None, ["eval.kv_cache_mb=5"])
