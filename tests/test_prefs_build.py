"""`longhorizon prefs build`: verifier-labelled pairs from sampled episodes, episode- and turn-level."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.feedback import PREFERENCES_FILE, load_pairs
from longhorizon.feedback.build import PrefsBuildConfig, build_pairs, candidate_pairs, verifier_label
from longhorizon.types import load_trajectories

runner = CliRunner()
ENV = {"horizon": 3, "dict_size": 3}


def test_verifier_label_and_candidate_pairs():
    assert [verifier_label(1, 0), verifier_label(0, 2), verifier_label(1, 1)] == ["a", "b", "tie"]
    assert candidate_pairs([0.0, 2.0, 1.0], "all") == [(0, 1), (0, 2), (1, 2)]
    assert candidate_pairs([0.0, 2.0, 1.0], "best_worst") == [(0, 1)]
    assert candidate_pairs([1.0, 1.0], "best_worst") == []


def test_episode_pairs_are_labelled_by_return(tmp_path):
    cfg = PrefsBuildConfig(model="noisy-oracle:0.6", env_kwargs=ENV, tasks=4, samples=3, out=str(tmp_path))
    pairs, summary = build_pairs(cfg)
    trajs = load_trajectories(tmp_path / "trajectories.jsonl")
    assert len(trajs) == 12 and summary["pairs"] == len(pairs) > 0
    assert load_pairs(tmp_path / PREFERENCES_FILE) == pairs
    for p in pairs:
        i, j = p.metadata["episodes"]
        ri, rj = trajs[i].total_reward, trajs[j].total_reward
        assert p.metadata["returns"] == [ri, rj] and ri != rj  # ties dropped
        assert p.preferred == ("a" if ri > rj else "b") and p.source == "verifier"
        assert trajs[i].seed == trajs[j].seed == p.metadata["seed"]
        assert p.context[-1].content == trajs[i].turns[0].observation
        assert [m.content for m in p.a if m.role == "assistant"] == [t.action for t in trajs[i].turns]
    assert summary["ties_dropped"] + summary.get("identical", 0) + len(pairs) == 4 * 3


def test_best_worst_gives_at_most_one_pair_per_task(tmp_path):
    cfg = PrefsBuildConfig(model="noisy-oracle:0.6", env_kwargs=ENV, tasks=4, samples=4, pairs="best_worst",
                           out=str(tmp_path))
    pairs, _ = build_pairs(cfg)
    seeds = [p.metadata["seed"] for p in pairs]
    assert len(seeds) == len(set(seeds)) and pairs


def test_turn_level_pairs_branch_from_a_shared_prefix(tmp_path):
    cfg = PrefsBuildConfig(model="noisy-oracle:0.6", env_kwargs=ENV, tasks=3, samples=3, level="turn",
                           out=str(tmp_path))
    pairs, _ = build_pairs(cfg)
    trajs = load_trajectories(tmp_path / "trajectories.jsonl")
    assert {p.metadata["turn"] for p in pairs} > {0}
    for p in pairs:
        k, (i, j) = p.metadata["turn"], p.metadata["episodes"]
        assert [t.action for t in trajs[i].turns[:k]] == [t.action for t in trajs[j].turns[:k]]
        assert len(p.context) == 2 * k + 1  # (observation, action) per earlier turn, then observation k
        assert p.metadata["returns"] == [sum(t.reward for t in trajs[n].turns[k:]) for n in (i, j)]
        assert p.a[0].content == trajs[i].turns[k].action


def test_turn_level_replays_the_trunk_tokens_with_a_model(tmp_path):
    cfg = PrefsBuildConfig(model="tiny-random", env_kwargs={"horizon": 2, "dict_size": 3}, tasks=1, samples=2,
                           level="turn", ties="keep", max_new_tokens=4, out=str(tmp_path))
    build_pairs(cfg)
    trunk, *branches = load_trajectories(tmp_path / "trajectories.jsonl")
    at_turn_1 = branches[2:]  # two branches at k = 0, then two at k = 1
    assert len(trunk.turns) == 2 and len(branches) == 4
    for b in at_turn_1:
        assert b.turns[0].action_ids == trunk.turns[0].action_ids and b.turns[0].prompt_ids == trunk.turns[0].prompt_ids
        assert b.turns[1].prompt_ids[:len(trunk.turns[1].prompt_ids)] == trunk.turns[1].prompt_ids


def test_cli_tiny_random_keeps_ties(tmp_path):
    out = tmp_path / "p"
    result = runner.invoke(app, ["prefs", "build", "--model", "tiny-random", "--tasks", "2", "--samples", "2",
                                 "--ties", "keep", "--knob", "horizon=2", "--knob", "dict_size=3",
                                 "--set", "max_new_tokens=4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    pairs = load_pairs(out / PREFERENCES_FILE)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 4 and len(pairs) == summary["pairs"]
    assert all(p.source == "verifier" and p.conversational for p in pairs)
    assert (out / "config.yaml").exists()


@pytest.mark.parametrize("args, message", [
    (["--set", "samples=1"], "samples"),
    (["--env", "longhorizon/Nope-v0"], "unknown env"),
    (["--level", "chunk"], "level"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, args, message):
    result = runner.invoke(app, ["prefs", "build", "--model", "noisy-oracle:0.5", "--out", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
