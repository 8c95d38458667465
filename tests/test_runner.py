"""The batched runner: one generate call per tick for every live episode, episodes end independently."""

from longhorizon.context import make_strategy
from longhorizon.models import SamplingParams, TransformersSampler
from longhorizon.rollout import EpisodeSpec, ModelPolicy, run_episodes, scripted_policy


class CountingSampler(TransformersSampler):
    """Records the batch size of every generate call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    def generate(self, prompts, params=None):
        self.batches.append(len(prompts))
        return super().generate(prompts, params)


def test_episodes_of_different_lengths_share_batches(tiny):
    sampler = CountingSampler(tiny.model, tiny.tokenizer, SamplingParams(max_new_tokens=6, stop=("</answer>",)))
    policy = ModelPolicy(sampler, make_strategy("full"))
    horizons = [1, 3, 2, 3]
    specs = [EpisodeSpec("longhorizon/Execution-v0", seed=i, env_kwargs={"horizon": h, "dict_size": 5})
             for i, h in enumerate(horizons)]
    ticks = []
    trajectories = run_episodes(specs, policy, on_tick=lambda n, live: ticks.append(n))
    assert sampler.batches == [4, 3, 2] == ticks  # one call per tick with every live episode
    assert [len(t.turns) for t in trajectories] == horizons
    for traj, spec in zip(trajectories, specs):
        assert traj.seed == spec.seed and traj.terminated and traj.success is False
        for turn in traj.turns:
            assert turn.action.startswith("<answer>")  # pre-filled prefix, then the sampled text
            assert len(turn.action_ids) == len(turn.action_logprobs) > 0
            assert all(lp <= 0 for lp in turn.action_logprobs)
        # full history: every later prompt extends the previous prompt + sampled ids
        for prev, nxt in zip(traj.turns, traj.turns[1:]):
            assert nxt.prompt_ids[: len(prev.prompt_ids) + len(prev.action_ids)] == prev.prompt_ids + prev.action_ids


def test_oracle_and_noisy_oracle_policies():
    specs = [EpisodeSpec("longhorizon/Execution-v0", seed=i, env_kwargs={"horizon": 5}) for i in range(20)]
    assert all(t.success for t in run_episodes(specs, scripted_policy("oracle")))
    never = run_episodes(specs, scripted_policy("noisy-oracle:0"))
    assert not any(t.success for t in never)
    assert all(not turn.info["step_correct"] for t in never for turn in t.turns)  # every update is wrong


def test_context_overflow_truncates_instead_of_crashing(tiny):
    sampler = TransformersSampler(tiny.model, tiny.tokenizer, SamplingParams(max_new_tokens=4))
    tiny.model.config.max_position_embeddings, old = 300, tiny.model.config.max_position_embeddings
    try:
        specs = [EpisodeSpec("longhorizon/Execution-v0", seed=0, env_kwargs={"horizon": 50, "dict_size": 10})]
        (traj,) = run_episodes(specs, ModelPolicy(sampler, make_strategy("full")))
    finally:
        tiny.model.config.max_position_embeddings = old
    assert traj.truncated and not traj.terminated and traj.success is False
    assert traj.metadata["truncated_reason"] == "context_overflow" and 0 < len(traj.turns) < 50
