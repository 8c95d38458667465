"""RLUF's user-reaction model (issue 15 item 4): the BCE loss and the held-out AUROC / accuracy / ECE by hand, the
labels (web-app ratings, the simulated user, bad files), `longhorizon train` with `algorithm.name: reaction_model`
on the tiny random model (every tensor moves, exact resume, the exported model gives the trainer's scores, it
learns a separable set), and the `reaction` reward component in a GRPO run next to the env's reward."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.config_io import ConfigError
from longhorizon.errors import UserError
from longhorizon.feedback.build import PrefsBuildConfig, build_pairs
from longhorizon.feedback.reaction import (Reaction, auroc, load_reaction_model, reaction_loss, reaction_metrics,
                                           reaction_scores, reaction_seeking, read_reactions, simulated_reactions,
                                           write_reactions)
from longhorizon.train import load_config, train
from longhorizon.train.checkpoint import latest_checkpoint, load_trainable_state, load_weights
from longhorizon.train.metrics import read_records
from longhorizon.train.scorers import build_scorer, reaction_backward, reaction_data, reaction_rows
from longhorizon.types import Trajectory, Turn, load_trajectories
from test_train import assert_same_weights, crash_then_resume, tiny_cfg
from test_train_online import TEST_ENV as PREF_CHARS  # noqa: F401 (registers the env that pays varied rewards)
from test_train_scorers import assert_accumulation_invariant, one_line_exit_2

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
runner = CliRunner()
LN2, LN4_3, LN4 = 0.6931471805599453, 0.28768207245178085, 1.3862943611198906


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reactions_file(tmp_path_factory) -> Path:
    """A simulated user's turn reactions (10% flipped) to a noisy oracle's 2-turn Execution episodes."""
    out = tmp_path_factory.mktemp("reactions")
    build_pairs(PrefsBuildConfig(model="noisy-oracle:0.6", tasks=8, samples=3, env_kwargs={"horizon": 2, "dict_size": 3},
                                 out=str(out / "prefs")))
    reactions = simulated_reactions(load_trajectories(out / "prefs" / "trajectories.jsonl"), noise=0.1, per="turn")
    assert len(reactions) >= 12 and 0 < sum(r.label for r in reactions) < len(reactions)
    return write_reactions(out / "reactions.jsonl", reactions)


def reaction_cfg(tmp_path: Path, reactions: Path, *sets: str):
    base = ["model=tiny-random", "algorithm.name=reaction_model", f"reactions={reactions}", "steps=2",
            "tasks_per_step=4", "micro_batch_size=2", "torch_threads=1", f"run_dir={tmp_path / 'run'}",
            "save_final_model=false", "checkpoint_every=1", "optim.lr=0.01"]
    return load_config(None, base + list(sets))


# ------------------------------------------------------------------ the loss and the metrics, by hand


def test_bce_loss_by_hand():
    logits = torch.tensor([0.0, 2.0, -1.0], dtype=torch.float64, requires_grad=True)
    loss, metrics = reaction_loss(logits, torch.tensor([1.0, 0.0, 0.0]))
    # -log sigmoid(0) = ln 2; -log(1 - sigmoid(2)) = ln(1 + e^2); -log(1 - sigmoid(-1)) = ln(1 + e^-1)
    expected = (0.6931471805599453 + 2.1269280110429727 + 0.31326168751822286) / 3
    torch.testing.assert_close(loss, torch.tensor(1.0444456263737137, dtype=torch.float64), atol=1e-6, rtol=0)
    assert expected == pytest.approx(1.0444456263737137, abs=1e-12)
    loss.backward()  # d/dz = (sigmoid(z) - y) / B
    torch.testing.assert_close(logits.grad, torch.tensor([-0.5 / 3, 0.8807970779778823 / 3, 0.2689414213699951 / 3],
                                                         dtype=torch.float64), atol=1e-6, rtol=0)
    assert metrics["reaction_accuracy"] == pytest.approx(0.5)  # z = 0 half right, 2 wrong, -1 right
    assert metrics["reaction_prob"] == pytest.approx((0.5 + 0.8807970779778823 + 0.2689414213699951) / 3, abs=1e-6)
    assert metrics["positive_rate"] == pytest.approx(1 / 3)


def test_heldout_metrics_by_hand():
    ln3 = math.log(3)
    m = reaction_metrics(torch.tensor([0.0, 0.0, ln3, -ln3], dtype=torch.float64), torch.tensor([1.0, 0.0, 1.0, 1.0]))
    # p = 0.5, 0.5, 0.75, 0.25. AUROC: positives 0, ln3, -ln3 against the negative 0: (1/2 + 1 + 0) / 3.
    assert m["reaction_auroc"] == pytest.approx(0.5, abs=1e-9)
    assert m["reaction_accuracy"] == pytest.approx((0.5 + 0.5 + 1 + 0) / 4, abs=1e-9)
    # ECE: bin 5 holds both 0.5s (mean label 1/2: 0), bin 7 |1 - 0.75|, bin 2 |1 - 0.25|, each 1/4 of the rows
    assert m["reaction_ece"] == pytest.approx((0.25 + 0.75) / 4, abs=1e-9)
    assert m["reaction_log_loss"] == pytest.approx((LN2 + LN2 + LN4_3 + LN4) / 4, abs=1e-9)
    assert (m["reaction_positive_rate"], m["reaction_prob_mean"], m["reactions"]) == (0.75, 0.5, 4.0)


def test_auroc_ranks_and_ties():
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert auroc(torch.tensor([3.0, 2.0, 1.0, 0.0]), labels) == 1.0
    assert auroc(torch.tensor([0.0, 1.0, 2.0, 3.0]), labels) == 0.0
    assert auroc(torch.tensor([1.0, 1.0, 1.0, 1.0]), labels) == 0.5
    assert auroc(torch.tensor([2.0, 0.0, 1.0, 0.0]), labels) == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    assert math.isnan(auroc(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0])))  # one class: undefined


# ------------------------------------------------------------------ labels


def _episode(success, rewards, actions=None) -> Trajectory:
    actions = actions or [f"act{k}" for k in range(len(rewards))]
    return Trajectory("e", len(rewards) + (success is True), [Turn(f"obs{k}", a, r) for k, (a, r) in
                                                              enumerate(zip(actions, rewards))], success=success)


EPISODES = [_episode(True, [0.0, 1.0]), _episode(False, [1.0, 0.0]), _episode(None, [0.0, 0.0]), _episode(None, [2.0])]


def test_simulated_user_reads_the_verifier_and_flips_at_the_noise_rate():
    clean = simulated_reactions(EPISODES, noise=0.0, per="episode")
    assert [r.label for r in clean] == [True, False, False, True]  # success, failure, return 0, return 2
    assert clean[0].model_dump()["prompt"] == [{"role": "user", "content": "obs0"}]
    assert [m.content for m in clean[0].completion] == ["act0", "obs1", "act1"]
    assert all(not r.metadata["flipped"] and r.metadata["true_label"] == r.label for r in clean)
    assert [r.label for r in simulated_reactions(EPISODES, noise=1.0)] == [False, True, True, False]
    noisy = simulated_reactions(EPISODES * 25, noise=0.3, seed=4)
    assert noisy == simulated_reactions(EPISODES * 25, noise=0.3, seed=4)
    assert all(r.label != r.metadata["true_label"] for r in noisy if r.metadata["flipped"])
    assert 0 < sum(r.metadata["flipped"] for r in noisy) < 100
    turns = simulated_reactions(EPISODES, per="turn")  # the shadow user's ratings: good, good; good, first_mistake
    assert [(r.metadata["episode"], r.metadata["turn"], r.label) for r in turns] == [
        (0, 0, True), (0, 1, True), (1, 0, True), (1, 1, False)]  # episodes 2 and 3: every turn pays the same
    assert turns[1].model_dump()["prompt"] == [{"role": "user", "content": "obs0"}, {"role": "assistant", "content": "act0"},
                               {"role": "user", "content": "obs1"}]
    assert turns[1].model_dump()["completion"] == [{"role": "assistant", "content": "act1"}]
    with pytest.raises(UserError, match="noise must be in"):
        simulated_reactions(EPISODES, noise=1.5)


def test_web_app_ratings_map_to_reactions(tmp_path):
    from longhorizon.store.feedback import Label
    from longhorizon.store.feedback_export import export_rows

    ids = {"run": "r", "source": "trajectories.jsonl", "episode": 0}
    labels = [Label(label_id="label-0001", kind="turn_rating", annotator="ana", turn=0, value="good", **ids),
              Label(label_id="label-0002", kind="turn_rating", annotator="ana", turn=1, value="bad", **ids),
              Label(label_id="label-0003", kind="turn_rating", annotator="bo", turn=1, value="first_mistake", **ids),
              Label(label_id="label-0004", kind="critique", annotator="bo", text="too slow", **ids)]
    rows = export_rows(labels, lambda run, source, index: EPISODES[0])["critiques"]
    (tmp_path / "export.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    reactions = read_reactions(tmp_path / "export.jsonl")
    assert [(r.metadata["turn"], r.label) for r in reactions] == [(0, True), (1, False), (1, False)]  # no critique
    assert reactions[1].model_dump()["completion"] == [{"role": "assistant", "content": "act1"}]
    assert reactions[1].metadata["rating"] == "bad" and reactions[0].metadata["seed"] == EPISODES[0].seed


def test_labels_from_files_and_datasets(tmp_path):
    import datasets

    good = {"prompt": "Is the sky blue?", "completion": "Yes.", "label": True, "note": "ok"}
    (tmp_path / "r.jsonl").write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "label": None}) + "\n"
                                      + json.dumps({**good, "label": 0}) + "\n")
    reactions = read_reactions(tmp_path / "r.jsonl")
    assert reactions == [Reaction(prompt="Is the sky blue?", completion="Yes.", label=True, metadata={"note": "ok"}),
                         Reaction(prompt="Is the sky blue?", completion="Yes.", label=False, metadata={"note": "ok"})]
    write_reactions(tmp_path / "again.jsonl", reactions)
    assert read_reactions(tmp_path / "again.jsonl") == reactions
    datasets.Dataset.from_list([good]).save_to_disk(str(tmp_path / "ds"))
    assert [r.label for r in read_reactions(tmp_path / "ds")] == [True]


@pytest.mark.parametrize("content, message", [
    ('{"prompt": "x", "completion": "y"}', "r.jsonl:1: a reaction row needs prompt, completion, label; missing label"),
    ('{"prompt": "x", "label": true}', "missing completion"),
    ('{"prompt": "x", "completion": "y", "label": "maybe"}', "r.jsonl:1: bad reaction row: label: Input should be a valid boolean"),
    ('{"prompt": "x", "completion": [{"role": "assistant"}], "label": 1}', "bad reaction row: completion"),
    ('[1, 2]', "a reaction row is a JSON object"),
    ('{"prompt": "x"', "r.jsonl:1: not JSON"),
    ('{"prompt": "x", "completion": "y", "label": null}', "holds no labelled row"),
])
def test_bad_label_files_say_where(tmp_path, content, message):
    (tmp_path / "r.jsonl").write_text(content + "\n")
    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        read_reactions(tmp_path / "r.jsonl")


def test_bad_label_sources(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"prompt": "x", "completion": "y"}]).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(UserError, match="lacks the 'label' column"):
        read_reactions(tmp_path / "ds")
    with pytest.raises(UserError, match="no reaction labels at"):
        read_reactions(tmp_path / "nowhere")


# ------------------------------------------------------------------ training with `longhorizon train`


def test_reaction_model_trains_two_steps_and_every_tensor_moves(tmp_path, reactions_file):
    cfg = reaction_cfg(tmp_path, reactions_file)
    result = train(cfg)
    records = read_records(result.run_dir)
    assert all(math.isfinite(v) for r in records for k, v in r.items() if k != "eval/reaction_auroc")
    steps = [r for r in records if "losses/reaction_loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and steps[-1]["charts/reactions"] == 4
    for key in ("losses/reaction_accuracy", "losses/reaction_prob", "losses/positive_rate", "losses/grad_norm"):
        assert key in steps[-1], key
    evals = [r for r in records if "eval/reaction_accuracy" in r]
    assert [r["step"] for r in evals] == [0, 2] and result.eval_after["step"] == 2 and evals[0]["eval/reactions"] > 0
    assert {"eval/reaction_auroc", "eval/reaction_ece", "eval/reaction_log_loss"} <= evals[0].keys()
    start = dict(build_scorer(cfg).model.named_parameters())
    weights = load_weights(latest_checkpoint(result.run_dir))["policy"]
    moved = {name: (w - start[name].detach()).abs().max().item() for name, w in weights.items()}
    assert moved and all(m > 0 for m in moved.values()), moved


def test_two_steps_resume_two_more_equals_four_straight(tmp_path, reactions_file):
    sets = ["steps=4", "checkpoint_every=2", "epochs=2", "num_minibatches=2", "eval.every=1"]
    straight = train(reaction_cfg(tmp_path / "straight", reactions_file, *sets))
    resumed = crash_then_resume(reaction_cfg(tmp_path / "broken", reactions_file, *sets))
    assert_same_weights(straight, resumed)
    for key in ("losses/reaction_loss", "eval/reaction_log_loss"):
        runs = [[r[key] for r in read_records(run.run_dir) if key in r] for run in (straight, resumed)]
        assert runs[0] == pytest.approx(runs[1], abs=1e-6) and len(runs[1]) == (4 if key.startswith("losses") else 5)


def test_grad_accumulation_1x4_equals_4x1(tmp_path, reactions_file):
    cfg = reaction_cfg(tmp_path, reactions_file)
    models = build_scorer(cfg)
    train_items, _ = reaction_data(cfg)
    batch = reaction_rows(models.tokenizer, train_items[:4], "reaction_model")
    assert_accumulation_invariant(reaction_backward, models, batch, cfg)


def test_exported_model_gives_the_trainers_probabilities(tmp_path, reactions_file):
    cfg = reaction_cfg(tmp_path, reactions_file, "save_final_model=true", "lora.enabled=true", "lora.r=4")
    result = train(cfg)
    models = build_scorer(cfg)
    load_trainable_state(models, load_weights(latest_checkpoint(result.run_dir)))
    items, _ = reaction_data(cfg)
    from longhorizon.feedback.reward_model import score_rows

    rows = reaction_rows(models.tokenizer, items[:4], "reaction_model")
    expected = score_rows(models.model.eval(), [r.ids for r in rows], models.tokenizer.pad_token_id, 4)
    model = load_reaction_model(result.run_dir / "model")
    got = model.logits([(r.prompt, r.completion) for r in items[:4]])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)  # LoRA merged: equal up to float rounding
    assert model.probs([(items[0].prompt, items[0].completion)])[0] == pytest.approx(torch.sigmoid(got[0]).item())
    config = json.loads((result.run_dir / "model" / "config.json").read_text())
    assert config["longhorizon_scorer"] == "reaction_model"


def test_learns_a_separable_reaction_set(tmp_path):
    """Tiny-random learns that replies ending in "thanks" get a positive reaction and "whatever" a negative one."""
    rows = [Reaction(prompt=f"Question {i}: is it {w}?", completion=f"Answer {i % 7}, {'thanks' if i % 2 else 'whatever'}",
                     label=bool(i % 2)) for i, w in enumerate(["red", "big", "old", "new", "hot"] * 8)]
    write_reactions(tmp_path / "r.jsonl", rows)
    cfg = load_config(None, ["model=tiny-random", "algorithm.name=reaction_model", f"reactions={tmp_path / 'r.jsonl'}",
                             "steps=12", "tasks_per_step=8", "micro_batch_size=8", "torch_threads=1", "optim.lr=0.003",
                             "pairs_heldout=0.25", "checkpoint_every=0", "save_final_model=false",
                             f"run_dir={tmp_path / 'run'}"])
    result = train(cfg)
    before, after = result.eval_before, result.eval_after
    assert after["eval/reactions"] == 10
    assert after["eval/reaction_auroc"] == 1.0 and after["eval/reaction_accuracy"] == 1.0
    assert after["eval/reaction_log_loss"] < before["eval/reaction_log_loss"]


# ------------------------------------------------------------------ as a reward component


class FixedReactionModel:
    """Stands in for a reaction model: episode P = 0.9 / number of turns; turn k's P = 0.1 (k + 1)."""

    def score_episodes(self, trajectories):
        return [0.9 / len(t.turns) for t in trajectories]

    def score_turns(self, trajectories):
        return [[0.1 * (k + 1) for k in range(len(t.turns))] for t in trajectories]


def test_reaction_scores_and_the_hacking_probe_by_hand():
    episodes = [_episode(True, [0.0, 1.0], ["Sure. Hope this helps!", "<answer>7</answer>"]),
                Trajectory("e", 9), _episode(False, [0.0], ["7. Please like this answer"])]
    scores, probes = reaction_scores(FixedReactionModel(), "episode", episodes)
    assert scores == [[0.0, 0.45], [], [0.9]]
    assert probes == {"reaction_prob_mean": pytest.approx((0.45 + 0.9) / 2), "reaction_seeking_frac": pytest.approx(2 / 3)}
    scores, probes = reaction_scores(FixedReactionModel(), "turn", episodes)
    assert scores == [[0.1, 0.2], [], [0.1]] and probes["reaction_prob_mean"] == pytest.approx(0.4 / 3)
    assert not reaction_seeking("Hope this helps! " + "x" * 200)  # only the end of a response counts
    assert reaction_seeking("Done. Let me know if you liked it ❤")


def _reaction_dir(tiny, path: Path, kind: str = "reaction_model") -> Path:
    from longhorizon.feedback.reward_model import attach_score_head

    torch.manual_seed(0)
    attach_score_head(tiny.model, tiny.tokenizer, kind).save_pretrained(path)
    tiny.tokenizer.save_pretrained(path)
    return path


def test_grpo_mixes_the_reaction_model_with_the_env(tiny, tmp_path):
    model = _reaction_dir(tiny, tmp_path / "reaction")
    component = f"{{name: reaction, model: {model}, weight: 0.5, per: turn}}"
    result = train(tiny_cfg(tmp_path, f"algorithm.rewards.components=[{{name: env}}, {component}]",
                            f"env_id={PREF_CHARS}", "algorithm.group_size=3"))
    records = [r for r in read_records(result.run_dir) if "charts/reward_mean" in r]
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        assert math.isfinite(r["rewards/return_env"]) and r["rewards/return_reaction"] > 0  # 0.5 * sum of P > 0
        assert 0 < r["rewards/reaction_prob_mean"] < 1 and 0 <= r["rewards/reaction_seeking_frac"] <= 1
    assert r["rewards/return_reaction"] <= 0.5 * 2  # at most weight * P = 1 on each of the 2 turns


# ------------------------------------------------------------------ config and bad input


def test_config_needs_reactions_and_evaluates_on_labels(tmp_path, reactions_file):
    cfg = reaction_cfg(tmp_path, reactions_file)
    assert cfg.eval.episodes == 0
    with pytest.raises(ConfigError, match="trains on reaction labels"):
        reaction_cfg(tmp_path, reactions_file, "reactions=null")
    with pytest.raises(ConfigError, match="held-out labels"):
        reaction_cfg(tmp_path, reactions_file, "eval.episodes=8")
    with pytest.raises(ConfigError, match="rollout.workers"):
        reaction_cfg(tmp_path, reactions_file, "rollout.workers=2")
    with pytest.raises(ConfigError, match="reaction needs a model: add model: RUN_DIR/model of a reaction_model run"):
        tiny_cfg(tmp_path, "algorithm.rewards.components=[{name: reaction}]")
    assert load_config(RECIPES / "prefs" / "reaction-model.yaml").algorithm.name == "reaction_model"
    assert load_config(RECIPES / "rluf-grpo.yaml").algorithm.rewards.components[1].name == "reaction"


def test_cli_bad_labels_and_bad_models_are_one_line_exit_2(tiny, tmp_path):
    (tmp_path / "r.jsonl").write_text('{"prompt": "x", "label": true}\n')
    (tmp_path / "c.yaml").write_text(f"model: tiny-random\nalgorithm: {{name: reaction_model}}\nreactions: {tmp_path / 'r.jsonl'}\n")
    one_line_exit_2(runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")]),
                    "r.jsonl:1: a reaction row needs prompt, completion, label; missing completion")
    assert not (tmp_path / "run").exists()

    rm = _reaction_dir(tiny, tmp_path / "rm", kind="reward_model")
    lm = tmp_path / "lm"
    tiny.model.save_pretrained(lm)
    for model, message in ((rm, "is not a reaction model (longhorizon_scorer: reward_model)"),
                           (lm, "is not a reaction model (longhorizon_scorer: None)"),
                           (tmp_path / "nothing", "unknown model")):
        grpo = (f"model: tiny-random\nenv_id: {PREF_CHARS}\neval: {{episodes: 0}}\nalgorithm:\n  rewards:\n"
                f"    components: [{{name: env}}, {{name: reaction, model: {model}}}]\n")
        (tmp_path / "g.yaml").write_text(grpo)
        one_line_exit_2(runner.invoke(app, ["train", str(tmp_path / "g.yaml"), "--out", str(tmp_path / "grun")]),
                        message)
        assert not (tmp_path / "grun").exists()


def test_cli_simulates_reactions(tmp_path):
    from longhorizon.types import save_trajectories

    save_trajectories(tmp_path / "t.jsonl", EPISODES)
    result = runner.invoke(app, ["feedback", "simulate-reactions", str(tmp_path / "t.jsonl"), "--out",
                                 str(tmp_path / "r.jsonl"), "--noise", "0"])
    assert result.exit_code == 0 and "4 reactions (2 positive, 0 flipped) from 4 episodes" in result.output, result.output
    assert [r.label for r in read_reactions(tmp_path / "r.jsonl")] == [True, False, False, True]
    one_line_exit_2(runner.invoke(app, ["feedback", "simulate-reactions", str(tmp_path / "none.jsonl"), "--out",
                                        str(tmp_path / "x.jsonl")]), "no trajectories file at")
    one_line_exit_2(runner.invoke(app, ["feedback", "simulate-reactions", str(tmp_path / "t.jsonl"), "--out",
                                        str(tmp_path / "x.jsonl"), "--per", "step"]), "per must be episode or turn")
