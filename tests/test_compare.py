"""`longhorizon compare`: the report's numbers are the runs' own, the plot is written, bad input is a user error."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.errors import UserError
from longhorizon.eval.compare import compare_runs, default_label

runner = CliRunner()


def eval_run(tmp_path, name: str, *args: str):
    out = tmp_path / name
    result = runner.invoke(app, ["eval", "--horizons", "1,4", "--episodes", "40", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return out


def test_compare_reports_each_run_at_each_horizon(tmp_path):
    oracle = eval_run(tmp_path, "oracle", "--model", "oracle")
    noisy = eval_run(tmp_path, "noisy", "--model", "noisy-oracle:0.5", "--seed", "3")
    result = runner.invoke(app, ["compare", str(oracle), str(noisy), "--out", str(tmp_path / "cmp"),
                                 "--label", "oracle", "--label", "coin"])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert (tmp_path / "cmp" / "comparison.png").stat().st_size > 10_000
    noisy_rows = json.loads((noisy / "metrics.json").read_text())["horizons"]
    assert "| oracle | 1 | 40 | 1.000 ± 0.000 |" in report and "| oracle | 4 | 40 | 1.000 ± 0.000 |" in report
    for row in noisy_rows:  # the noisy oracle's own numbers, as measured
        assert f"| coin | {row['horizon']} | 40 | {row['success_rate']:.3f} ± {row['success_se']:.3f} |" in report
    assert noisy_rows[1]["success_rate"] < 0.3  # 0.5^4 = 0.06: the table is not all ones
    assert "## longhorizon/Execution-v0" in report and "H_0.5" in report


def test_compare_rejects_what_is_not_an_eval_run(tmp_path):
    with pytest.raises(UserError, match="metrics.json is missing"):
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "config.yaml").write_text("model: x\n")
        compare_runs([tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(UserError, match="at least one"):
        compare_runs([], tmp_path / "out")
    result = runner.invoke(app, ["compare", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "not a finished eval run" in result.output


def test_default_label_names_model_and_context():
    assert default_label({"model": "smollm2-135m", "context": "window", "context_options": {"k": 2}}, {}) == \
        "smollm2-135m / window k=2"
    assert default_label({"model": "/a/b/runs/q/model", "context": "full"}, {}) == "q/model / full"
