"""The training config: typed, documented, strict, overridable; the CLI turns mistakes into one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from longhorizon.errors import ConfigError
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.errors import UserError
from longhorizon.train import ALGORITHMS, TrainConfig, load_config
from longhorizon.train.config import (NASH, OFFLINE_PREFERENCE, ONLINE_PREFERENCE, SUPERVISED, resolved_aggregation, resolved_clip_eps,
                                      run_config)

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def _models(cls: type[BaseModel]):
    yield cls
    for field in cls.model_fields.values():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _models(field.annotation)


def test_every_field_has_a_description():
    for cls in _models(TrainConfig):
        for name, field in cls.model_fields.items():
            assert field.description, f"{cls.__name__}.{name}"


def test_set_overrides_nested_keys_with_yaml_values():
    cfg = load_config(None, ["algorithm.kl_coef=0.02", "steps=3", "env_kwargs={horizon: 2}", "lora.enabled=true"])
    assert cfg.algorithm.kl_coef == 0.02 and cfg.steps == 3 and cfg.env_kwargs == {"horizon": 2} and cfg.lora.enabled


@pytest.mark.parametrize("sets,key", [
    (["algorithm.kl_coeff=0.1"], ("algorithm", "kl_coeff")),
    (["stepz=3"], ("stepz",)),
    (["algorithm.name=ppo2"], ("algorithm", "name")),
    (["steps=-1"], ("steps",)),
    (["optim.schedule=linear"], ("optim", "schedule")),
    (["eval.horizons=[0]"], ("eval", "horizons")),
])
def test_unknown_keys_and_bad_values_name_the_key(sets, key):
    with pytest.raises(ConfigError) as err:
        load_config(None, sets)
    assert err.value.loc == key


def test_loop_forbids_kl_and_eval_seeds_must_be_held_out():
    with pytest.raises(ConfigError, match="kl_coef must be 0 for loop") as err:
        load_config(None, ["algorithm.name=loop", "algorithm.kl_coef=0.1"])
    assert err.value.loc == ("algorithm",)
    with pytest.raises(ConfigError, match="overlap the training seeds") as err:
        load_config(None, ["eval.seed=5", "steps=10"])
    assert err.value.loc == ("eval",)


def test_algorithm_defaults_resolve_in_one_place():
    loop = load_config(None, ["algorithm.name=loop"]).algorithm
    assert resolved_clip_eps(loop) == (0.1, 0.1) and resolved_aggregation(loop) == "seq-mean-token-mean"
    grpo = load_config(None, ["algorithm.clip_eps_high=0.28"]).algorithm
    assert resolved_clip_eps(grpo) == (0.2, 0.28) and resolved_aggregation(grpo) == "token-mean"


def test_every_recipe_loads_and_every_algorithm_has_one():
    scorers = [RECIPES / "prefs" / "reward-model.yaml", RECIPES / "prefs" / "preference-model.yaml"]
    names = {load_config(path).algorithm.name for path in [*RECIPES.glob("*.yaml"), *scorers]}
    preference = set(OFFLINE_PREFERENCE) | set(ONLINE_PREFERENCE) | set(NASH) | set(SUPERVISED)
    assert (RECIPES / "quickstart.yaml").exists() and names == set(ALGORITHMS) | preference


def test_resume_reads_the_run_config(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("steps: 7\nrun_dir: elsewhere\n")
    cfg = run_config(None, ["algorithm.kl_coef=0.01"], run, None)
    assert cfg.steps == 7 and cfg.algorithm.kl_coef == 0.01 and cfg.run_dir == str(run)
    with pytest.raises(UserError):
        run_config(RECIPES / "quickstart.yaml", [], run, None)
    with pytest.raises(UserError):
        run_config(None, [], tmp_path / "nothing", None)


@pytest.mark.parametrize("args,message", [
    (["--set", "algorithm.kl_coeff=0.1"], "algorithm.kl_coeff"),
    (["--set", "steps"], "--set takes KEY=VALUE"),
    (["--set", "env_id=longhorizon/Nope-v0"], "env_id: unknown env"),
    (["--set", "env_kwargs.horizon=0"], "env_kwargs: knob 'horizon' of longhorizon/Execution-v0"),
    (["--set", "context=nope"], "unknown context strategy"),
    (["--set", "model=no-such-model"], "unknown model"),
])
def test_cli_reports_one_line_and_exit_code_2(tmp_path, args, message):
    result = CliRunner().invoke(app, ["train", str(RECIPES / "quickstart.yaml"), "--out", str(tmp_path / "r"), *args])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_cli_missing_config_is_a_user_error(tmp_path):
    result = CliRunner().invoke(app, ["train", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "cannot read config" in result.output


def test_context_can_be_a_mapping_with_its_options(tmp_path):
    from longhorizon.eval import HorizonEvalConfig

    recipe = tmp_path / "r.yaml"
    recipe.write_text("context: {name: markovian, mode: chunked, chunk: 64, carryover: 16, head: 4}\n")
    cfg = load_config(recipe, [])
    assert cfg.context == "markovian" and cfg.context_options == {"mode": "chunked", "chunk": 64, "carryover": 16,
                                                                   "head": 4}
    assert load_config(None, ["context={name: window, k: 2}"]).context_options == {"k": 2}
    assert load_config(None, ["context=window", "context_options={k: 3}"]).context_options == {"k": 3}
    ev = HorizonEvalConfig(context={"name": "window", "k": 2})
    assert (ev.context, ev.context_options) == ("window", {"k": 2})
    with pytest.raises(ValidationError, match="needs a name"):
        HorizonEvalConfig(context={"k": 2})
    with pytest.raises(ConfigError, match="not both"):
        load_config(None, ["context={name: window, k: 2}", "context_options={k: 3}"])
    result = CliRunner().invoke(app, ["train", str(recipe), "--set", "context={k: 2}", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "needs a name" in result.output


def test_the_validated_config_holds_the_resolved_defaults_and_reloads_unchanged():
    cfg = load_config(None, ["algorithm.name=reinforce++"])
    dumped = cfg.model_dump()["algorithm"]
    assert (dumped["clip_eps"], dumped["clip_eps_high"], dumped["kl_estimator"], dumped["aggregation"]) == (
        0.2, 0.2, "k1", "token-mean")
    assert load_config(None, ["algorithm.name=grpo"]).algorithm.kl_estimator == "k3"  # KL in the loss
    assert type(cfg).model_validate(cfg.model_dump()) == cfg  # what --resume reloads is what ran
    assert load_config(None, ["context=markovian"]).algorithm.aggregation == "trace-length"
    assert load_config(None, ["context=markovian", "algorithm.aggregation=token-mean"]).algorithm.aggregation == "token-mean"


def test_gradient_checkpointing_needs_the_shared_prefix_off():
    """Checkpointing turns the model's cache off, and a shared prefix runs on one: the pair is refused."""
    with pytest.raises(ConfigError, match="gradient_checkpointing needs share_prefix=false"):
        load_config(None, ["gradient_checkpointing=true"])
    assert load_config(None, ["gradient_checkpointing=true", "share_prefix=false"]).gradient_checkpointing


@pytest.mark.parametrize("option", ["rollout.workers=2", "algorithm.entropy.method=epo", "algorithm.replay.enabled=true",
                                    "algorithm.rewards.components=[{name: env}]"])
def test_preference_algorithms_refuse_rl_options_they_would_ignore(option):
    with pytest.raises(ConfigError, match="does not use"):
        load_config(None, ["algorithm.name=online_dpo", option])
