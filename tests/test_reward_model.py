"""Reward and preference models without training: the losses and the pair metrics against hand values, the
scalar-head model's pooling, save → load → identical scores, the scorer API on episodes, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from longhorizon.algorithms import PAIR_LOG_ODDS, REWARD_MODEL_LOSSES
from longhorizon.algorithms.reward_losses import bradley_terry_loss, pairwise_preference_loss
from longhorizon.errors import UserError
from longhorizon.feedback.pair_metrics import expected_calibration_error, log_loss, pair_accuracy, pair_metrics
from longhorizon.feedback.reward_model import (PreferenceModel, RewardModel, attach_score_head, comparison_tokens,
                                               load_preference_model, load_reward_model, pad_right, pooled_scores,
                                               reward_tokens)
from longhorizon.types import Trajectory, Turn


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def logit(p: float) -> float:
    return math.log(p / (1 - p))


# ------------------------------------------------------------------ losses


def test_bradley_terry_loss_hand_values():
    r_c, r_r = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])  # chosen better, then rejected better
    loss, m = bradley_terry_loss(r_c, r_r)
    assert loss.item() == pytest.approx((softplus(-1.0) + softplus(2.0)) / 2, abs=1e-6)
    assert m["pref_accuracy"] == 0.5 and m["reward_margin"] == pytest.approx(-0.5, abs=1e-6)
    assert m["chosen_reward"] == pytest.approx(0.5) and m["rejected_reward"] == pytest.approx(1.0)
    loss, _ = bradley_terry_loss(r_c, r_r, margin=torch.tensor([0.5, 0.0]))  # TRL: -log sigmoid(r_c - r_r - margin)
    assert loss.item() == pytest.approx((softplus(-0.5) + softplus(2.0)) / 2, abs=1e-6)
    loss, _ = bradley_terry_loss(r_c, r_r, center_coef=0.1)  # + 0.1 * mean((r_c + r_r)^2) = 0.1 * (1 + 4) / 2
    assert loss.item() == pytest.approx((softplus(-1.0) + softplus(2.0)) / 2 + 0.25, abs=1e-6)


def test_bradley_terry_loss_equal_scores_and_gradient():
    r = torch.tensor([0.3, -1.2])
    loss, m = bradley_terry_loss(r, r.clone())
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6) and m["pref_accuracy"] == 0.0
    r_c = torch.tensor([1.0], requires_grad=True)
    bradley_terry_loss(r_c, torch.tensor([0.0]))[0].backward()
    assert r_c.grad.item() == pytest.approx(-1 / (1 + math.e), abs=1e-6)  # d/dr_c = -sigmoid(-(r_c - r_r))


def test_bradley_terry_loss_is_shift_invariant():
    r_c, r_r = torch.tensor([0.2, 1.5, -0.7]), torch.tensor([0.9, -0.1, -0.8])
    a, b = bradley_terry_loss(r_c, r_r)[0], bradley_terry_loss(r_c + 3.0, r_r + 3.0)[0]
    assert a.item() == pytest.approx(b.item(), abs=1e-6)


def test_pairwise_preference_loss_hand_values():
    f_cr, f_rc = torch.tensor([3.0, -1.0]), torch.tensor([-1.0, 1.0])  # log-odds (f_cr - f_rc) / 2 = [2, -1]
    loss, m = pairwise_preference_loss(f_cr, f_rc)
    assert loss.item() == pytest.approx((softplus(-2.0) + softplus(1.0)) / 2, abs=1e-6)
    assert m["pref_accuracy"] == 0.5 and m["reward_margin"] == pytest.approx(0.5, abs=1e-6)
    assert m["order_bias"] == pytest.approx((abs(3 - 1) / 2 + abs(-1 + 1) / 2) / 2, abs=1e-6)
    loss, _ = pairwise_preference_loss(f_cr, f_rc, center_coef=0.1)  # + 0.1 * mean((f_cr + f_rc)^2) = 0.1 * 4 / 2
    assert loss.item() == pytest.approx((softplus(-2.0) + softplus(1.0)) / 2 + 0.2, abs=1e-6)
    loss, _ = pairwise_preference_loss(f_cr, f_rc, margin=torch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx((softplus(-1.0) + softplus(1.0)) / 2, abs=1e-6)


def test_pairwise_probability_is_antisymmetric_and_ignores_position_bias():
    f_ab, f_ba = torch.tensor([0.7, -2.0, 5.0]), torch.tensor([0.1, 1.0, 4.0])
    z = PAIR_LOG_ODDS["preference_model"](f_ab, f_ba)
    assert torch.equal(z, -PAIR_LOG_ODDS["preference_model"](f_ba, f_ab))  # P(a > b) = 1 - P(b > a)
    torch.testing.assert_close(z, PAIR_LOG_ODDS["preference_model"](f_ab + 9.0, f_ba + 9.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.sigmoid(z) + torch.sigmoid(-z), torch.ones(3), atol=1e-6, rtol=0)
    assert set(REWARD_MODEL_LOSSES) == set(PAIR_LOG_ODDS) == {"reward_model", "preference_model"}


# ------------------------------------------------------------------ pair metrics


def test_pair_accuracy_counts_a_tie_as_half():
    assert pair_accuracy(torch.tensor([2.0, -1.0, 0.0, 3.0])) == pytest.approx((1 + 0 + 0.5 + 1) / 4, abs=1e-12)


def test_log_loss_hand_value_and_finite_when_confident():
    z = torch.tensor([2.0, -1.0, 0.0])
    assert log_loss(z) == pytest.approx((softplus(-2.0) + softplus(1.0) + math.log(2)) / 3, abs=1e-9)
    assert log_loss(torch.tensor([-200.0])) == pytest.approx(200.0, abs=1e-9)


def test_expected_calibration_error_hand_values():
    # Each pair enters as (p, 1) and (1 - p, 0); here all six points fall in different bins.
    z = torch.tensor([logit(0.93), logit(0.64), logit(0.22)])
    assert expected_calibration_error(z) == pytest.approx((0.07 + 0.36 + 0.78) * 2 / 6, abs=1e-6)
    # Two points per bin: bin 9 holds (0.95, 1), (0.95, 0) -> |0.5 - 0.95|; bin 0 the same: ECE 0.45, not 0.5.
    assert expected_calibration_error(torch.tensor([logit(0.95), logit(0.05)])) == pytest.approx(0.45, abs=1e-6)
    assert expected_calibration_error(torch.zeros(5)) == 0.0  # always 1/2: calibrated, if useless
    m = pair_metrics(torch.tensor([1.0, -1.0]))
    assert set(m) == {"pair_accuracy", "pair_ece", "pair_log_loss", "pair_margin", "pairs"} and m["pairs"] == 2.0


# ------------------------------------------------------------------ the model, its pooling, save and load

CONTEXT = [{"role": "system", "content": "Keep a running total."}, {"role": "user", "content": "Turn 1. Keys: a"}]
SIDE_A = [{"role": "assistant", "content": "<answer>3</answer>"}, {"role": "user", "content": "Turn 2. Keys: b"},
          {"role": "assistant", "content": "<answer>7</answer>"}]
SIDE_B = [{"role": "assistant", "content": "<answer>5</answer>"}]


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    """A reward model and a preference model on tiny-random's trunk (untrained heads), saved."""
    out = {}
    for kind in ("reward_model", "preference_model"):
        torch.manual_seed(0)
        model = attach_score_head(tiny.model, tiny.tokenizer, kind).eval()
        path = tmp_path_factory.mktemp(kind)
        model.save_pretrained(path)
        tiny.tokenizer.save_pretrained(path)
        out[kind] = (model, path)
    return out


def episode(seed: int, actions: list[str]) -> Trajectory:
    turns = [Turn(observation=f"Turn {k + 1}. Keys: k{seed}", action=a, reward=float(k)) for k, a in enumerate(actions)]
    return Trajectory(env_id="longhorizon/Execution-v0", seed=seed, turns=turns)


def test_save_load_gives_identical_scores(tiny, saved):
    model, path = saved["reward_model"]
    items = [(CONTEXT, SIDE_A), (CONTEXT, SIDE_B), ("plain context ", "plain continuation")]
    # the same weights; the two forward passes may differ in the last float bits (kernel choice, thread count)
    assert load_reward_model(path).score(items) == pytest.approx(RewardModel(model, tiny.tokenizer).score(items), abs=1e-6)


def test_pooling_matches_transformers_forward_and_ignores_padding(tiny, saved):
    from transformers import AutoModelForSequenceClassification

    _, path = saved["reward_model"]
    rows = [reward_tokens(tiny.tokenizer, CONTEXT, side) for side in (SIDE_A, SIDE_B)]
    ids, attn = pad_right(rows, tiny.tokenizer.pad_token_id)
    hf = AutoModelForSequenceClassification.from_pretrained(path).eval()
    with torch.no_grad():
        ours = pooled_scores(hf, ids, attn)
        theirs = hf(input_ids=ids, attention_mask=attn).logits[:, 0]  # pools the last token that is not the pad id
        alone = torch.cat([pooled_scores(hf, *pad_right([r], tiny.tokenizer.pad_token_id)) for r in rows])
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours, alone, atol=1e-5, rtol=0)


def test_shared_prefix_gives_the_plain_scores_and_gradients(tiny, saved):
    model, _ = saved["reward_model"]
    rows = [reward_tokens(tiny.tokenizer, CONTEXT, side) for side in (SIDE_A, SIDE_B, SIDE_A[:1])]
    rows.append(reward_tokens(tiny.tokenizer, "unrelated plain text", " and more"))
    ids, attn = pad_right(rows, tiny.tokenizer.pad_token_id)
    grads = {}
    for share in (False, True):
        model.zero_grad()
        scores = pooled_scores(model, ids, attn, share_prefix=share)
        (scores * torch.tensor([1.0, -2.0, 0.5, 3.0])).sum().backward()
        grads[share] = (scores.detach(), [p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(grads[True][0], grads[False][0], atol=1e-5, rtol=0)
    for shared, plain in zip(grads[True][1], grads[False][1]):
        torch.testing.assert_close(shared, plain, atol=1e-5, rtol=0)
    model.zero_grad()


def test_score_turns_ends_with_the_episode_score(tiny, saved):
    rm = RewardModel.load(saved["reward_model"][1], batch_size=3)
    trajs = [episode(1, ["<answer>1</answer>", "<answer>4</answer>", "<answer>9</answer>"]), episode(2, ["no"])]
    whole = rm.score_episodes(trajs, systems="Keep a running total.")
    turns = rm.score_turns(trajs, systems=["Keep a running total.", "Keep a running total."])
    assert [len(t) for t in turns] == [3, 1]
    assert [t[-1] for t in turns] == pytest.approx(whole, abs=1e-5)  # the prefix through the last action is the episode
    assert len(set(turns[0])) == 3
    with pytest.raises(UserError, match="2 episodes"):
        rm.score_episodes(trajs, systems=["only one"])
    with pytest.raises(UserError, match="no turns"):
        rm.score_episodes([episode(3, [])])


def test_reward_model_prob_is_bradley_terry(saved):
    rm = RewardModel.load(saved["reward_model"][1])
    r_a, r_b = rm.score([(CONTEXT, SIDE_A), (CONTEXT, SIDE_B)])
    assert rm.prob(CONTEXT, SIDE_A, SIDE_B) == pytest.approx(1 / (1 + math.exp(r_b - r_a)), abs=1e-6)


def test_preference_model_prob_is_antisymmetric(tiny, saved):
    pm = load_preference_model(saved["preference_model"][1])
    p_ab, p_ba = pm.prob(CONTEXT, SIDE_A, SIDE_B), pm.prob(CONTEXT, SIDE_B, SIDE_A)
    assert p_ab + p_ba == pytest.approx(1.0, abs=1e-6) and p_ab != pytest.approx(0.5, abs=1e-9)
    assert pm.prob(CONTEXT, SIDE_A, SIDE_A) == pytest.approx(0.5, abs=1e-6)
    assert pm.probs([("x", "a", "b"), ("x", "b", "a")]) == pytest.approx([1 - pm.prob("x", "b", "a"), pm.prob("x", "b", "a")], abs=1e-6)
    ab = tiny.tokenizer.decode(comparison_tokens(tiny.tokenizer, CONTEXT, SIDE_A, SIDE_B))
    assert ab.index("<answer>3</answer>") < ab.index("[Continuation B]") < ab.index("<answer>5</answer>")
    assert isinstance(pm, PreferenceModel)


# ------------------------------------------------------------------ bad input


def test_load_refuses_what_is_not_a_reward_model(tiny, saved, tmp_path):
    with pytest.raises(UserError, match="not a model directory"):
        load_reward_model(tmp_path / "nope")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{}")
    with pytest.raises(UserError, match="not a Hugging Face model directory|not a reward model"):
        load_reward_model(tmp_path / "junk")
    tiny.model.save_pretrained(tmp_path / "causal")  # a causal LM: no scalar head
    with pytest.raises(UserError, match="is not a reward model .*LlamaForCausalLM"):
        load_reward_model(tmp_path / "causal")
    with pytest.raises(UserError, match="is a preference model, not a reward model"):
        load_reward_model(saved["preference_model"][1])
    with pytest.raises(UserError, match="is a reward model, not a preference model"):
        load_preference_model(saved["reward_model"][1])
    for err in (UserError("x"),):
        assert len(str(err).splitlines()) == 1


def test_a_one_output_model_without_our_key_loads_as_a_reward_model(tiny, saved, tmp_path):
    """A reward model trained elsewhere (TRL's RewardTrainer: num_labels 1, no `longhorizon_scorer`) loads."""
    import json
    import shutil

    model, path = saved["reward_model"]
    shutil.copytree(path, tmp_path / "trl")
    config = json.loads((tmp_path / "trl" / "config.json").read_text())
    del config["longhorizon_scorer"]
    (tmp_path / "trl" / "config.json").write_text(json.dumps(config))
    assert load_reward_model(tmp_path / "trl").score([(CONTEXT, SIDE_A)]) == load_reward_model(path).score([(CONTEXT, SIDE_A)])


def test_system_prompts_come_from_the_env():
    from longhorizon.feedback.reward_model import system_prompts

    trajs = [episode(3, ["x"]), episode(3, ["y"])]
    prompts = system_prompts(trajs, {"horizon": 2})
    assert len(prompts) == 2 and prompts[0] == prompts[1]


def test_cli_prefs_eval(tiny, saved, tmp_path):
    from typer.testing import CliRunner

    from longhorizon.cli import app
    from longhorizon.feedback import make_pair, write_pairs

    pairs = [make_pair(CONTEXT, SIDE_A, SIDE_B, "a", "verifier"), make_pair("x", "good", "bad", "b", "human")]
    write_pairs(tmp_path / "pairs.jsonl", pairs)
    runner = CliRunner()
    for kind in ("reward_model", "preference_model"):
        result = runner.invoke(app, ["prefs", "eval", str(saved[kind][1]), str(tmp_path / "pairs.jsonl")])
        assert result.exit_code == 0 and f"{kind.replace('_', ' ')} on" in result.output and "(n=2)" in result.output
    tiny.model.save_pretrained(tmp_path / "causal")
    for model, match in ((tmp_path / "causal", "is not a reward model"), (tmp_path / "none", "not a model directory")):
        result = runner.invoke(app, ["prefs", "eval", str(model), str(tmp_path / "pairs.jsonl")])
        assert result.exit_code == 2 and match in result.output and len(result.output.strip().splitlines()) == 1
