"""JudgePairs-v0 (issue 15, Think-RM stage 2): the judge reward on hand-made and hostile verdicts, both orders
of every pair, seeding, the oracle, procedural labels checked against Execution's verifier, pairs from files,
the prompt a judge sees when it is used, and the judge-rl recipe: it loads, trains 2 tiny steps, and its
model directory serves as a `judge_pairwise` reward component."""

from __future__ import annotations

import re
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from longhorizon.context import make_strategy
from longhorizon.envs.execution.env import ExecutionEnv
from longhorizon.envs.judgepairs.env import THINK_PREFIX, JudgePairsEnv, judge_reward
from longhorizon.envs.judgepairs.pairs import execution_item, file_items, shown, strength_of
from longhorizon.feedback.judges import PAIRWISE_SYSTEM, Judge
from longhorizon.feedback.preferences import PREFERENCES_FILE, make_pair, to_dataset, write_pairs
from longhorizon.models import SamplingParams, TransformersSampler, load_model
from longhorizon.rollout import EpisodeSpec, ModelPolicy, run_episodes
from longhorizon.train import load_config, train
from longhorizon.train import segment_rewards
from longhorizon.train.credit_config import RewardComponent
from longhorizon.train.metrics import read_records
from longhorizon.train.reward_sources import RewardSources
from longhorizon.types import Trajectory, Turn

ENV_ID = "longhorizon/JudgePairs-v0"


# -- the reward: Think-RM's multiclass judge reward (methods-2.md §1, stage 2), and binary on the sign ----------
@pytest.mark.parametrize("text, gold, reward, parsed", [
    ("<think>\nB got turn 2 wrong.</think>\n<answer>-2</answer>", -2, 1.0, True),   # exact strength
    ("<think>\n...</think><answer>-1</answer>", -2, 0.5, True),                     # right direction, wrong strength
    ("<think>\n...</think><answer>-3</answer>", -2, 0.5, True),
    ("<think>\n...</think><answer>2</answer>", -2, 0.0, True),                      # wrong direction
    ("<think>\n...</think><answer>1</answer>", 3, 0.5, True),
    ("<answer>0</answer>", 2, 0.0, False),                                          # a tie is no strength
    ("<answer>0</answer>", -2, 0.0, False),
    ("B is better: 3", 3, 0.0, False),                                              # no tags
    ("<answer>-3</answer> no wait <answer>2</answer>", 2, 1.0, True),               # two answers: the last counts
    ("<answer>-3</answer> no wait <answer>2</answer>", -3, 0.0, True),
    ("<answer>5</answer>", 3, 0.0, False),                                          # out of range
    ("<answer>-4</answer>", -3, 0.0, False),
    ("<answer>1.5</answer>", 1, 0.0, False),
    ("x" * 100_000 + "<answer>1</answer>", 2, 0.5, True),                           # 100k characters
    ("x" * 100_000, 2, 0.0, False),
    ("<answer>" * 50_000, 1, 0.0, False),
])
def test_judge_reward_by_hand(text, gold, reward, parsed):
    got, verdict = judge_reward(text, gold)
    assert got == reward and verdict.parsed == parsed
    assert bool(verdict.reason) != parsed  # an unusable verdict says why


@pytest.mark.parametrize("text, gold, reward", [
    ("<answer>-3</answer>", -1, 1.0),   # a direction-only label: any strength on its side is right
    ("<answer>-1</answer>", -1, 1.0),
    ("<answer>2</answer>", -1, 0.0),
    ("<answer>2</answer>", 1, 1.0),
    ("<answer>0</answer>", 1, 0.0),
    ("no verdict", 1, 0.0),
])
def test_direction_only_labels_get_the_binary_reward(text, gold, reward):
    assert judge_reward(text, gold, exact=False)[0] == reward


@pytest.mark.parametrize("action, reward, error", [
    ("", 0.0, "no <answer></answer> block"),
    ("<think>\nhmm</think><answer>A</answer>", 0.0, "answer holds no number"),
    ("<answer>7</answer>", 0.0, "answer '7' holds no strength in -3..-1, 1..3"),
    ("x" * 200_000, 0.0, "no <answer></answer> block"),
])
def test_hostile_verdicts_end_the_episode_with_a_defined_reward_and_the_reason(action, reward, error):
    env = gym.make(ENV_ID)
    env.reset(seed=4)
    obs, got, terminated, truncated, info = env.step(action)
    assert (got, terminated, truncated) == (reward, True, False)
    assert info["error"] == error and error in obs and info["parsed"] is None
    assert info["metrics"] == {"accuracy": 0.0, "exact": 0.0, "parsed": 0.0, "says_a": 0.0}
    with pytest.raises(RuntimeError):
        env.step("<answer>1</answer>")


def test_step_reports_the_verdict_against_the_label():
    env = gym.make(ENV_ID, horizon=3)
    env.reset(seed=0)
    gold = env.unwrapped.gold
    _, reward, _, _, info = env.step(f"{THINK_PREFIX}...</think><answer>{-gold}</answer>")
    assert reward == 0.0 and info["correct"] is False and info["success"] is False
    assert info["metrics"]["accuracy"] == 0.0 and info["metrics"]["says_a"] == float(-gold < 0)


# -- both orders, seeding, the oracle ------------------------------------------------------------------------
def _sides(obs: str) -> tuple[str, str]:
    a = re.search(r"\[Start of Assistant A's Response\]\n(.*)\n\[End of Assistant A's Response\]", obs, re.S)
    b = re.search(r"\[Start of Assistant B's Response\]\n(.*)\n\[End of Assistant B's Response\]", obs, re.S)
    return a.group(1), b.group(1)


@pytest.mark.parametrize("kwargs", [{}, {"horizon": 1, "dict_size": 4}, {"horizon": 6}])
def test_consecutive_seeds_show_one_pair_in_both_orders(kwargs):
    env = gym.make(ENV_ID, **kwargs).unwrapped
    golds = []
    for k in range(20):
        obs_even, info_even = env.reset(seed=2 * k)
        gold_even = env.gold
        obs_odd, info_odd = env.reset(seed=2 * k + 1)
        assert info_even["pair"] == info_odd["pair"] == k and (info_even["swapped"], info_odd["swapped"]) == (False, True)
        assert env.gold == -gold_even and _sides(obs_odd) == _sides(obs_even)[::-1]
        golds += [gold_even, env.gold]
    assert sum(g < 0 for g in golds) == sum(g > 0 for g in golds) == 20  # A and B are each right half the time


def test_seeding_is_deterministic_and_seeds_differ():
    a, b = gym.make(ENV_ID), gym.make(ENV_ID)
    assert a.reset(seed=11) == b.reset(seed=11)
    assert a.reset(seed=10)[0] != a.reset(seed=12)[0]  # other pairs
    a.reset(seed=5)
    first = [a.reset()[0] for _ in range(3)]
    a.reset(seed=5)
    assert [a.reset()[0] for _ in range(3)] == first  # unseeded resets follow the last seed


@pytest.mark.parametrize("level", list(JudgePairsEnv.LEVELS))
def test_the_oracle_scores_the_maximum_and_the_wrong_action_nothing(level):
    env = gym.make(ENV_ID, **JudgePairsEnv.LEVELS[level]).unwrapped
    for seed in range(30):
        env.reset(seed=seed)
        _, reward, terminated, _, info = env.step(env.oracle_action())
        assert reward == 1.0 and terminated and info["success"] is True and info["metrics"]["exact"] == 1.0
        env.reset(seed=seed)
        assert env.step(env.wrong_action(np.random.default_rng(0)))[1] == 0.0


def test_the_oracle_names_the_worse_side_and_its_wrong_turns():
    env = gym.make(ENV_ID, horizon=4).unwrapped
    env.reset(seed=3)  # pair 1, swapped: the worse episode is A
    item = env.item
    assert env.oracle_action() == (f"<think>\nAssistant A's running total is wrong at turn(s) "
                                   f"{', '.join(map(str, item.wrong_turns))} ({len(item.wrong_turns)} of 4); the "
                                   f"other assistant's totals are all right.\n</think>\n<answer>{env.gold}</answer>")


# -- procedural labels against Execution-v0's verifier ------------------------------------------------------
@pytest.mark.parametrize("wrong, horizon, strength", [
    (1, 1, 3), (1, 2, 2), (2, 2, 3), (1, 3, 1), (2, 3, 2), (3, 3, 3), (1, 4, 1), (2, 4, 2), (3, 4, 3), (4, 4, 3),
    (1, 8, 1), (3, 8, 2), (5, 8, 2), (6, 8, 3), (1, 32, 1), (11, 32, 2), (22, 32, 3),
])
def test_strength_is_the_share_of_wrong_steps_on_thinkrms_scale(wrong, horizon, strength):
    assert strength_of(wrong, horizon) == strength  # ceil(3 m / H)


def _totals(response: str) -> list[int]:
    return [int(x) for x in re.findall(r"<answer>(-?\d+)</answer>", response)]


@pytest.mark.parametrize("pair, horizon", [(0, 1), (1, 3), (2, 5), (7, 8), (9, 16)])
def test_procedural_pairs_differ_exactly_in_the_steps_the_verifier_rejects(pair, horizon):
    item = execution_item(pair, horizon, 8)
    env = ExecutionEnv(horizon=horizon, dict_size=8)
    obs, _ = env.reset(seed=pair)
    assert item.context == obs  # the task's first observation
    good, bad = _totals(item.a), _totals(item.b)
    assert good == env.totals and len(bad) == horizon  # side a is the oracle
    differ = [t + 1 for t in range(horizon) if good[t] != bad[t]]
    assert tuple(differ) == item.wrong_turns and all(1 <= abs(good[t - 1] - bad[t - 1]) <= 9 for t in differ)
    assert item.strength == -strength_of(len(differ), horizon) and item.exact
    assert item.context.count("\n") >= 8  # the dictionary is shown


def test_the_horizon_knob_is_the_length_of_what_is_judged():
    lengths = [len(gym.make(ENV_ID, horizon=h).reset(seed=0)[0]) for h in (1, 4, 16)]
    assert lengths[0] < lengths[1] < lengths[2]
    with pytest.raises(ValueError, match="horizon"):
        gym.make(ENV_ID, horizon=0)


def test_a_long_pair_is_cut_in_the_middle():
    obs = gym.make(ENV_ID, horizon=64, dict_size=60, max_chars=600).reset(seed=0)[0]
    assert obs.count("characters cut") == 3  # the context and both responses


# -- pairs from files -----------------------------------------------------------------------------------------
def _pairs():
    ctx = [{"role": "user", "content": "2+2?"}]
    return [
        make_pair(ctx, [{"role": "assistant", "content": "4"}], [{"role": "assistant", "content": "5"}], "a",
                  "human", strength=-2),
        make_pair(ctx, [{"role": "assistant", "content": "five"}], [{"role": "assistant", "content": "4"}], "b",
                  "verifier"),  # a direction, no strength
        make_pair(ctx, [{"role": "assistant", "content": "4."}], [{"role": "assistant", "content": "four"}], "tie",
                  "human"),  # dropped
    ]


def _check_file_env(pairs: str, exact_first: bool = True) -> None:
    env = gym.make(ENV_ID, pairs=pairs).unwrapped
    assert len(env.items) == 2  # the tie is dropped
    obs, _ = env.reset(seed=0)
    assert "user: 2+2?" in obs and _sides(obs) == ("assistant: 4", "assistant: 5")
    assert env.gold == (-2 if exact_first else -1)
    assert env.step("<answer>-1</answer>")[1] == (0.5 if exact_first else 1.0)
    env.reset(seed=1)
    assert env.gold == (2 if exact_first else 1) and env.step("<answer>2</answer>")[1] == 1.0
    env.reset(seed=3)  # pair 1 swapped: "4" is A, and A is better; only the direction is labelled
    assert env.gold == -1 and not env.item.exact and env.step("<answer>-3</answer>")[1] == 1.0
    env.reset(seed=4)  # wraps around to pair 0
    assert _sides(env._last_obs) == ("assistant: 4", "assistant: 5")
    for seed in range(8):
        env.reset(seed=seed)
        assert env.step(env.oracle_action())[1] == 1.0


def test_pairs_from_a_jsonl_file_and_a_prefs_build_directory(tmp_path):
    write_pairs(tmp_path / "pairs.jsonl", _pairs())
    _check_file_env(str(tmp_path / "pairs.jsonl"))
    write_pairs(tmp_path / "run" / PREFERENCES_FILE, _pairs())
    _check_file_env(str(tmp_path / "run"))


def test_pairs_from_a_trl_datasets_directory(tmp_path):
    pytest.importorskip("datasets")
    to_dataset(_pairs()).save_to_disk(str(tmp_path / "ds"))  # TRL's format: chosen / rejected, no strengths
    items = file_items(tmp_path / "ds")
    assert len(items) == 2 and not any(item.exact for item in items)
    assert [shown(item, False)[3] for item in items] == [-1, -1]  # chosen is stored as a
    assert gym.make(ENV_ID, pairs=str(tmp_path / "ds")).unwrapped.items == items


def test_a_missing_or_tied_file_fails_when_the_env_is_made(tmp_path):
    with pytest.raises(Exception, match="no preference pairs"):
        gym.make(ENV_ID, pairs=str(tmp_path / "nothing.jsonl"))
    write_pairs(tmp_path / "ties.jsonl", _pairs()[2:])
    with pytest.raises(Exception, match="no labelled pairs"):
        gym.make(ENV_ID, pairs=str(tmp_path / "ties.jsonl"))


# -- what a judge sees: training prompt == the prompt of judge_pairwise --------------------------------------
class Recorder:
    """A sampler stand-in that records the prompts a Judge sends."""

    def __init__(self, tokenizer):
        self.tokenizer, self.params, self.prompts = tokenizer, SamplingParams(max_new_tokens=2), []

    def with_params(self, params):
        return self

    def generate(self, prompts):
        self.prompts += prompts
        return [SimpleNamespace(text="</think><answer>1</answer>") for _ in prompts]


def test_the_env_prompts_a_judge_exactly_as_judge_pairwise_does(tiny):
    env = gym.make(ENV_ID).unwrapped
    env.reset(seed=3)
    assert env.system_prompt == PAIRWISE_SYSTEM
    context, a, b, _ = shown(env.item, env.swapped)
    recorder = Recorder(tiny.tokenizer)
    Judge(recorder, "recorder", max_chars=env.max_chars).compare([(context, a, b)])
    sampler = TransformersSampler(tiny.model, tiny.tokenizer, SamplingParams(max_new_tokens=2, seed=0))
    traj = run_episodes([EpisodeSpec(ENV_ID, seed=3)], ModelPolicy(sampler, make_strategy("full")))[0]
    assert traj.turns[0].prompt_ids == recorder.prompts[0]
    assert traj.turns[0].action.startswith(THINK_PREFIX)


# -- the recipe -----------------------------------------------------------------------------------------------
def test_the_judge_rl_recipe_loads():
    cfg = load_config("recipes/judge-rl.yaml")
    assert cfg.env_id == ENV_ID and cfg.algorithm.name == "grpo" and cfg.algorithm.group_size == 8
    assert cfg.tasks_per_step % 2 == 0 and cfg.eval.episodes % 2 == 0  # both orders of every pair
    assert cfg.algorithm.kl_coef == 1e-4 and cfg.algorithm.kl_estimator == "k3" and cfg.eval.temperature == 0.6
    assert cfg.save_final_model and not cfg.algorithm.rewards.components  # the env's reward is the judge reward


def _reply_chars(traj: Trajectory) -> list[float]:
    return [len(t.action) / 100 for t in traj.turns]


def test_judge_rl_trains_two_tiny_steps_and_its_model_is_a_pairwise_judge(tmp_path, monkeypatch):
    # The tiny random model never writes a readable verdict: the judge reward is 0 for every sample and GRPO's
    # advantages are all 0. A turn function that pays for longer replies gives the group some spread so the
    # weights move; the env's reward stays in the mix.
    monkeypatch.setitem(segment_rewards.SEGMENT_REWARDS, "reply_chars", _reply_chars)
    run = tmp_path / "judge"
    cfg = load_config("recipes/judge-rl.yaml", [
        "model=tiny-random", "autocast_bf16=false", "steps=2", "tasks_per_step=2", "algorithm.group_size=2",
        "max_new_tokens=8", "micro_batch_size=4", "eval.episodes=0", "checkpoint_every=0", "optim.lr=0.01",
        "env_kwargs={horizon: 1, dict_size: 2}", f"run_dir={run}",
        "algorithm.rewards.components=[{name: env}, {name: reply_chars}]"])
    result = train(cfg)
    steps = [r for r in read_records(result.run_dir) if "charts/reward_mean" in r]
    assert [r["step"] for r in steps] == [1, 2] and "rewards/return_env" in steps[-1]
    assert steps[-1]["rewards/return_env"] == 0.0  # unreadable verdicts score 0, as Think-RM's reward says
    base = dict(load_model("tiny-random").model.named_parameters())
    trained = load_model(str(run / "model"))  # the exported, LoRA-merged model directory
    moved = [n for n, w in trained.model.named_parameters() if not torch.equal(w, base[n])]
    assert moved and any("q_proj" in n for n in moved) and all("proj" in n for n in moved)  # LoRA targets only
    # ... and it serves as a Think-RM judge, as {name: judge_pairwise, model: RUN_DIR/model}
    component = RewardComponent(name="judge_pairwise", model=str(run / "model"), max_new_tokens=4)
    sources = RewardSources.build([component], tmp_path / "scoring")
    group = [Trajectory(env_id="e", seed=0, group_id=0, turns=[Turn(observation="2+2?", action=a)]) for a in "45"]
    scores = sources.scores("judge_pairwise", group)
    assert len(scores) == 2 and scores[0][0] == -scores[1][0] and sources.metrics()["judge_parsed_frac"] == 0.0
    sources.close()
