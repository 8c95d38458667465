"""Horizon diagnostics against cases whose answer is known: bootstrap H_s, self-conditioning, drift."""

import json
import math

import pytest
import torch

from longhorizon.eval import load_eval_config, resolve
from longhorizon.eval.bootstrap import bootstrap_horizon
from longhorizon.eval.diagnose import DiagnoseOptions, diagnose
from longhorizon.eval.drift import drift_by_turn, token_kl, turn_drift
from longhorizon.eval.evaluate import run
from longhorizon.eval.self_conditioning import n_wrong, self_conditioning
from longhorizon.rollout import scripted_policy
from longhorizon.types import Trajectory, Turn


def cfg_for(tmp_path, model, horizons, episodes, **extra):
    keys = {"model": model, "horizons": horizons, "episodes": episodes, "env_kwargs.dict_size": 5,
            "run_dir": str(tmp_path / "run"), **extra}
    return resolve(load_eval_config(None, [], keys))


# ------------------------------------------------------------------ bootstrap H_s


def test_bootstrap_of_a_certain_curve_is_a_point():
    ci = bootstrap_horizon([1, 2, 4], [[True] * 5, [True] * 4 + [False], [False] * 5], 0.5, resamples=50)
    assert ci["success_band"][0] == [1.0, 1.0] and ci["success_band"][2] == [0.0, 0.0]
    assert ci["resamples"] == 50 and ci["low"] <= ci["high"]


def test_bootstrap_is_seeded():
    data = [[True, False, True, True], [False, True, False, False]]
    assert bootstrap_horizon([1, 2], data, seed=3) == bootstrap_horizon([1, 2], data, seed=3)
    assert bootstrap_horizon([1, 2], data, seed=3) != bootstrap_horizon([1, 2], data, seed=4)


def test_noisy_oracle_h_s_interval_contains_theory(tmp_path):
    p = 0.9
    metrics, plot = run(cfg_for(tmp_path, f"noisy-oracle:{p}", [1, 2, 4, 8, 16, 32], 300))
    ci = metrics["horizon_length_ci"]
    assert ci["low"] <= math.log(0.5) / math.log(p) <= ci["high"]
    assert ci["low"] <= metrics["horizon_length"]["value"] <= ci["high"] and ci["high"] - ci["low"] < 3
    for row in metrics["horizons"]:
        assert row["success_ci"][0] <= row["success_rate"] <= row["success_ci"][1]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["horizon_length_ci"]["resamples"] == 1000 and plot.is_file()


# ------------------------------------------------------------------ self-conditioning


def test_n_wrong_rounds_half_up():
    assert [n_wrong(r, 2) for r in (0, 0.25, 0.5, 0.75, 1)] == [0, 1, 1, 2, 2]
    assert n_wrong(0.5, 1) == 1 and n_wrong(0.25, 7) == 2


@pytest.mark.parametrize("env_follows", ["history", "truth"])
def test_noisy_oracle_next_turn_accuracy_ignores_injected_errors(tmp_path, env_follows):
    p, rates, turns = 0.8, [0.0, 0.25, 0.5, 0.75, 1.0], [1, 3, 9]
    cfg = cfg_for(tmp_path, f"noisy-oracle:{p}", turns, 250)
    rows, trajectories = self_conditioning(cfg, lambda: scripted_policy(cfg.model, cfg.seed), rates, env_follows)
    assert len(rows) == len(rates) * len(turns)
    for row in rows:
        assert row["episodes"] == 250
        assert abs(row["accuracy"] - p) < 4 * math.sqrt(p * (1 - p) / 250)
    for turn in turns:  # the same draws at every rate: the injected history changes nothing
        assert len({r["accuracy"] for r in rows if r["turn"] == turn}) == 1
    for t in trajectories:  # exactly rate * history wrong answers, and the history shows them
        injected = [turn.info["policy"]["injected"] for turn in t.turns[:-1]]
        assert injected.count("wrong") == n_wrong(t.metadata["error_rate"], len(t.turns) - 1)
        for turn, kind in zip(t.turns, injected):
            if env_follows == "history":  # the env got what the history shows: a wrong update where injected
                assert turn.info["step_correct"] == (kind == "right")
            else:  # the env got the true totals; the history shows the wrong ones
                assert turn.info["correct"] and (turn.action == f"<answer>{turn.info['expected']}</answer>") == (kind == "right")


def test_oracle_is_always_right_whatever_the_history(tmp_path):
    cfg = cfg_for(tmp_path, "oracle", [2, 5], 10, **{"env_kwargs.stop_on_error": True})  # overridden: runs to t
    rows, _ = self_conditioning(cfg, lambda: scripted_policy("oracle"), [0.0, 1.0])
    assert [r["accuracy"] for r in rows] == [1.0] * 4 and all(r["episodes"] == 10 for r in rows)


def test_self_conditioning_cli_writes_json_and_plot(tmp_path):
    cfg = cfg_for(tmp_path, "noisy-oracle:0.5", [1, 2], 4)
    data, plot = diagnose("self-conditioning", cfg, DiagnoseOptions(error_rates=[0, 1]))
    result = json.loads(data.read_text())
    assert result["diagnostic"] == "self-conditioning" and len(result["rows"]) == 4
    assert plot.stat().st_size > 1000 and (tmp_path / "run" / "self_conditioning.jsonl").is_file()


def test_model_policy_history_is_rendered_as_its_own(tmp_path, tiny):
    """Scripted turns get prompt and action ids, so `full` extends them token by token."""
    from longhorizon.context import make_strategy
    from longhorizon.models import SamplingParams, TransformersSampler
    from longhorizon.rollout.policies import ModelPolicy

    cfg = cfg_for(tmp_path, "tiny-random", [3], 2, max_new_tokens=4)
    sampler = TransformersSampler(tiny.model, tiny.tokenizer, SamplingParams(max_new_tokens=4))
    policy = ModelPolicy(sampler, make_strategy("full"))
    rows, trajectories = self_conditioning(cfg, lambda: policy, [1.0])
    for t in trajectories:
        assert [len(turn.action_ids) > 0 for turn in t.turns] == [True] * 3
        (sample,) = make_strategy("full").to_samples(t)  # every prompt is a prefix of the last: one packed row
        assert tiny.tokenizer.decode(t.turns[0].action_ids) == t.turns[0].action[len("<answer>"):]
    assert rows[0]["episodes"] == 2


# ------------------------------------------------------------------ drift


def test_token_kl_by_hand():
    q = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    p = torch.log(torch.tensor([[0.25, 0.75], [0.9, 0.1]]))
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert torch.allclose(token_kl(q, p), torch.tensor([expected, 0.0]), atol=1e-6)
    assert torch.allclose(token_kl(q + 3.0, p - 1.0), token_kl(q, p), atol=1e-6)  # logits, not probabilities


def test_drift_by_turn_by_hand():
    rows = drift_by_turn([[0.1, 0.3, None], [0.3, None, 0.5]])
    assert [(r["turn"], r["episodes"]) for r in rows] == [(1, 2), (2, 1), (3, 1)]
    assert rows[0]["drift"] == pytest.approx(0.2) and rows[0]["se"] == pytest.approx(0.1, abs=1e-9)


def test_turn_drift_skips_scripted_turns(tiny):
    t = Trajectory(env_id="e", seed=0, turns=[Turn(observation="", action="x"),
                                              Turn(observation="", action="y", prompt_ids=[1, 2], action_ids=[3])])
    d = turn_drift(tiny.model, tiny.model, t)
    assert d[0] is None and d[1] == 0.0


def test_drift_of_tiny_against_itself_is_zero_and_against_another_seed_is_not(tmp_path):
    cfg = cfg_for(tmp_path, "tiny-random", [3], 2, max_new_tokens=4)
    data, plot = diagnose("drift", cfg, DiagnoseOptions(reference="tiny-random", reminder_every=2))
    curves = json.loads(data.read_text())["curves"]
    assert set(curves) == {"no reminder", "reminder every 2"} and plot.is_file()
    for rows in curves.values():
        assert [r["turn"] for r in rows] == [1, 2, 3]
        assert all(r["drift"] == 0.0 for r in rows)
    data, _ = diagnose("drift", cfg, DiagnoseOptions(reference="tiny-random:1", reminder_every=2))
    for rows in json.loads(data.read_text())["curves"].values():
        assert all(r["drift"] > 1e-4 and math.isfinite(r["drift"]) for r in rows)


def test_drift_refuses_scripted_policies_and_a_missing_reference(tmp_path):
    from longhorizon.errors import UserError

    with pytest.raises(UserError, match="model policy"):
        diagnose("drift", cfg_for(tmp_path, "oracle", [2], 1), DiagnoseOptions(reference="tiny-random"))
    with pytest.raises(UserError, match="--reference"):
        diagnose("drift", cfg_for(tmp_path, "tiny-random", [2], 1), DiagnoseOptions())
    with pytest.raises(UserError, match="unknown diagnostic"):
        diagnose("nope", cfg_for(tmp_path, "oracle", [2], 1), DiagnoseOptions())


# ------------------------------------------------------------------ the command line


def test_eval_diagnose_cli(tmp_path):
    from typer.testing import CliRunner

    from longhorizon.cli import app

    runner = CliRunner()
    base = ["eval", "--model", "noisy-oracle:0.9", "--horizons", "1,2", "--episodes", "3", "--knob", "dict_size=5",
            "--out", str(tmp_path / "d")]
    result = runner.invoke(app, base + ["--diagnose", "self-conditioning", "--error-rates", "0,1"])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "d" / "self_conditioning.json").read_text())["rows"]
    assert sorted({r["error_rate"] for r in rows}) == [0.0, 1.0]
    assert (tmp_path / "d" / "self_conditioning.png").is_file() and (tmp_path / "d" / "config.yaml").is_file()
    for bad, message in ((["--diagnose", "self-conditioning", "--error-rates", "0,2"], "error-rates"),
                         (["--diagnose", "self-conditioning", "--error-rates", "x"], "error-rates"),
                         (["--diagnose", "drift", "--reference", "tiny-random"], "model policy"),
                         (["--diagnose", "other"], "unknown diagnostic"),
                         (["--error-rates", "0,1"], "go with --diagnose")):
        result = runner.invoke(app, base + bad)
        assert result.exit_code == 2 and message in result.output, result.output


def test_packed_drift_equals_turn_by_turn(tmp_path, tiny):
    """A `full` episode is scored in one forward; it gives the per-turn forwards' values."""
    from longhorizon.eval.drift import load_reference, one_turn_drift
    from longhorizon.eval.evaluate import make_policy
    from longhorizon.rollout import run_episodes
    from longhorizon.eval.sweep import episode_specs

    cfg = cfg_for(tmp_path, "tiny-random", [3], 2, max_new_tokens=4)
    policy = make_policy(cfg)
    (t, _) = run_episodes(episode_specs(cfg), policy)
    other = load_reference("tiny-random:1")
    packed = turn_drift(policy.sampler.model, other, t)
    assert packed == pytest.approx([one_turn_drift(policy.sampler.model, other, turn) for turn in t.turns], abs=1e-5)
    t.turns[1].prompt_ids = [1] + t.turns[1].prompt_ids  # no longer a prefix: scored turn by turn
    assert turn_drift(policy.sampler.model, other, t)[0] == pytest.approx(packed[0], abs=1e-5)
