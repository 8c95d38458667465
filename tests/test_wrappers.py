"""Feedback wrappers: hand-worked reward sequences, feedback generators, reminder cadence, turn limits, fuzzing.

The goal reminder is the context strategies' `reminder_every` (`context/reminder.py`); its cadence is
checked here on the views the runner builds, with the task statement a wrapper gives through `agent_spec`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import longhorizon.envs  # noqa: F401  (registers the envs)
from longhorizon.context import make_strategy
from longhorizon.envs.core.base import TextEnv
from longhorizon.rollout import Action, EpisodeSpec, oracle_action, run_episodes
from longhorizon.envs.core.wrappers import (
    WRAPPERS,
    FeedbackContext,
    FeedbackLoop,
    TryAgain,
    TurnLimit,
    apply_wrappers,
    execution_feedback,
    rule_feedback,
    sequence_feedback,
)

EXEC = "longhorizon/Execution-v0"


def execution(**kwargs: Any) -> gym.Env:
    return gym.make(EXEC, horizon=1, dict_size=10, **kwargs)


def truth(env: gym.Env) -> int:
    return env.unwrapped.totals[env.unwrapped.turn]


def answer(value: int) -> str:
    return f"<answer>{value}</answer>"


def play(env: gym.Env, actions: list[str]) -> list[tuple]:
    return [env.step(a) for a in actions]


class WordEnv(TextEnv):
    """A single-answer env without `parsed`/`expected` in info: guess the secret three-word phrase."""

    WORDS = ["red", "fox", "jumps", "blue", "cat", "sleeps"]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.secret = " ".join(self.np_random.choice(self.WORDS, size=3))
        return f"Guess the phrase (seed hint {len(self.secret)}).", {}

    def step(self, action):
        ok = " ".join(str(action).split()) == self.secret
        return "Over.", float(ok), True, False, {"correct": ok, "success": ok}

    def oracle_action(self):
        return self.secret


# -- TryAgain (UFO) ------------------------------------------------------------------------


def test_try_again_hand_worked_episode():
    """wrong, repeated wrong, bad format, right at attempt index t=3.

    r = 0.5^t * 1[correct] - 0.1 * 1[bad format], and on the last step - 0.5 * (1 - E/T)
    with T = 3 parseable answers (x, x, truth) and E = 2 distinct: 0.125 - 1/6.
    """
    env = TryAgain(execution())
    env.reset(seed=0)
    x = truth(env) + 3
    steps = play(env, [answer(x), f"<answer> {x} </answer>", "I think it is 5", answer(truth(env))])
    rewards = [s[1] for s in steps]
    assert rewards == pytest.approx([0.0, 0.0, -0.1, 0.125 - 0.5 * (1 - 2 / 3)], abs=1e-12)
    assert [s[2] for s in steps] == [False, False, False, True] and not any(s[3] for s in steps)
    assert [s[4]["repeated"] for s in steps] == [False, True, False, False]
    assert [s[4]["attempt"] for s in steps] == [1, 2, 3, 4]
    assert steps[0][0] == "Let's try again." and "no <answer>" in steps[2][0]
    final = steps[-1][4]
    assert final["success"] is True
    assert final["metrics"]["attempts"] == 4.0 and final["metrics"]["unique_answer_ratio"] == pytest.approx(2 / 3)
    assert all("success" not in s[4] and "metrics" not in s[4] for s in steps[:-1])


@pytest.mark.parametrize("wrong_before,expected", [(0, 1.0), (1, 0.5), (2, 0.25), (4, 0.0625)])
def test_try_again_decays_by_half_per_attempt(wrong_before, expected):
    env = TryAgain(execution())
    env.reset(seed=1)
    steps = play(env, [answer(truth(env) + i + 1) for i in range(wrong_before)] + [answer(truth(env))])
    assert steps[-1][1] == pytest.approx(expected, abs=1e-12) and steps[-1][2]


def test_try_again_runs_out_of_attempts_and_pays_the_diversity_penalty():
    env = TryAgain(execution(), max_attempts=3, decay=0.9, repeat_penalty=0.3, format_penalty=0.2)
    env.reset(seed=2)
    x = truth(env) - 1
    steps = play(env, [answer(x), answer(x), answer(x)])
    # E/T = 1/3: penalty 0.3 * (2/3) on the last step only.
    assert [s[1] for s in steps] == pytest.approx([0.0, 0.0, -0.2], abs=1e-12)
    assert steps[-1][2] and not steps[-1][3] and steps[-1][4]["success"] is False
    assert "no attempts are left" in steps[-1][0]
    with pytest.raises(RuntimeError):
        env.step(answer(x))


def test_try_again_replays_the_same_task_and_is_deterministic():
    env = TryAgain(execution())
    obs, _ = env.reset(seed=5)
    first = truth(env)
    env.step(answer(first + 1))
    assert truth(env) == first and env.unwrapped.turn == 0
    other = TryAgain(execution())
    other.reset(seed=5)
    assert [env.reset()[0] for _ in range(3)] == [other.reset()[0] for _ in range(3)]


def test_try_again_works_on_a_generic_env_without_parsed_answers():
    env = TryAgain(WordEnv())
    env.reset(seed=3)
    secret = env.unwrapped.secret
    assert secret != "cat cat cat"
    steps = play(env, ["cat cat cat", " CAT  cat\ncat", secret])  # raw answers, normalised as in UFO
    assert [s[4]["repeated"] for s in steps] == [False, True, False]
    assert [s[1] for s in steps] == pytest.approx([0.0, 0.0, 0.25 - 0.5 * (1 - 2 / 3)])
    assert steps[-1][4]["success"] is True


class DriftingEnv(WordEnv):
    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=None)
        return obs + str(self.np_random.random()), info


def test_retry_refuses_a_nondeterministic_env():
    env = TryAgain(DriftingEnv())
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="deterministic"):
        env.step("no")


# -- FeedbackLoop (Feedback Friction) --------------------------------------------------------


class FakeModel:
    def __init__(self, reply: str):
        self.reply, self.prompts = reply, []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.reply


def test_feedback_loop_with_a_model_generator():
    model = FakeModel("")
    env = FeedbackLoop(execution(), feedback="model", generate=model)
    env.reset(seed=0)
    t = truth(env)
    model.reply = f"Check key two, the sum should be {t}."
    obs, reward, terminated, _, info = env.step(answer(t + 4))
    prompt = model.prompts[0]
    assert f"\n{t}\n" in prompt and "Do NOT reveal" in prompt and answer(t + 4) in prompt and env.task in prompt
    assert info["feedback"] == "Check key two, the sum should be [redacted]."
    assert "Feedback: Check key two" in obs and reward == 0.0 and not terminated
    _, reward, terminated, _, info = env.step(answer(t))
    assert reward == 1.0 and terminated and info["metrics"]["rounds_to_correct"] == 1.0


def test_feedback_loop_rule_feedback_and_metrics():
    env = FeedbackLoop(execution())
    env.reset(seed=0)
    t = truth(env)
    steps = play(env, [answer(t + 3), answer(t - 30), answer(t + 3), answer(t)])
    assert steps[0][4]["feedback"].startswith("Your running total is too high (off by less than 10)")
    assert "too low (off by 10 or more)" in steps[1][0]
    assert [s[4]["repeated"] for s in steps] == [False, False, True, False]
    assert [s[1] for s in steps] == [0.0, 0.0, 0.0, 1.0]
    metrics = steps[-1][4]["metrics"]
    assert metrics["rounds_to_correct"] == 3.0 and metrics["repeated_rejected"] == 1.0 and metrics["repeats"] == 1.0
    assert str(t) not in " ".join(s[4]["feedback"] for s in steps[:-1])


def test_feedback_loop_unsolved_has_no_rounds_to_correct():
    env = FeedbackLoop(execution(), max_attempts=2)
    env.reset(seed=0)
    steps = play(env, [answer(truth(env) + 1), answer(truth(env) + 2)])
    assert steps[-1][2] and steps[-1][4]["success"] is False and "rounds_to_correct" not in steps[-1][4]["metrics"]
    assert steps[-1][4]["metrics"]["rounds"] == 2.0 and "No attempts are left" in steps[-1][0]


def test_feedback_loop_rejects_repeats_without_using_an_attempt():
    env = FeedbackLoop(execution(), max_attempts=2, reject_repeats=True, max_rejections=2)
    _, info = env.reset(seed=0)
    x = answer(truth(env) + 1)
    steps = play(env, [x, x])
    assert steps[1][4]["error"].startswith("you already gave the answer") and steps[1][4]["error"] in steps[1][0]
    assert not steps[1][2] and len(env.attempts) == 1
    assert all("temperature" not in s[4] for s in steps)
    obs, _, terminated, _, info = env.step(f"<answer>{truth(env) + 1}</answer> ")
    assert terminated and info["success"] is False and "Too many repeated answers" in obs


def test_feedback_loop_has_no_rising_temperature():
    # Removed on purpose: training samples and scores every turn with one temperature.
    with pytest.raises(TypeError, match="temperature_base"):
        FeedbackLoop(execution(), temperature_base=0.9)


def test_feedback_loop_custom_callable_and_generic_env():
    seen: list[FeedbackContext] = []

    def feedback(ctx: FeedbackContext) -> str:
        seen.append(ctx)
        return "nope"

    env = FeedbackLoop(WordEnv(), feedback=feedback)
    env.reset(seed=3)
    assert env.unwrapped.secret != "cat cat cat"
    env.step("cat cat cat")
    assert seen[0].expected == env.unwrapped.secret and seen[0].round == 1 and seen[0].error is None


def test_rule_feedback_functions():
    ctx = FeedbackContext(None, "task", "a", "red fox sleeps", "red cat jumps", None, 1)
    assert rule_feedback(ctx) == "Parts 2, 3 (counting from 1) are wrong."
    assert sequence_feedback("red fox", "red fox jumps") == "Your answer has 2 parts but the correct answer has 3."
    assert sequence_feedback("a b", "a c") == "Part 2 (counting from 1) is wrong."
    numeric = FeedbackContext(EXEC, "task", "a", 7, 20, None, 1)
    assert rule_feedback(numeric) == "Your answer is too low (off by 10 or more)."
    assert execution_feedback(numeric).startswith("Your running total is too low")
    bad = FeedbackContext(EXEC, "task", "", None, 20, "no tag", 1)
    assert "required format" in execution_feedback(bad)


# -- Reminder (Drift No More) and TurnLimit ---------------------------------------------------------


class TaskText(gym.Wrapper):
    """Tells the agent a task statement of its own (through `agent_spec`)."""

    def __init__(self, env: gym.Env, text: str):
        super().__init__(env)
        self.text = text

    @property
    def agent_spec(self):
        return replace(self.env.get_wrapper_attr("agent_spec"), task_statement=self.text)


class Reminding:
    """The oracle's actions; records each observation as the strategy's Reminder would show it."""

    def __init__(self, every: int):
        self.reminder, self.shown = make_strategy("full", reminder_every=every), []

    def act(self, episodes):
        self.shown += [self.reminder.remind(e.view()).observation for e in episodes]
        return [Action(text=oracle_action(e.env)) for e in episodes]


def reminded_views(env_id: str, every: int, wrappers=(), **knobs) -> list[str]:
    policy = Reminding(every)
    run_episodes([EpisodeSpec(env_id, seed=0, env_kwargs=knobs, wrappers=list(wrappers))], policy)
    return policy.shown


def test_reminder_every_k_turns_but_not_on_the_last(monkeypatch):
    monkeypatch.setitem(WRAPPERS, "task_text", TaskText)
    shown = reminded_views(EXEC, 3, [{"name": "task_text", "text": "Keep the running sum."}], horizon=10, dict_size=10)
    reminded = [obs.endswith("Reminder of your task:\nKeep the running sum.") for obs in shown]
    assert len(shown) == 10 and [t for t, r in enumerate(reminded) if r] == [3, 6, 9]  # after turns 3, 6, 9


def test_reminder_uses_the_env_task_statement():
    env = gym.make("longhorizon/Tabletop-v0", n_goals=3)
    env.reset(seed=0)
    shown = reminded_views("longhorizon/Tabletop-v0", 2, n_goals=3)
    assert "Reminder" not in shown[1] and shown[2].endswith(env.unwrapped.task_statement)


def test_reminder_defaults_to_the_first_observation():
    shown = reminded_views(EXEC, 1, horizon=2, dict_size=10)
    assert shown[1].endswith("Reminder of your task:\n" + shown[0])


def test_turn_limit_truncates_not_terminates():
    env = TurnLimit(gym.make("longhorizon/Tabletop-v0", n_blocks=6, n_goals=2), max_turns=3)
    for _ in range(2):  # the counter restarts on reset
        env.reset(seed=0)
        steps = play(env, ["x", "y", "z"])
        assert [s[3] for s in steps] == [False, False, True] and not any(s[2] for s in steps)
        info = steps[-1][4]
        assert info["turn_limit_reached"] and info["success"] is False
        assert info["metrics"]["illegal_actions"] == 3.0 and "turn limit (3 turns)" in steps[-1][0]


def test_turn_limit_keeps_termination_on_the_same_turn():
    env = TurnLimit(execution(), max_turns=1)
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(answer(truth(env)))
    assert terminated and not truncated and "turn_limit_reached" not in info


# -- registry and validation -----------------------------------------------------------------------


def test_apply_wrappers_in_order():
    env = apply_wrappers(execution(), [{"name": "try_again", "max_attempts": 2}, {"name": "turn_limit", "max_turns": 5},
                                       {"name": "feedback_loop"}])
    assert isinstance(env, FeedbackLoop) and isinstance(env.env, TurnLimit) and isinstance(env.env.env, TryAgain)
    assert env.env.env.max_attempts == 2
    assert set(WRAPPERS) == {"try_again", "feedback_loop", "turn_limit", "hint", "feedback_marker", "refine",
                             "corrections"}


@pytest.mark.parametrize("specs,match", [
    ([{"name": "nope"}], "unknown wrapper"), ([{"max_turns": 2}], "unknown wrapper"),
    ([{"name": "turn_limit", "max_turns": 2, "bogus": 1}], "turn_limit"),
    ([{"name": "turn_limit", "max_turns": 0}], "max_turns"), ([{"name": "try_again", "decay": 2}], "decay"),
    ([{"name": "try_again", "max_attempts": 0}], "max_attempts"), ([{"name": "reminder", "every": 2}], "unknown"),
    ([{"name": "feedback_loop", "feedback": "model"}], "generate"),
    ([{"name": "feedback_loop", "feedback": "x"}], "feedback"),
    ([{"name": "feedback_loop", "temperature_base": 0.7}], "temperature_base"),
])
def test_bad_wrapper_specs_fail_fast(specs, match):
    with pytest.raises(ValueError, match=match):
        apply_wrappers(execution(), specs)


# -- fuzzing ------------------------------------------------------------------------------------------

GARBAGE = st.one_of(
    st.text(max_size=300),
    st.just(""),
    st.just("x" * 200_000),
    st.sampled_from(["<answer></answer>", "<answer><answer>1</answer></answer>", "</answer>3<answer>",
                     '{"name": "x", "arguments": {', "<tool_call>{}</tool_call>", '{"a": [1, 2', "null",
                     "\x00\x01\ufeff", "🙂" * 50, "<answer>1e999</answer>", "<answer>99999999999999999999999</answer>",
                     "<answer>3</answer>", "<answer> 3 </answer>", "{task}{answer}{expected}", "<|im_end|>"]),
)

SPECS = {
    "try_again": [{"name": "try_again"}],
    "feedback_rule": [{"name": "feedback_loop", "max_attempts": 3}],
    "feedback_model": [{"name": "feedback_loop", "feedback": "model", "generate": lambda p: p[-500:]}],
    "feedback_mitigations": [{"name": "feedback_loop", "reject_repeats": True, "max_rejections": 2,
                              "format_penalty": 0.5}],
    "turn_limit": [{"name": "turn_limit", "max_turns": 2}],
    "stacked": [{"name": "feedback_loop", "reject_repeats": True}, {"name": "try_again", "max_attempts": 2},
                {"name": "turn_limit", "max_turns": 4}],
}


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(GARBAGE, min_size=1, max_size=6))
def test_garbage_never_escapes_a_wrapper(spec, actions):
    env = apply_wrappers(execution(), SPECS[spec])
    env.reset(seed=0)
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        assert isinstance(obs, str) and np.isfinite(reward)
        if "error" in info:
            assert isinstance(info["error"], str) and info["error"] in obs, "the observation must say what was wrong"
        if terminated or truncated:
            assert isinstance(info.get("success"), bool) and isinstance(info.get("metrics"), dict)
            break


def test_succ_at_k_counts_episodes_solved_within_k_attempts():
    from longhorizon.eval.horizon import mean_env_metrics, succ_at_k
    from longhorizon.types import Trajectory

    def episode(solved, attempts):
        return Trajectory(env_id="e", seed=0, metadata={"metrics": {"solved": solved, "attempts": attempts}})

    runs = [episode(True, 1), episode(True, 3), episode(False, 3), episode(True, 2)]
    assert succ_at_k(runs) == {"succ@1": 0.25, "succ@3": 0.75}
    assert succ_at_k([Trajectory(env_id="e", seed=0)]) == {}
    assert mean_env_metrics(runs)["succ@3"] == 0.75 and mean_env_metrics(runs)["attempts"] == 2.25


def test_try_again_training_reports_succ_at_1_and_at_t(tmp_path):
    from longhorizon.train import train
    from longhorizon.train.metrics import read_records
    from test_train import tiny_cfg

    result = train(tiny_cfg(tmp_path, "env_id=longhorizon/Execution-v0", "env_kwargs={horizon: 1, dict_size: 2}",
                            "wrappers=[{name: try_again, max_attempts: 3}]", "steps=1", "eval.episodes=4"))
    evals = [r for r in read_records(result.run_dir) if "eval/reward_mean" in r]
    assert len(evals) == 2 and all("eval/env/succ@1" in r and "eval/env/succ@3" in r for r in evals)
    assert all(r["eval/env/succ@1"] <= r["eval/env/succ@3"] for r in evals)
