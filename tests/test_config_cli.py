"""Configs a user can discover and get right: `longhorizon config` lists every key; typos get the closest key;
YAML errors give their line and column; --dtype takes only what its help says."""

from __future__ import annotations

import typing

import pytest
import yaml
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.config_io import describe
from longhorizon.errors import UserError
from longhorizon.eval.config import EvalConfig, load_eval_config
from longhorizon.train.config import TrainConfig, load_config

runner = CliRunner()


def all_keys(cls, prefix=""):
    """Every leaf key of a config class, walked by hand (independently of `describe`)."""
    from pydantic import BaseModel

    keys = []
    for name, field in cls.model_fields.items():
        ann = field.annotation
        models = [a for a in (getattr(ann, "__args__", None) or (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if models and typing.get_origin(ann) is list:  # a list of sections: the key itself and one item's keys
            keys += [f"{prefix}{name}", *all_keys(models[0], f"{prefix}{name}[].")]
        else:
            keys += all_keys(models[0], f"{prefix}{name}.") if models else [f"{prefix}{name}"]
    return keys


def test_the_listing_names_every_field_of_the_training_config():
    result = runner.invoke(app, ["config"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    keys = all_keys(TrainConfig)
    assert {"algorithm.kl_coef", "optim.lr", "lora.r", "eval.episodes", "vllm.block_size"} <= set(keys)
    listed = {line.split("│")[1].strip() for line in result.output.splitlines() if line.startswith("│")}
    missing = [k for k in keys if k not in listed]
    assert not missing, missing
    rows = {r["key"]: r for r in describe(TrainConfig)}
    assert rows["algorithm.kl_coef"]["type"] == "float" and rows["algorithm.kl_coef"]["default"] == "0.0"
    assert rows["algorithm.name"]["type"].startswith("grpo | rloo | loop | reinforce++ | ppo | dpo")
    assert "KL" in rows["algorithm.kl_coef"]["description"]


def test_the_listing_of_a_recipe_shows_its_values_and_the_resolved_recipe_loads_back(tmp_path):
    rows = {r["key"]: r for r in describe(TrainConfig, load_config("recipes/quickstart.yaml").model_dump())}
    assert rows["steps"]["value"] == "16" and rows["steps"]["default"] == "10"
    assert rows["algorithm.clip_eps"]["value"] == "0.2"  # resolved, not the None default
    result = runner.invoke(app, ["config", "recipes/quickstart.yaml", "--resolved", "--set", "steps=3"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "resolved.yaml"
    path.write_text(result.output)
    again = load_config(path)
    assert again.steps == 3 and again == load_config("recipes/quickstart.yaml", ["steps=3"])


def test_the_eval_listing_names_every_eval_key():
    result = runner.invoke(app, ["config", "--eval"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    listed = {line.split("│")[1].strip() for line in result.output.splitlines() if line.startswith("│")}
    assert set(all_keys(EvalConfig)) <= listed


def test_train_help_points_to_the_listing():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert "longhorizon config" in result.output


@pytest.mark.parametrize("sets, message", [
    (["algorithm.kl_cof=0.1"], "unknown key 'algorithm.kl_cof': did you mean 'algorithm.kl_coef'?"),
    (["modle=x"], "unknown key 'modle': did you mean 'model'?"),
    (["optim.zzzzzz=1"], "unknown key 'optim.zzzzzz': valid keys here: lr, value_lr,"),
    (["eval.episods=3"], "unknown key 'eval.episods': did you mean 'eval.episodes'?"),
])
def test_an_unknown_key_suggests_the_closest_one(sets, message):
    with pytest.raises(UserError, match=None) as err:
        load_config("recipes/quickstart.yaml", sets)
    assert message in str(err.value)


def test_an_unknown_eval_key_suggests_the_closest_one_on_the_command_line(tmp_path):
    result = runner.invoke(app, ["eval", "--model", "oracle", "--set", "episods=3", "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and "did you mean 'episodes'?" in result.output
    assert not (tmp_path / "e").exists()


def test_a_yaml_syntax_error_gives_its_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tiny-random\nenv_kwargs: {horizon: 2\nsteps: 3\n")
    with pytest.raises(UserError) as err:
        load_config(bad)
    assert str(err.value).startswith(f"{bad}:3:6: not valid YAML:")
    result = runner.invoke(app, ["train", str(bad)])
    assert result.exit_code == 2 and f"{bad}:3:6" in result.output


@pytest.mark.parametrize("dtype", ["float16", "fp16", "int8"])
def test_dtype_takes_only_what_the_help_says(tmp_path, dtype):
    result = runner.invoke(app, ["eval", "--model", "tiny-random", "--dtype", dtype, "--out", str(tmp_path / "d")])
    assert result.exit_code == 2 and "dtype" in result.output and "bfloat16" in result.output
    with pytest.raises(UserError):
        load_eval_config(None, [f"dtype={dtype}"])
    with pytest.raises(UserError):
        load_config("recipes/quickstart.yaml", [f"dtype={dtype}"])
