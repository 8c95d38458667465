"""Chain of Hindsight (feedback/hindsight.py): the paper's formats and markers on multi-turn pairs, the mask
the SFT trainer puts on them, the inference-time marker wrapper, and `prefs coh` into `algorithm: sft`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import pytest
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.envs.core.wrappers import apply_wrappers
from longhorizon.errors import UserError
from longhorizon.feedback.hindsight import AUX_BAD, AUX_GOOD, hindsight_conversations
from longhorizon.feedback.preferences import make_pair, write_pairs
from longhorizon.models import load_model
from longhorizon.train import load_config, train
from longhorizon.train.demonstrations import conversation_sample
from longhorizon.train.metrics import read_records

SYSTEM = {"role": "system", "content": "Keep a running sum."}


def episode_pair(preferred: str = "a"):
    """Two continuations of a 2-turn episode after the first observation: `a` right, `b` wrong at turn 2."""
    context = [SYSTEM, {"role": "user", "content": "Turn 1: apple"}]
    a = [{"role": "assistant", "content": "<answer>1</answer>"}, {"role": "user", "content": "Turn 2: pear"},
         {"role": "assistant", "content": "<answer>0</answer>"}]
    b = [{"role": "assistant", "content": "<answer>1</answer>"}, {"role": "user", "content": "Turn 2: pear"},
         {"role": "assistant", "content": "<answer>2</answer>"}]
    return make_pair(context, a, b, preferred, "verifier")


def test_formats_and_markers_by_hand():
    rows = {r["metadata"]["format"]: r["messages"] for r in hindsight_conversations([episode_pair("a")])}
    good, bad = "\n\nA helpful answer:", "\n\nAn unhelpful answer:"
    chosen = [SYSTEM, {"role": "user", "content": "Turn 1: apple" + good},
              {"role": "assistant", "content": "<answer>1</answer>"}, {"role": "user", "content": "Turn 2: pear" + good},
              {"role": "assistant", "content": "<answer>0</answer>"}]
    rejected = [SYSTEM, {"role": "user", "content": "Turn 1: apple" + bad},
                {"role": "assistant", "content": "<answer>1</answer>"}, {"role": "user", "content": "Turn 2: pear" + bad},
                {"role": "assistant", "content": "<answer>2</answer>"}]
    assert rows["p"] == chosen and rows["n"] == rejected
    assert rows["pn"] == chosen + rejected[1:]  # the system prompt once
    assert rows["np"] == rejected + chosen[1:]
    flipped = {r["metadata"]["format"]: r["messages"] for r in hindsight_conversations([episode_pair("b")])}
    assert flipped["p"][-1]["content"] == "<answer>2</answer>"  # b is the chosen side now


def test_plain_text_pairs_ties_aux_and_bad_formats():
    text = make_pair("2+2?", "4", "5", "a", "human")
    (row,) = hindsight_conversations([text], formats=["np"])
    assert row["messages"] == [{"role": "user", "content": "2+2?\n\nAn unhelpful answer:"},
                               {"role": "assistant", "content": "5"},
                               {"role": "user", "content": "2+2?\n\nA helpful answer:"},
                               {"role": "assistant", "content": "4"}]
    assert hindsight_conversations([make_pair("2+2?", "4", "5", "tie", "human")]) == []
    aux = hindsight_conversations([text], aux=True)
    assert len(aux) == 12 * 4 and len(AUX_GOOD) == len(AUX_BAD) == 12
    assert aux[0]["messages"][0]["content"] == "2+2?\n\nThe following is a better response."
    assert aux[-1]["messages"][0]["content"] == "2+2?\n\nGenerate a more harmful chat."  # np of the last pair
    with pytest.raises(UserError, match="unknown Chain-of-Hindsight format"):
        hindsight_conversations([text], formats=["pp"])


def test_loss_covers_both_replies_not_the_context_or_markers():
    """CoH's mask: user turns and markers 0, every reply (good and bad) and its end of turn 1."""
    tok = load_model("tiny-random").tokenizer
    rows = {r["metadata"]["format"]: r["messages"] for r in hindsight_conversations([episode_pair("a")])}
    sample = conversation_sample(tok, rows["pn"])
    learned = tok.decode([i for i, m in zip(sample.input_ids, sample.loss_mask) if m])
    assert learned == "<answer>1</answer><|im_end|><answer>0</answer><|im_end|><answer>1</answer><|im_end|>" \
                      "<answer>2</answer><|im_end|>"
    context = tok.decode([i for i, m in zip(sample.input_ids, sample.loss_mask) if not m])
    assert context.count("A helpful answer:") == 2 and context.count("An unhelpful answer:") == 2


def test_feedback_marker_wrapper_conditions_every_answered_observation():
    env = apply_wrappers(gym.make("longhorizon/Execution-v0", horizon=2, dict_size=3), [{"name": "feedback_marker"}])
    obs, _ = env.reset(seed=0)
    assert obs.endswith("\n\nA helpful answer:")
    obs, _, terminated, _, _ = env.step("<answer>0</answer>")
    assert not terminated and obs.endswith("\n\nA helpful answer:")
    obs, _, terminated, _, _ = env.step("<answer>0</answer>")
    assert terminated and not obs.endswith("A helpful answer:")  # nothing left to answer
    with pytest.raises(ValueError, match="non-empty"):
        apply_wrappers(gym.make("longhorizon/Execution-v0"), [{"name": "feedback_marker", "text": " "}])


def test_prefs_coh_then_sft_trains_on_it(tmp_path: Path):
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(pairs, [episode_pair("a"), episode_pair("b"), make_pair("q", "x", "y", "tie", "human")])
    out = tmp_path / "coh.jsonl"
    result = CliRunner().invoke(app, ["prefs", "coh", str(pairs), "--out", str(out), "--formats", "pn,np"])
    assert result.exit_code == 0, result.output
    assert "4 Chain-of-Hindsight conversations from 2 pairs (1 ties skipped)" in result.output
    assert len(out.read_text().splitlines()) == 4
    bad = CliRunner().invoke(app, ["prefs", "coh", str(pairs), "--out", str(out), "--formats", "x"])
    assert bad.exit_code == 2 and "unknown Chain-of-Hindsight format" in bad.output
    cfg = load_config(None, ["model=tiny-random", "env_id=longhorizon/Execution-v0", "algorithm.name=sft",
                             f"demonstrations={out}", "steps=1", "tasks_per_step=4", "micro_batch_size=2",
                             "eval.episodes=0", "torch_threads=1", f"run_dir={tmp_path / 'run'}",
                             "save_final_model=false", "checkpoint_every=0", "optim.lr=0.01",
                             "eval.wrappers=[{name: feedback_marker}]"])
    (step,) = [r for r in read_records(train(cfg).run_dir) if "losses/sft_loss" in r]
    # 4 rows, each with 4 replies of "<answer>N</answer><|im_end|>"
    tok = load_model("tiny-random").tokenizer
    per_reply = len(tok.encode("<answer>1</answer><|im_end|>", add_special_tokens=False))
    assert step["charts/rows_trained"] == 4 and step["losses/tokens"] == 16 * per_reply
    assert math.isfinite(step["losses/sft_loss"]) and step["losses/sft_loss"] > 0
    assert json.loads(out.read_text().splitlines()[0])["metadata"]["format"] == "pn"
