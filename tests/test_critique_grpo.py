"""Critique-GRPO: the policy-shaping loss by hand, the critiques, the refinement prompt, the replay, the selection
rule, and training on tiny-random (parameters move, resume is exact, bad settings are refused)."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch

from longhorizon.algorithms import policy_shaping_loss
from longhorizon.context import make_strategy
from longhorizon.envs.core.wrappers import REFINE_TEMPLATE, apply_wrappers
from longhorizon.models import SamplingParams, TransformersSampler, load_model
from longhorizon.rollout import EpisodeSpec, ModelPolicy, run_episodes
from longhorizon.rollout.policies import ReplayPolicy
from longhorizon.train import load_config, train
from longhorizon.train.critique import (Critic, check_replay, collect, feedback_critique, keep, numbered,
                                        simple_critique)
from longhorizon.train.credit_config import CritiqueConfig
from longhorizon.train.metrics import read_records
from longhorizon.types import Trajectory, Turn
from tests.test_train import TEST_ENV, assert_same_weights, crash_then_resume

EXEC = "longhorizon/Execution-v0"
KNOBS = {"horizon": 2, "turn_complexity": 1, "dict_size": 2, "value_range": 1, "stop_on_error": True}


# ------------------------------------------------------------------ the policy-shaping loss, by hand


def test_policy_shaping_loss_and_gradient_by_hand():
    # p = 0.5 (A = 1), p = 0.2 (A = -2), a masked token with an infinite log-prob; gamma 0.1, token mean over 2
    logp = torch.tensor([[math.log(0.5), math.log(0.2), float("inf")]], requires_grad=True)
    adv = torch.tensor([[1.0, -2.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, metrics = policy_shaping_loss(logp, adv, mask, gamma=0.1)
    # f(0.5) = 0.5 / 0.6, f(0.2) = 0.2 / 0.3; loss = (-1 * 5/6 + 2 * 2/3) / 2 = 0.25
    assert loss.item() == pytest.approx(0.25, abs=1e-6)
    loss.backward()
    # d/dlogp of -A f(p) = -A gamma p / (p + gamma)^2: -0.05 / 0.36 and 2 * 0.02 / 0.09, each / 2
    assert logp.grad[0, 0].item() == pytest.approx(-0.05 / 0.36 / 2, abs=1e-6)
    assert logp.grad[0, 1].item() == pytest.approx(0.04 / 0.09 / 2, abs=1e-6)
    assert logp.grad[0, 2].item() == 0.0
    assert metrics["shaped_prob_mean"] == pytest.approx(0.35, abs=1e-6)


def test_policy_shaping_at_its_limits():
    logp = torch.log(torch.tensor([[0.3, 0.9]]))
    adv, mask = torch.tensor([[1.0, 1.0]]), torch.ones(1, 2)
    # gamma -> 0: f(p) -> 1 for every token (no gradient); large gamma: f(p) ~ p / gamma
    small, _ = policy_shaping_loss(logp, adv, mask, gamma=1e-9)
    assert small.item() == pytest.approx(-1.0, abs=1e-6)
    large, _ = policy_shaping_loss(logp, adv, mask, gamma=1e6)
    assert large.item() == pytest.approx(-(0.3 + 0.9) / 2 / 1e6, rel=1e-4)
    zero, _ = policy_shaping_loss(logp, torch.zeros(1, 2), mask)  # equal rewards: no loss
    assert zero.item() == 0.0
    with pytest.raises(ValueError, match="gamma > 0"):
        policy_shaping_loss(logp, adv, mask, gamma=0.0)


# ------------------------------------------------------------------ critiques and the refinement prompt


def _episode(actions: list[str], correct: list[bool], expected: list[int], success: bool) -> Trajectory:
    turns = [Turn(observation=f"obs {k}", action=a, reward=float(c),
                  info={"correct": c, "expected": e, "parsed": int(a.strip("<answer>/")), "turn": k + 1})
             for k, (a, c, e) in enumerate(zip(actions, correct, expected))]
    return Trajectory(env_id=EXEC, seed=0, turns=turns, success=success)


def test_simple_critiques_are_the_codes_texts():
    assert simple_critique(True) == "The generated solution is correct."
    assert simple_critique(False) == "The generated solution is incorrect."
    assert simple_critique(False, "<answer>3</answer>") == ("The generated solution is incorrect, the ground truth "
                                                            "is <answer>3</answer>.")
    assert numbered(["a"], 100) == "a"
    assert numbered(["a", "b"], 100) == "Turn 1: a\nTurn 2: b"


def test_feedback_critique_targets_the_first_wrong_turn():
    traj = _episode(["<answer>1</answer>", "<answer>5</answer>"], [True, False], [1, 2], success=False)
    assert feedback_critique(traj, []) == ("Turn 2 is wrong. Your running total is too high (off by less than 10). "
                                           "Re-check the value of each key and your additions.")
    one = _episode(["<answer>-4</answer>"], [False], [0], success=False)
    assert feedback_critique(one, []) == ("The generated solution is incorrect. Your running total is too low (off by "
                                          "less than 10). Re-check the value of each key and your additions.")
    right = _episode(["<answer>1</answer>"], [True], [1], success=True)
    assert feedback_critique(right, []) == "The generated solution is correct."


def test_critic_sources_simple_gt_and_simple():
    wrong = _episode(["<answer>5</answer>"], [False], [1], success=False)
    right = _episode(["<answer>1</answer>", "<answer>2</answer>"], [True, True], [1, 2], success=True)
    gt = Critic(CritiqueConfig(source="simple_gt")).critiques([wrong, right], [["<answer>1</answer>"], ["x", "y"]])
    assert gt == ["The generated solution is incorrect, the ground truth is <answer>1</answer>.",
                  "The generated solution is correct, the ground truth is Turn 1: x\nTurn 2: y."]
    assert Critic(CritiqueConfig(source="simple")).critiques([wrong], [[]]) == ["The generated solution is incorrect."]


def test_refine_wrapper_puts_attempt_and_critique_in_the_first_observation_only():
    env = gym.make(EXEC, **KNOBS)
    task, _ = env.reset(seed=3)
    wrapped = apply_wrappers(gym.make(EXEC, **KNOBS), [{"name": "refine", "attempt": "<answer>7</answer>",
                                                        "critique": "The generated solution is incorrect."}])
    first, _ = wrapped.reset(seed=3)
    assert first == REFINE_TEMPLATE.format(task=task, attempt="<answer>7</answer>",
                                           critique="The generated solution is incorrect.")
    assert first.startswith(f"Given the following inputs:\n**Question**: {task}\n**Previous Solution**: <answer>7</answer>")
    answer = env.unwrapped.oracle_action()
    assert wrapped.step(answer)[0] == env.step(answer)[0]  # later observations are the env's own
    with pytest.raises(ValueError, match="non-empty critique"):
        apply_wrappers(gym.make(EXEC, **KNOBS), [{"name": "refine", "attempt": "a", "critique": " "}])


def test_keep_is_the_codes_selection_rule():
    def t(success, reward):
        return Trajectory(env_id=EXEC, seed=0, turns=[Turn("o", "a", reward)], success=success)

    assert keep([t(False, 0.5), t(True, 1.0), t(True, 1.0)]) == 1  # the first that succeeds
    assert keep([t(False, 0.2), t(False, 0.7), t(False, 0.7)]) == 1  # else the first with the highest return
    assert keep([t(False, 0.0)]) == 0


# ------------------------------------------------------------------ replay and collection on tiny-random


@pytest.fixture(scope="module")
def tiny_policy():
    torch.manual_seed(0)
    lm = load_model("tiny-random")
    sampler = TransformersSampler(lm.model, lm.tokenizer, SamplingParams(temperature=1.0, max_new_tokens=4, seed=0))
    return ModelPolicy(sampler, make_strategy("full"))


def test_replay_takes_the_recorded_tokens_after_the_unconditioned_prompts(tiny_policy):
    spec = EpisodeSpec(EXEC, seed=5, env_kwargs={**KNOBS, "stop_on_error": False}, group_id=3)
    refine = EpisodeSpec(EXEC, seed=5, env_kwargs=spec.env_kwargs, group_id=3,
                         wrappers=[{"name": "refine", "attempt": "x", "critique": "The generated solution is incorrect."}])
    recorded = run_episodes([refine], tiny_policy)[0]
    plain = run_episodes([spec], tiny_policy)[0]  # what the policy sees without the critique
    replayed = run_episodes([spec], ReplayPolicy(tiny_policy, {3: recorded}))[0]
    check_replay(replayed, recorded)
    assert [t.action_ids for t in replayed.turns] == [t.action_ids for t in recorded.turns]
    assert [t.action_logprobs for t in replayed.turns] == [t.action_logprobs for t in recorded.turns]
    assert replayed.turns[0].prompt_ids == plain.turns[0].prompt_ids  # no critique in the trained context
    assert recorded.turns[0].prompt_ids != plain.turns[0].prompt_ids
    assert "Previous Solution" not in replayed.turns[0].observation
    assert [t.reward for t in replayed.turns] == [t.reward for t in recorded.turns]
    short = Trajectory(env_id=EXEC, seed=5, turns=recorded.turns[:1], group_id=3)
    with pytest.raises(RuntimeError, match="not deterministic"):
        run_episodes([spec], ReplayPolicy(tiny_policy, {3: short}))


def test_collect_gives_g_minus_one_episodes_and_one_shaped_refinement_per_task(tiny_policy):
    specs = [EpisodeSpec(EXEC, seed=k, env_kwargs=KNOBS, group_id=k) for k in (0, 1) for _ in range(3)]
    trajs, metrics = collect(specs, lambda s: run_episodes(s, tiny_policy), tiny_policy,
                             Critic(CritiqueConfig(source="simple_gt")))
    assert [t.group_id for t in trajs] == [0, 0, 0, 1, 1, 1]
    assert [bool(t.metadata.get("refinement")) for t in trajs] == [False, False, True] * 2
    for t in trajs[2], trajs[5]:
        assert t.metadata["critique"].startswith("The generated solution is")
        assert "the ground truth is" in t.metadata["critique"]
        assert "Previous Solution" not in t.turns[0].observation
    assert set(metrics) == {"critique/initial_success", "critique/refinement_success", "critique/selected_success",
                            "critique/rescued_groups", "critique/refinement_tokens"}
    assert metrics["critique/refinement_tokens"] == sum(len(x.action_ids) for t in (trajs[2], trajs[5]) for x in t.turns)


@pytest.mark.parametrize("source", ["model", "critic"])
def test_model_written_critiques_are_bounded_and_cached(tmp_path, tiny_policy, source):
    wrong = _episode(["<answer>5</answer>", "<answer>6</answer>"], [False, False], [1, 2], success=False)
    right = _episode(["<answer>1</answer>"], [True], [1], success=True)
    critic = Critic.build(CritiqueConfig(source=source, model="tiny-random", max_new_tokens=6), tmp_path)
    texts = critic.critiques([wrong, right], [["<answer>1</answer>", "<answer>2</answer>"], ["<answer>1</answer>"]])
    assert texts[1] == "The generated solution is correct, the ground truth is <answer>1</answer>."
    assert texts[0] and not texts[0].startswith("The generated solution is correct")
    assert len(critic.judge.tokenizer(texts[0], add_special_tokens=False)["input_ids"]) <= 8  # 6 tokens, re-tokenised
    again = critic.critiques([wrong], [["<answer>1</answer>", "<answer>2</answer>"]])
    assert again == texts[:1] and critic.cache.hits == 1  # a resumed run reads it back
    critic.close()


# ------------------------------------------------------------------ training


def _cfg(tmp_path, *sets):
    """The toy env of test_train (its reward varies between random samples; no oracle: critiques without one)."""
    base = ["model=tiny-random", f"env_id={TEST_ENV}", "env_kwargs={horizon: 2}", "max_new_tokens=5", "steps=2",
            "tasks_per_step=2", "algorithm.name=critique_grpo", "algorithm.group_size=3", "micro_batch_size=3",
            "eval.episodes=0", "torch_threads=1", f"run_dir={tmp_path / 'run'}", "save_final_model=false",
            "checkpoint_every=1", "optim.lr=0.01", "algorithm.critique.source=simple"]
    return load_config(None, base + list(sets))


def test_critique_grpo_trains_moves_parameters_and_logs_the_shaping_loss(tmp_path):
    cfg = _cfg(tmp_path, "algorithm.critique.source=feedback")  # rule feedback without a ground truth
    before = {k: v.clone() for k, v in load_model("tiny-random").model.state_dict().items()}
    result = train(cfg)
    records = read_records(result.run_dir)
    assert [r["step"] for r in records if "critique/initial_success" in r] == [1, 2]
    shaped = [r["losses/shaping_loss"] for r in records if "losses/shaping_loss" in r]
    assert shaped and all(math.isfinite(x) for x in shaped)
    from longhorizon.train.checkpoint import latest_checkpoint, load_weights

    after = load_weights(latest_checkpoint(result.run_dir))["policy"]
    assert any(not torch.equal(before[k], after[k]) for k in after)


def test_critique_grpo_resumes_exactly(tmp_path):
    sets = ["steps=4", "checkpoint_every=2"]
    straight = train(_cfg(tmp_path / "straight", *sets))
    resumed = crash_then_resume(_cfg(tmp_path / "broken", *sets))
    assert_same_weights(straight, resumed)


@pytest.mark.parametrize("sets, message", [
    (["algorithm.name=grpo", "algorithm.critique.source=simple"], "read by critique_grpo only"),
    (["algorithm.group_size=1"], "group_size >= 2"),
    (["context=markovian"], "replays each refinement"),
    (["algorithm.critique.source=model"], "needs critique.model"),
    (["rollout.workers=1", "rollout.max_staleness=1"], "synchronous"),
    (["algorithm.critique.model=tiny-random"], "used only with the sources model and critic"),
])
def test_bad_critique_settings_are_refused(tmp_path, sets, message):
    with pytest.raises(Exception, match=message):
        _cfg(tmp_path, *sets)


def test_a_critique_model_that_is_not_a_model_is_a_user_error(tmp_path):
    from longhorizon.errors import UserError

    with pytest.raises(UserError, match="not-a-model"):
        train(_cfg(tmp_path, "algorithm.critique.source=model", f"algorithm.critique.model={tmp_path / 'not-a-model'}"))
