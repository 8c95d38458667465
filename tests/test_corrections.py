"""Mid-episode corrections (feedback/corrections.py, rollout/corrections.py): when the rule teacher fires and its
exact words on hand-built Execution episodes, the injected observation, the judges, the model teacher (a callable
and tiny-random), the two datasets' messages and loss masks, sft on each, the closed loop, the CLI, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.envs.core.wrappers import apply_wrappers
from longhorizon.errors import UserError
from longhorizon.feedback.corrections import (CorrectionContext, Corrections, correction_prompt, model_teacher,
                                              off_course, rule_correction, transcript)
from longhorizon.rollout.corrections import collect_corrections, corrected_turn_rows, instruction_rows, summary
from longhorizon.rollout.runner import Action, make_env
from longhorizon.train import load_config, train
from longhorizon.train.checkpoint import latest_checkpoint, load_weights
from longhorizon.train.demonstrations import conversation_sample
from longhorizon.train.metrics import read_records
from longhorizon.train.model import build_models
from longhorizon.train.session import check_setup

ENV = "longhorizon/Execution-v0"
ONE_KEY = {"horizon": 4, "dict_size": 3, "value_range": 9}  # seed 8: level -3, smile 3, habit 5
TWO_KEYS = {**ONE_KEY, "turn_complexity": 2}  # seed 1: pearl -7, opera 6, stage 9
runner = CliRunner()

# Seed 8, one key a turn: keys smile, habit, level, smile; true totals 3, 8, 5, 8.
FIX_HABIT = "Stop — the value of habit is 5, so the running total is 8, not 9. Continue from 8."


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def corrected_env(knobs=ONE_KEY, seed=8, **kwargs):
    env = Corrections(gym.make(ENV, **knobs), **kwargs)
    obs, _ = env.reset(seed=seed)
    return env, obs


class Script:
    """Answers episode k's turn t with actions[k][t]."""

    def __init__(self, actions: list[list[str]]):
        self.actions = actions

    def act(self, episodes):
        return [Action(text=self.actions[e.spec.group_id][len(e.trajectory.turns)]) for e in episodes]


# ------------------------------------------------------------------ the rule teacher


def test_rule_teacher_fires_only_off_course_with_exact_words():
    env, first = corrected_env()
    assert env.unwrapped.dictionary == {"level": -3, "smile": 3, "habit": 5} and env.unwrapped.totals == [3, 8, 5, 8]
    steps = [env.step(a) for a in ("<answer>3</answer>", "<answer>9</answer>", "<answer>5</answer>", "<answer>7</answer>")]
    observations, rewards = [s[0] for s in steps], [s[1] for s in steps]
    assert observations == ["Turn 2 of 4. Keys: habit", f"Correction: {FIX_HABIT}\n\nTurn 3 of 4. Keys: level",
                            "Turn 4 of 4. Keys: smile", "The task is over."]  # the last wrong turn: nothing to continue
    assert rewards == [1.0, 0.0, 1.0, 0.0]  # the wrong turn stands
    infos = [s[4] for s in steps]
    assert [(i["off_course"], i["corrected"], i["corrections"]) for i in infos] == [
        (False, False, 0), (True, False, 1), (False, True, 1), (True, False, 1)]
    assert [i.get("correction") for i in infos] == [None, FIX_HABIT, None, None]
    assert infos[1]["correction_by"] == "rule"
    assert infos[3]["metrics"] == {"turns_correct": 2.0, "corrections": 1.0, "corrections_heeded": 1.0}
    assert infos[2]["step_correct"] is True  # the correction reset the agent's own total to 8: 8 - 3 = 5
    assert env.history[1] == ("Turn 2 of 4. Keys: habit", "<answer>9</answer>") and env.history[0][0] == first


def test_a_right_episode_gets_no_correction_and_the_oracle_continues_from_the_corrected_total():
    env, _ = corrected_env()
    for total in (3, 8, 5, 8):
        *_, info = env.step(f"<answer>{total}</answer>")
        assert not info["off_course"] and "correction" not in info
    assert info["metrics"]["corrections"] == 0.0
    env, _ = corrected_env()
    env.step("<answer>3</answer>")
    env.step("<answer>20</answer>")
    assert env.unwrapped.oracle_action() == "<answer>5</answer>"  # from 8 (corrected), not 20 + (-3)


def test_unreadable_answer_and_two_keys():
    env, _ = corrected_env()
    obs, *_ = env.step("3")
    assert obs == ("Correction: Stop — your answer could not be read (no <answer>...</answer> tag found). The value of "
                   "smile is 3, so the running total is 3. Continue from 3.\n\nYour answer could not be read: no "
                   "<answer>...</answer> tag found.\nTurn 2 of 4. Keys: habit")
    env, _ = corrected_env(TWO_KEYS, seed=1)
    assert env.unwrapped.keys[:2] == [["pearl", "pearl"], ["stage", "opera"]]
    assert env.unwrapped.dictionary == {"pearl": -7, "opera": 6, "stage": 9}
    texts = [env.step(a)[4]["correction"] for a in ("<answer>-7</answer>", "<answer>0</answer>")]
    assert texts == ["Stop — pearl is -7 (given 2 times), so the running total is -14, not -7. Continue from -14.",
                     "Stop — stage is 9 and opera is 6, so the running total is 1, not 0. Continue from 1."]


def test_judges_by_hand():
    right, wrong, rejected, plain = {"correct": True}, {"correct": False}, {"error": "bad"}, {}
    assert [off_course("a", i, "b") for i in (right, wrong, rejected, plain)] == [False, True, True, True]
    assert [off_course("A b", plain, "ab"), off_course("x", plain, None)] == [False, False]  # case, spaces; no oracle
    assert off_course("a", right, "b", judge="oracle") and not off_course("a", wrong, "a", judge="oracle")
    assert not off_course("a", plain, "b", judge="verifier") and off_course("a", rejected, "b", judge="verifier")


def test_generic_words_by_hand():
    env = gym.make("longhorizon/Tabletop-v0")

    def words(info, truth="pick a place b"):
        return rule_correction(CorrectionContext(env, "pick c place d", info, truth))

    assert words({"expected": 7, "parsed": 5}) == "Stop — the answer was 7, not 5."
    assert words({"expected": 7, "parsed": None, "error": "no box"}) == (
        "Stop — your answer could not be read (no box); the answer was 7.")
    assert words({}) == "Stop — that was not the right action. The right action there was: pick a place b"
    assert words({"error": "c is not clear"}) == "Stop — c is not clear. The right action there was: pick a place b"
    assert words({"error": "c is not clear"}, None) == "Stop — c is not clear."


def test_tabletop_moves_are_judged_against_the_oracle():
    env = Corrections(gym.make("longhorizon/Tabletop-v0"))
    env.reset(seed=0)
    assert env.unwrapped.oracle_action() == "pick orange_large_1 place middle_zone"
    obs, *_, info = env.step("pick yellow_medium_2 place table")  # legal (the top of a stack), not the oracle's
    assert info["legal"] and info["off_course"]
    assert info["correction"] == ("Stop — that was not the right action. The right action there was: pick "
                                  "orange_large_1 place middle_zone")
    assert obs.startswith(f"Correction: {info['correction']}\n\nYou moved yellow_medium_2 to table.")
    *_, info = env.step(env.unwrapped.oracle_action())  # the oracle plans from the scene as it is now
    assert not info["off_course"] and info["corrected"] and "correction" not in info


# ------------------------------------------------------------------ the model teacher


def test_model_teacher_callable_is_bounded_and_falls_back_to_the_rule():
    prompts = []

    def generate(prompt):
        prompts.append(prompt)
        return "  Look again at the habit key, it is worth 5. " + "x" * 500

    env, first = corrected_env(generate=generate, max_chars=40)
    env.step("<answer>3</answer>")
    obs, *_, info = env.step("<answer>9</answer>")
    assert info["correction"] == "Look again at the habit key, it is worth" and info["correction_by"] == "model"
    assert obs == "Correction: Look again at the habit key, it is worth\n\nTurn 3 of 4. Keys: level"
    assert prompts == [correction_prompt([(first, "<answer>3</answer>"), ("Turn 2 of 4. Keys: habit", "<answer>9</answer>")])]
    assert prompts[0].endswith("[environment]\nTurn 2 of 4. Keys: habit\n[agent]\n<answer>9</answer>\n\nCorrection:")
    assert env.unwrapped.own_total == 9  # a model's words change nothing in the env
    silent, _ = corrected_env(generate=lambda prompt: "   ")
    *_, info = silent.step("<answer>0</answer>")
    assert info["correction_by"] == "rule" and info["correction"].startswith("Stop — the value of smile is 3")


def test_model_teacher_on_tiny_random_blank_reply_falls_back_to_the_rule():
    env, first = corrected_env(teacher="tiny-random", max_new_tokens=8, max_chars=40)
    *_, info = env.step("<answer>0</answer>")
    reply = model_teacher("tiny-random", "float32", 8)(correction_prompt([(first, "<answer>0</answer>")]))
    assert reply == "\n" * 8  # greedy tiny-random writes newlines only (a trained one writes words: below)
    assert info["correction"] == "Stop — the value of smile is 3, so the running total is 3, not 0. Continue from 3."
    assert info["correction_by"] == "rule"


def test_a_model_prompt_keeps_the_start_and_the_end_of_a_long_episode():
    history = [("o" * 5000, "a0"), ("p" * 5000, "a1")]
    # the whole text: 25 + (14 + 5000 + 9 + 2) + 1 + (14 + 5000 + 9 + 2) = 10076 characters; kept: 250 + 750
    assert transcript(history, limit=1000) == ("The conversation so far:\n[environment]\n" + "o" * 211 + "\n[... 9076 "
                                               "characters left out ...]\n" + "p" * 739 + "\n[agent]\na1")
    assert correction_prompt(history, limit=1000).endswith("p\n[agent]\na1\n\nCorrection:")


# ------------------------------------------------------------------ the datasets


def hand_episodes():
    """Seed 8 as in the first test; seed 9 (keys witch, mouse, mouse, mouse: totals 3, 8, 13, 18) with two wrong
    turns in a row, then right ones."""
    policy = Script([["<answer>3</answer>", "<answer>9</answer>", "<answer>5</answer>", "<answer>7</answer>"],
                     ["<answer>1</answer>", "<answer>2</answer>", "<answer>13</answer>", "<answer>18</answer>"]])
    return collect_corrections(ENV, 2, policy, ONE_KEY, seed=8)


def test_dataset_rows_and_masks(tiny):
    trajectories = hand_episodes()
    assert summary(trajectories) == {"episodes": 2, "turns": 8, "off_course": 4, "corrections": 3, "heeded": 2}
    first = trajectories[0].turns[0].observation
    policy_rows, generator_rows = corrected_turn_rows(trajectories), instruction_rows(trajectories)
    assert [r["metadata"]["turn"] for r in policy_rows] == [2, 2] and len(generator_rows) == 3
    assert policy_rows[0]["messages"] == [
        {"role": "user", "content": "You are the agent in the conversation below. Write the agent's next message.\n\n"
                                    f"The conversation so far:\n[environment]\n{first}\n[agent]\n<answer>3</answer>\n"
                                    "[environment]\nTurn 2 of 4. Keys: habit\n[agent]\n<answer>9</answer>\n"
                                    f"[environment]\nCorrection: {FIX_HABIT}\n\nTurn 3 of 4. Keys: level"},
        {"role": "assistant", "content": "<answer>5</answer>"}]
    assert policy_rows[0]["metadata"] == {"env_id": ENV, "seed": 8, "turn": 2, "correction": FIX_HABIT}
    assert generator_rows[0]["messages"] == [
        {"role": "user", "content": "You are watching an agent work on a task, turn by turn. Its last action went off "
                                    "course.\nWrite a short correction (one or two sentences) that tells the agent what "
                                    "went wrong and how to get back on course.\n\nThe conversation so far:\n"
                                    f"[environment]\n{first}\n[agent]\n<answer>3</answer>\n[environment]\n"
                                    "Turn 2 of 4. Keys: habit\n[agent]\n<answer>9</answer>\n\nCorrection:"},
        {"role": "assistant", "content": FIX_HABIT}]
    assert [r["metadata"]["teacher"] for r in generator_rows] == ["rule"] * 3
    tok = tiny.tokenizer
    for row, target in ((policy_rows[0], "<answer>5</answer>"), (generator_rows[0], FIX_HABIT)):
        sample = conversation_sample(tok, row["messages"])
        learned = [i for i, m in zip(sample.input_ids, sample.loss_mask) if m]
        assert learned == tok.encode(target + "<|im_end|>", add_special_tokens=False)
        assert tok.decode(sample.input_ids) == tok.apply_chat_template(row["messages"], tokenize=False)


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def sft_run(tmp_path: Path, demos: Path, name: str, *sets: str):
    cfg = load_config(None, ["model=tiny-random", f"env_id={ENV}", "env_kwargs={horizon: 4, dict_size: 3, value_range: 9}",
                             "algorithm.name=sft", f"demonstrations={demos}", "steps=2", "tasks_per_step=2",
                             "micro_batch_size=2", "eval.episodes=0", "torch_threads=1", f"run_dir={tmp_path / name}",
                             "checkpoint_every=1", "optim.lr=0.01", *sets])
    result = train(cfg)
    start = dict(build_models(cfg, needs_ref=False, value_head=False).model.named_parameters())
    weights = load_weights(latest_checkpoint(result.run_dir))["policy"]
    moved = {n: (w - start[n].detach()).abs().max().item() for n, w in weights.items()}
    assert moved and all(m > 0 for m in moved.values()), moved
    steps = [r for r in read_records(result.run_dir) if "losses/sft_loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(math.isfinite(r["losses/sft_loss"]) for r in steps)
    return result, steps


def test_sft_on_each_dataset_then_the_trained_generator_is_the_teacher(tmp_path):
    trajectories = hand_episodes()
    policy_file = write_rows(tmp_path / "corrected_turns.jsonl", corrected_turn_rows(trajectories))
    generator_file = write_rows(tmp_path / "corrections.jsonl", instruction_rows(trajectories))
    _, steps = sft_run(tmp_path, policy_file, "policy", "save_final_model=false")
    assert [r["losses/tokens"] for r in steps] == [8.0 + 9.0] * 2  # <,answer,>,5,</,answer,>,<|im_end|>; 1,3 for 13
    result, _ = sft_run(tmp_path, generator_file, "generator", "save_final_model=true")
    teacher = str(result.run_dir / "model")
    env, first = corrected_env(teacher=teacher, max_new_tokens=6, max_chars=20)
    *_, info = env.step("<answer>0</answer>")
    reply = model_teacher(teacher, "float32", 6)(correction_prompt([(first, "<answer>0</answer>")]))
    assert len(reply.strip()) > 20  # the trained generator writes words: the correction is its reply, cut to 20
    assert info["correction"] == reply.strip()[:20].strip() and info["correction_by"] == "model"


# ------------------------------------------------------------------ the command and bad input


def test_cli_end_to_end_on_tiny_random(tmp_path):
    out = tmp_path / "corr"
    result = runner.invoke(app, ["corrections", ENV, "--episodes", "2", "--model", "tiny-random", "--max-new-tokens", "4",
                                 "--out", str(out), "--set", "horizon=3", "--set", "dict_size=3", "--seed", "4"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    infos = [t["info"] for traj in lines for t in traj["turns"]]
    given = sum("correction" in i for i in infos)
    assert len(lines) == 2 and given == sum(i["off_course"] for traj in lines for i in [t["info"] for t in traj["turns"][:-1]])
    assert f"2 episodes of {ENV} (6 turns)" in result.output and f"{given} corrected" in result.output
    assert [traj["metadata"]["metrics"]["corrections"] for traj in lines] == [
        float(sum("correction" in t["info"] for t in traj["turns"])) for traj in lines]
    rows = (out / "corrections.jsonl").read_text().splitlines()
    assert len(rows) == given and json.loads(rows[0])["messages"][1]["content"].startswith("Stop — ")


def test_cli_noisy_oracle_writes_both_files(tmp_path):
    out = tmp_path / "corr"
    result = runner.invoke(app, ["corrections", ENV, "--episodes", "4", "--model", "noisy-oracle:0.5", "--out", str(out),
                                 "--set", "horizon=4", "--set", "dict_size=3", "--set", "value_range=9"])
    assert result.exit_code == 0, result.output
    assert "4 episodes of longhorizon/Execution-v0 (16 turns): 11 off course, 8 corrected, 4 right after a correction" \
        in result.output
    assert len((out / "corrected_turns.jsonl").read_text().splitlines()) == 4
    assert len((out / "corrections.jsonl").read_text().splitlines()) == 8


@pytest.mark.parametrize("args, message", [
    (["--teacher", "nope"], "corrections: teacher 'nope' is neither 'rule' nor a model"),
    (["--judge", "nope"], "corrections judge must be one of auto, verifier, oracle"),
    (["--wrap", "corrections"], "the command adds the corrections wrapper itself"),
    (["--set", "horizn=3"], "horizn"),
])
def test_cli_bad_input_exit_2(tmp_path, args, message):
    result = runner.invoke(app, ["corrections", ENV, "--episodes", "1", "--model", "oracle", "--out", str(tmp_path),
                                 *args], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "trajectories.jsonl").exists()


def test_bad_teacher_in_a_recipe_and_bad_arguments():
    cfg = load_config(None, ["model=tiny-random", "wrappers=[{name: corrections, teacher: /no/such/model}]"])
    with pytest.raises(UserError, match="teacher '/no/such/model' is neither 'rule' nor a model"):
        check_setup(cfg)
    with pytest.raises(UserError, match="max_chars must be an integer >= 1"):
        make_env(ENV, {}, [{"name": "corrections", "max_chars": 0}])
    with pytest.raises(ValueError, match="bad arguments for wrapper 'corrections'"):
        apply_wrappers(gym.make(ENV), [{"name": "corrections", "techer": "rule"}])


def test_recipe_trains_grpo_with_corrections_on(tmp_path):
    cfg = load_config("recipes/corrections.yaml", ["model=tiny-random", "steps=1", "tasks_per_step=1",
                                                   "algorithm.group_size=2", "eval.episodes=1", "micro_batch_size=2",
                                                   "autocast_bf16=false", "checkpoint_every=0", "save_final_model=false",
                                                   f"run_dir={tmp_path / 'run'}"])
    assert cfg.wrappers == [{"name": "corrections", "teacher": "rule", "judge": "auto"}] and cfg.eval.wrappers == []
    (step,) = [r for r in read_records(train(cfg).run_dir) if "charts/reward_mean" in r]
    assert step["env/corrections"] >= 0 and "env/corrections_heeded" in step
