"""`longhorizon eval CONFIG.yaml --set ...`: one typed config, shared with the training config's `eval:` section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.eval import EvalConfig, load_eval_config, resolve
from longhorizon.train.config import load_config

runner = CliRunner()
RECIPE = Path(__file__).parent.parent / "recipes" / "eval" / "execution.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "eval.yaml"
    path.write_text(text)
    return path


def test_eval_config_file_with_set_overrides_end_to_end(tmp_path):
    config = write(tmp_path, "model: oracle\nhorizons: [1, 3]\nepisodes: 2\nenv_kwargs: {dict_size: 4}\n")
    out = tmp_path / "run"
    result = runner.invoke(app, ["eval", str(config), "--set", "episodes=3", "--set", "env_kwargs.value_range=2",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written["episodes"] == 3 and written["env_kwargs"] == {"dict_size": 4, "value_range": 2}
    assert written["horizon_knob"] == "horizon" and written["run_dir"] == str(out)  # resolved, as it ran
    metrics = json.loads((out / "metrics.json").read_text())
    assert [(r["horizon"], r["episodes"], r["success_rate"]) for r in metrics["horizons"]] == [(1, 3, 1.0), (3, 3, 1.0)]
    assert EvalConfig.model_validate(written) == resolve(EvalConfig.model_validate(written))  # reads back


def test_tiny_random_from_a_config_file(tmp_path):
    config = write(tmp_path, "model: tiny-random\nhorizons: [2]\nepisodes: 1\nmax_new_tokens: 3\n"
                             "context: {name: window, k: 1}\nenv_kwargs: {dict_size: 5}\n")
    out = tmp_path / "tiny"
    result = runner.invoke(app, ["eval", str(config), "--set", "context_options.reminder_every=1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written["context"] == "window" and written["context_options"] == {"k": 1, "reminder_every": 1}
    assert len(json.loads((out / "metrics.json").read_text())["prompt_tokens_by_turn"]) == 2


def test_precedence_defaults_file_flags_set(tmp_path):
    config = write(tmp_path, "episodes: 5\nseed: 7\ntemperature: 0.5\n")
    cfg = load_eval_config(config, ["seed=9"], {"seed": 8, "temperature": 0.25})
    assert (cfg.episodes, cfg.temperature, cfg.seed, cfg.top_p) == (5, 0.25, 9, 1.0)


@pytest.mark.parametrize("where", ["yaml", "set"])
def test_a_bad_key_is_one_line_naming_it_and_exit_2(tmp_path, where):
    config = write(tmp_path, "model: oracle\nepisodez: 3\n" if where == "yaml" else "model: oracle\n")
    extra = ["--set", "top_pp=0.5"] if where == "set" else []
    result = runner.invoke(app, ["eval", str(config), *extra, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2, result.output
    assert ("episodez" if where == "yaml" else "top_pp") in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_an_unknown_context_option_is_named_without_building_the_strategy(tmp_path):
    config = write(tmp_path, "model: oracle\ncontext: {name: window, kk: 3}\n")
    result = runner.invoke(app, ["eval", str(config), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown option 'kk'" in result.output


def test_the_example_recipe_is_a_valid_eval_config():
    cfg = load_eval_config(RECIPE, ["model=oracle"])
    assert cfg.env_id == "longhorizon/Execution-v0" and resolve(cfg).horizon_knob == "horizon"


def test_training_eval_section_is_the_eval_config_with_held_out_defaults():
    cfg = load_config(None, ["env_kwargs={horizon: 3, dict_size: 4}", "max_new_tokens=5", "context=window",
                             "context_options={k: 2}", "eval.episodes=4"])
    ev = cfg.eval
    assert isinstance(ev, EvalConfig) and (ev.seed, ev.episodes, ev.temperature, ev.horizons) == (1_000_000, 4, 0.0, None)
    assert (ev.model, ev.env_kwargs, ev.max_new_tokens, ev.context, ev.context_options) == (
        cfg.model, {"horizon": 3, "dict_size": 4}, 5, "window", {"k": 2})
    assert resolve(ev).horizons == [3]  # None: the training horizon
    assert resolve(load_config(None, ["eval.horizons=[1, 4]"]).eval).horizons == [1, 4]


def test_training_eval_section_cannot_swap_the_policy():
    from longhorizon.errors import ConfigError

    with pytest.raises(ConfigError, match="eval.model must be the training model"):
        load_config(None, ["model=tiny-random", "eval.model=oracle"])
