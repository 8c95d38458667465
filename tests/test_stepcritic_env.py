"""StepCritic-v0 (DeepCritic, methods-2.md §2): the (problem, steps, label) of every seed equal what
benchmarks/judges.py's critic part builds, the critic reward on hand-made and hostile critiques, the rule-written
oracle critique, seeding and levels, the prompt a critic sees when it is used, and the two recipes: they load,
SFT and then GRPO each train 2 tiny steps, and the model directory serves as a `critic` reward component."""

from __future__ import annotations

from collections import Counter

import gymnasium as gym
import numpy as np
import pytest
import torch

from longhorizon.context import make_strategy
from longhorizon.envs.stepcritic.env import StepCriticEnv
from longhorizon.feedback.critic import CRITIC_SYSTEM, critique_messages, first_error, solution_steps
from longhorizon.feedback.judges import Judge, episode_text
from longhorizon.models import SamplingParams, TransformersSampler, load_model
from longhorizon.rollout import EpisodeSpec, ModelPolicy, NoisyOraclePolicy, run_episodes
from longhorizon.rollout.demos import oracle_demonstrations
from longhorizon.train import load_config, segment_rewards, train
from longhorizon.train.credit_config import RewardComponent
from longhorizon.train.metrics import read_records
from longhorizon.train.reward_sources import RewardSources
from longhorizon.train.session import write_trajectories
from longhorizon.types import Trajectory, Turn
from test_judge_env import Recorder, _reply_chars  # records a Judge's prompts; pays for longer replies

ENV_ID = "longhorizon/StepCritic-v0"
EXECUTION = {"turn_complexity": 1, "dict_size": 2, "value_range": 1, "stop_on_error": True}  # benchmarks/judges.py


# -- the same footing as benchmarks/judges.py's critic part -----------------------------------------------
def _benchmark(env_id: str, knobs: dict, seeds: range) -> list[tuple[str, int, int]]:
    """(critic prompt, label, steps) as the benchmark builds them for these seeds."""
    specs = [EpisodeSpec(env_id, seed=s, env_kwargs=knobs) for s in seeds]
    episodes = run_episodes(specs, NoisyOraclePolicy(0.7, seed=0))
    return [(critique_messages(episode_text(t)[0], solution_steps(t))[1]["content"], first_error(t),
             len(solution_steps(t))) for t in episodes]


def _env_side(kwargs: dict, seeds: range) -> list[tuple[str, int, int]]:
    env = gym.make(ENV_ID, **kwargs).unwrapped
    return [(obs, info["expected"], info["n_steps"]) for obs, info in (env.reset(seed=s) for s in seeds)]


@pytest.mark.parametrize("env_id, knobs, kwargs, seeds", [
    ("longhorizon/Execution-v0", {**EXECUTION, "stop_on_error": False, "horizon": 4}, {}, range(1_000_000, 1_000_032)),
    ("longhorizon/Execution-v0", {"horizon": 7, "turn_complexity": 1, "dict_size": 9, "value_range": 5,
                                  "stop_on_error": False}, {"horizon": 7, "dict_size": 9, "value_range": 5}, range(20)),
    ("longhorizon/Compose-v0", {"mode": "multi", "n_problems": 4}, {"source": "compose"}, range(40)),
    ("longhorizon/Countdown-v0", {}, {"source": "countdown"}, range(20)),
])
def test_problem_steps_and_label_are_the_benchmarks(env_id, knobs, kwargs, seeds):
    assert _env_side(kwargs, seeds) == _benchmark(env_id, knobs, seeds)


def test_the_default_knobs_give_the_benchmarks_label_distribution():
    labels = Counter(label for _, label, _ in _env_side({}, range(1_000_000, 1_000_032)))
    assert labels == {-1: 14, 1: 8, 2: 6, 4: 4}  # benchmarks/results/judges: majority -1, 14/32 = 0.438


def test_the_prompt_is_the_critics():
    env = gym.make(ENV_ID).unwrapped
    obs, info = env.reset(seed=1_000_000)
    assert env.system_prompt == CRITIC_SYSTEM and env.agent_spec.response_prefix == "" and env.agent_spec.stop == ()
    assert obs.startswith("[Problem]\nYou are given a dictionary") and obs.count("\nStep ") == 4
    assert info == {"expected": 4, "n_steps": 4}


# -- the reward: 1 for the labelled first wrong step, else 0 (DeepCritic's, methods-2.md §2) ---------------
def _verdicts(*signs: int) -> str:
    return "\n".join(f"#### The correctness of Step {i} is: \\boxed{{{s}}}" for i, s in enumerate(signs, 1))


# seed 1000007: label 2 of 4 steps; seed 1000001: every step right (-1)
@pytest.mark.parametrize("seed, text, reward, parsed, step_accuracy", [
    (1_000_007, _verdicts(1, -1) + "\n**Answer**: \\boxed{2}", 1.0, 2, 1.0),
    (1_000_007, "**Answer**: \\boxed{2}", 1.0, 2, 0.0),                            # no verdicts: none judged
    (1_000_007, _verdicts(1, 1, -1) + "\n**Answer**: \\boxed{3}", 0.0, 3, 0.5),    # step 3 is past the label
    (1_000_007, _verdicts(-1) + "\n**Answer**: \\boxed{1}", 0.0, 1, 0.0),
    (1_000_007, "**answer** \\boxed{ 2 }", 1.0, 2, 0.0),                           # the parser's leniency
    (1_000_007, "**Answer**: \\boxed{-1}", 0.0, -1, 0.0),
    (1_000_007, "**Answer**: \\boxed{4} no, **Answer**: \\boxed{2}", 1.0, 2, 0.0),  # two answers: the last counts
    (1_000_007, "**Answer**: \\boxed{2} no, **Answer**: \\boxed{4}", 0.0, 4, 0.0),
    (1_000_007, "x" * 100_000 + _verdicts(1, -1) + "**Answer**: \\boxed{2}", 1.0, 2, 1.0),  # 100k characters
    (1_000_001, _verdicts(1, 1, 1, 1) + "\n**Answer**: \\boxed{-1}", 1.0, -1, 1.0),
    (1_000_001, _verdicts(1, 1, -1, 1) + "\n**Answer**: \\boxed{3}", 0.0, 3, 0.75),
])
def test_critic_reward_and_metrics_by_hand(seed, text, reward, parsed, step_accuracy):
    env = gym.make(ENV_ID).unwrapped
    env.reset(seed=seed)
    _, got, terminated, truncated, info = env.step(text)
    assert (got, terminated, truncated, info["parsed"]) == (reward, True, False, parsed) and "error" not in info
    assert info["correct"] is info["success"] is (reward == 1.0)
    assert info["metrics"] == {"accuracy": reward, "parsed": 1.0, "says_none": float(parsed == -1),
                               "step_accuracy": step_accuracy}


@pytest.mark.parametrize("action, error", [
    ("", "no **Answer**: \\boxed{k}"),
    ("Step 2 is wrong: 2", "no **Answer**: \\boxed{k}"),                              # no tags
    ("**Answer**: 2", "no **Answer**: \\boxed{k}"),
    ("**Answer**: \\boxed{two}", "no **Answer**: \\boxed{k}"),
    ("**Answer**: \\boxed{5}", "answer 5 is not a step (1..4) or -1"),                # out of range
    ("**Answer**: \\boxed{0}", "answer 0 is not a step (1..4) or -1"),
    ("**Answer**: \\boxed{-2}", "answer -2 is not a step (1..4) or -1"),
    ("**Answer**: \\boxed{2} **Answer**: \\boxed{9}", "answer 9 is not a step (1..4) or -1"),  # the last counts
    ("x" * 100_000, "no **Answer**: \\boxed{k}"),
    ("**Answer**: \\boxed{" * 20_000, "no **Answer**: \\boxed{k}"),
])
def test_hostile_critiques_end_the_episode_with_a_defined_reward_and_the_reason(action, error):
    env = gym.make(ENV_ID)
    env.reset(seed=1_000_007)
    obs, reward, terminated, truncated, info = env.step(action)
    assert (reward, terminated, truncated, info["parsed"]) == (0.0, True, False, None)
    assert info["error"] == error and error in obs
    assert info["metrics"] == {"accuracy": 0.0, "parsed": 0.0, "says_none": 0.0, "step_accuracy": 0.0}
    with pytest.raises(RuntimeError):
        env.step("**Answer**: \\boxed{2}")


# -- the oracle, seeding, levels ------------------------------------------------------------------------------
@pytest.mark.parametrize("level", list(StepCriticEnv.LEVELS))
def test_the_oracle_critique_names_the_label_and_the_wrong_action_does_not(level):
    env = gym.make(ENV_ID, **StepCriticEnv.LEVELS[level]).unwrapped
    for seed in range(40):
        env.reset(seed=seed)
        _, reward, _, _, info = env.step(env.oracle_action())
        assert reward == 1.0 and info["parsed"] == env.gold and info["metrics"]["step_accuracy"] == 1.0
        env.reset(seed=seed)
        _, reward, _, _, info = env.step(env.wrong_action(np.random.default_rng(seed)))
        assert reward == 0.0 and info["parsed"] not in (None, env.gold)


def test_the_oracle_critique_works_out_each_step_up_to_the_first_wrong_one():
    env = gym.make(ENV_ID).unwrapped
    env.reset(seed=1_000_000)  # dictionary sheep: -1, money: -1; keys money, money, money, sheep; totals -1 -2 -3 -3
    lines = [f"Step {i}: {key} is -1, so the running total is {1 - i} + (-1) = {-i}; the step gives {given}.\n"
             f"#### The correctness of Step {i} is: \\boxed{{{sign}}}"
             for i, key, given, sign in [(1, "money", -1, 1), (2, "money", -2, 1), (3, "money", -3, 1),
                                         (4, "sheep", -3, -1)]]
    assert env.oracle_action() == "\n\n".join(lines + ["**Answer**: \\boxed{4}"])


def test_the_oracle_critique_of_compose_and_countdown():
    env = gym.make(ENV_ID, source="countdown").unwrapped
    env.reset(seed=0)  # the noisy oracle's solution with its last result off by one
    assert env.steps == ["29 + 7 = 36", "37 - 36 = 1", "43 + 1 = 45"] and env.gold == 3
    assert env.oracle_action() == "\n\n".join([
        "Step 1: 29 + 7 = 36 is exact and uses only numbers still available.\n"
        "#### The correctness of Step 1 is: \\boxed{1}",
        "Step 2: 37 - 36 = 1 is exact and uses only numbers still available.\n"
        "#### The correctness of Step 2 is: \\boxed{1}",
        "Step 3: 43 + 1 = 44, not 45.\n#### The correctness of Step 3 is: \\boxed{-1}", "**Answer**: \\boxed{3}"])
    env = gym.make(ENV_ID, source="compose").unwrapped
    env.reset(seed=1)
    assert env.gold == 2 and env.oracle_action() == (
        "Step 1: Problem 1's answer is 6; the step gives 6.\n#### The correctness of Step 1 is: \\boxed{1}\n\n"
        "Step 2: [answer1] = 6 gives [variable2] = 54, so Problem 2's answer is 18; the step gives 12.\n"
        "#### The correctness of Step 2 is: \\boxed{-1}\n\n**Answer**: \\boxed{2}")


def test_seeding_is_deterministic_and_seeds_differ():
    a, b = gym.make(ENV_ID), gym.make(ENV_ID)
    assert a.reset(seed=11) == b.reset(seed=11) and a.unwrapped.oracle_action() == b.unwrapped.oracle_action()
    assert a.reset(seed=10)[0] != a.reset(seed=12)[0]
    a.reset(seed=5)
    first = [a.reset()[0] for _ in range(3)]
    a.reset(seed=5)
    assert [a.reset()[0] for _ in range(3)] == first  # unseeded resets follow the last seed


def test_p_correct_and_horizon_shape_the_solutions():
    assert {gym.make(ENV_ID, p_correct=1.0).reset(seed=s)[1]["expected"] for s in range(20)} == {-1}
    assert {gym.make(ENV_ID, p_correct=0.0).reset(seed=s)[1]["expected"] for s in range(20)} == {1}
    assert [gym.make(ENV_ID, horizon=h).reset(seed=0)[1]["n_steps"] for h in (1, 6)] == [1, 6]
    assert gym.make(ENV_ID, source="compose", horizon=3).reset(seed=0)[1]["n_steps"] == 3
    assert gym.make(ENV_ID, source="countdown", horizon=9).reset(seed=0)[1]["n_steps"] == 3  # unused
    with pytest.raises(ValueError, match="horizon is at most 32 with source compose"):
        gym.make(ENV_ID, source="compose", horizon=33)
    with pytest.raises(ValueError, match="p_correct"):
        gym.make(ENV_ID, p_correct=1.5)


# -- what a critic sees: training prompt == the prompt of Judge.critique -----------------------------------
def test_the_env_prompts_a_critic_exactly_as_judge_critique_does(tiny):
    recorder = Recorder(tiny.tokenizer)
    (episode,) = run_episodes([EpisodeSpec("longhorizon/Execution-v0", seed=1_000_003, env_kwargs={
        **EXECUTION, "stop_on_error": False, "horizon": 4})], NoisyOraclePolicy(0.7, seed=0))
    Judge(recorder, "recorder").critique([(episode_text(episode)[0], solution_steps(episode))])
    sampler = TransformersSampler(tiny.model, tiny.tokenizer, SamplingParams(max_new_tokens=2, seed=0))
    traj = run_episodes([EpisodeSpec(ENV_ID, seed=1_000_003)], ModelPolicy(sampler, make_strategy("full")))[0]
    assert traj.turns[0].prompt_ids == recorder.prompts[0]


# -- the recipes ----------------------------------------------------------------------------------------------
def test_the_recipes_load_and_fit_an_oracle_critique(tiny):
    sft, rl = load_config("recipes/critic-sft.yaml"), load_config("recipes/critic-rl.yaml")
    assert (sft.env_id, rl.env_id) == (ENV_ID, ENV_ID) and sft.env_kwargs == rl.env_kwargs == {}
    assert (sft.algorithm.name, rl.algorithm.name, rl.model) == ("sft", "grpo", f"{sft.run_dir}/model")
    assert sft.demonstrations == "runs/demos-critic.jsonl" and rl.lora.enabled and rl.save_final_model
    assert sft.eval.temperature == rl.eval.temperature == 0.0 and sft.eval.episodes == rl.eval.episodes == 32
    env = gym.make(ENV_ID).unwrapped
    lengths = []
    for seed in [*range(64), *range(1_000_000, 1_000_032)]:
        env.reset(seed=seed)
        lengths.append(len(tiny.tokenizer.encode(env.oracle_action(), add_special_tokens=False)) + 1)  # + end of turn
    assert max(lengths) <= sft.max_new_tokens == rl.max_new_tokens


def test_sft_then_grpo_train_two_tiny_steps_each_and_the_model_is_a_critic(tmp_path, monkeypatch):
    small = "env_kwargs={horizon: 2}"
    demos = tmp_path / "demos.jsonl"
    write_trajectories(demos, oracle_demonstrations(ENV_ID, 4, {"horizon": 2}))
    sft = load_config("recipes/critic-sft.yaml", [
        "model=tiny-random", "autocast_bf16=false", "steps=2", "tasks_per_step=2", "micro_batch_size=2",
        "eval.episodes=0", "checkpoint_every=0", small, f"demonstrations={demos}", f"run_dir={tmp_path / 'sft'}"])
    sft_run = train(sft).run_dir
    assert [r["step"] for r in read_records(sft_run) if "losses/sft_loss" in r] == [1, 2]
    # The tiny random model never writes a readable answer: every reward is 0 and GRPO's advantages are all 0.
    # A turn function that pays for longer replies gives the group some spread so the weights move.
    monkeypatch.setitem(segment_rewards.SEGMENT_REWARDS, "reply_chars", _reply_chars)
    rl = load_config("recipes/critic-rl.yaml", [
        f"model={sft_run / 'model'}", "autocast_bf16=false", "steps=2", "tasks_per_step=2", "algorithm.group_size=2",
        "max_new_tokens=8", "micro_batch_size=4", "eval.episodes=0", "checkpoint_every=0", "optim.lr=0.01", small,
        f"run_dir={tmp_path / 'rl'}", "algorithm.rewards.components=[{name: env}, {name: reply_chars}]"])
    rl_run = train(rl).run_dir
    steps = [r for r in read_records(rl_run) if "charts/reward_mean" in r]
    assert [r["step"] for r in steps] == [1, 2] and steps[-1]["rewards/return_env"] == 0.0
    base = dict(load_model(str(sft_run / "model")).model.named_parameters())
    trained = load_model(str(rl_run / "model"))
    moved = [n for n, w in trained.model.named_parameters() if not torch.equal(w, base[n])]
    assert moved and all("proj" in n for n in moved)  # LoRA targets only
    # ... and it serves as a DeepCritic reward, {name: critic, model: RUN_DIR/model}
    sources = RewardSources.build([RewardComponent(name="critic", model=str(rl_run / "model"), max_new_tokens=4)],
                                  tmp_path / "scoring")
    group = [Trajectory(env_id="longhorizon/Execution-v0", seed=0, group_id=0,
                        turns=[Turn(observation="Keys: a", action=f"<answer>{a}</answer>")]) for a in "45"]
    assert sources.scores("critic", group) == [[0.0], [0.0]]  # unreadable critiques score 0
    sources.close()
