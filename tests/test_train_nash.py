"""Nash-MD and Nash-MP on episodes (issue 13): the geometric-mixture sampler against a teacher-forced mixture,
the verifier's preferences and per-episode token assembly by hand, and on the tiny random model two steps that
move every trainable tensor and a resume that equals the straight run."""

from __future__ import annotations

import contextlib
import copy
import math

import pytest
import torch

from longhorizon.models import SamplingParams, TransformersSampler, load_model
from longhorizon.models.mixture import mixture_processors
from longhorizon.train import train
from longhorizon.train.checkpoint import latest_checkpoint, load_weights
from longhorizon.train.metrics import read_records
from longhorizon.train.model import build_models
from longhorizon.train.nash import Snapshot, episode_tokens, preferences
from longhorizon.train.optim import build_optimizer
from tests.test_train import assert_same_weights, crash_then_resume
from test_train_online import _traj, online_cfg

PROMPTS = [[1, 5, 6, 7], [9, 8]]  # different lengths: the second row is left-padded


@pytest.fixture(scope="module")
def two_models():
    torch.manual_seed(0)
    policy = load_model("tiny-random")
    ref = copy.deepcopy(policy.model)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.5)  # a reference that clearly differs
    return policy, ref


def _teacher_forced(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


@pytest.mark.parametrize("coef", [0.0, 0.3, 1.0])
def test_mixture_samples_with_the_teacher_forced_mixture_logprobs(two_models, coef):
    policy, ref = two_models
    params = SamplingParams(temperature=1.0, max_new_tokens=4, seed=3)
    sampler = TransformersSampler(policy.model, policy.tokenizer, params, kv_cache_bytes=0,
                                  processors=mixture_processors(lambda: contextlib.nullcontext(ref), coef))
    for prompt, gen in zip(PROMPTS, sampler.generate(PROMPTS)):
        ids = prompt + gen.token_ids
        mix = torch.log_softmax(coef * _teacher_forced(ref, ids) + (1 - coef) * _teacher_forced(policy.model, ids), -1)
        expected = [mix[len(prompt) - 1 + i, t].item() for i, t in enumerate(gen.token_ids)]
        assert gen.logprobs == pytest.approx(expected, abs=1e-4)


def test_mixture_coefficient_out_of_range_is_refused():
    with pytest.raises(ValueError, match="mixture coefficient"):
        mixture_processors(lambda: contextlib.nullcontext(None), 1.5)


def test_verifier_preferences_count_ties_as_half():
    ours = [_traj(0, 0.5), _traj(0, 0.2), _traj(1, 0.3)]
    theirs = [_traj(0, 0.1), _traj(0, 0.2), _traj(1, 0.9)]
    assert preferences(ours, theirs).tolist() == [1.0, 0.5, 0.0]


def test_a_model_labeller_gives_soft_preferences_against_the_opponent():
    from longhorizon.feedback.labellers import Label

    seen = []

    def labeller(candidates):
        seen.extend(candidates)
        return [Label(0.25 + 0.5 * (c.return_b > c.return_a)) for c in candidates]

    ours, theirs = [_traj(0, 0.5), _traj(1, 0.3)], [_traj(0, 0.1), _traj(1, 0.9)]
    assert preferences(ours, theirs, labeller).tolist() == [0.25, 0.75]
    assert [(c.return_a, c.return_b) for c in seen] == [(0.5, 0.1), (0.3, 0.9)]  # y_i against its own opponent


def test_episode_tokens_concatenate_each_episodes_rows_in_order():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    mask = torch.tensor([[0, 1, 1], [1, 0, 0], [0, 0, 1]])
    row_episode = torch.tensor([0, 1, 0])  # episode 0 has rows 0 and 2
    padded, keep = episode_tokens(values, mask, row_episode, torch.tensor([1, 0]))
    assert padded.tolist() == [[4.0, 0.0, 0.0], [2.0, 3.0, 9.0]]
    assert keep.tolist() == [[True, False, False], [True, True, True]]


def test_snapshot_restores_weights_optimizer_and_schedule(tmp_path):
    cfg = online_cfg(tmp_path, "algorithm.name=nash_mp")
    models = build_models(cfg, needs_ref=True, value_head=False)
    optimizer, scheduler = build_optimizer(cfg, models)
    before = {n: p.detach().clone() for n, p in models.model.named_parameters()}
    pi_k = Snapshot.take(models, optimizer, scheduler)
    models.model(torch.tensor([[1, 2, 3]])).logits.sum().backward()
    optimizer.step()
    scheduler.step()
    assert any(not torch.equal(before[n], p) for n, p in models.model.named_parameters())
    pi_k.restore(models, optimizer, scheduler)
    assert all(torch.equal(before[n], p) for n, p in models.model.named_parameters())
    assert optimizer.state_dict()["state"] == {} and scheduler.state_dict() == pi_k.scheduler


CASES = {"nash_md": ["algorithm.name=nash_md", "algorithm.mixture_coef=0.5"],
         "nash_md_judged": ["algorithm.name=nash_md", "algorithm.labeller=judge", "algorithm.labeller_model=tiny-random"],
         "nash_mp": ["algorithm.name=nash_mp", "algorithm.prox_eta=0.5"],
         "nash_md_lora": ["algorithm.name=nash_md", "lora.enabled=true", "lora.r=4"]}


@pytest.mark.parametrize("case", list(CASES))
def test_nash_methods_train_two_steps_and_move_every_tensor(tmp_path, case):
    cfg = online_cfg(tmp_path, "eval.episodes=2", "epochs=2", "num_minibatches=2", *CASES[case])
    result = train(cfg)
    records = read_records(result.run_dir)
    assert all(math.isfinite(v) for r in records for v in r.values()), records
    steps = [r for r in records if "charts/win_rate" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for key in ("losses/pref_loss", "losses/kl", "losses/preference_prob", "losses/chosen_logratio",
                "losses/grad_norm", "charts/reward_mean", "charts/opponent_reward_mean"):
        assert key in steps[-1], key
    assert 0.0 <= steps[-1]["charts/win_rate"] <= 1.0
    # the loss's p is the win rate against the opponents it trained on (Nash-MP's last: pi_{k+1/2}'s)
    played = steps[-1]["charts/midpoint_win_rate" if case == "nash_mp" else "charts/win_rate"]
    assert steps[-1]["losses/preference_prob"] == pytest.approx(played, abs=1e-6)
    if case == "nash_mp":
        assert steps[-1]["half1/preference_prob"] == pytest.approx(steps[-1]["charts/win_rate"], abs=1e-6)
        assert "losses/kl_prev" in steps[-1] and "half1/kl_prev" in steps[-1]
    assert "losses/rejected_logratio" not in steps[-1]  # the opponent's log-probs are never computed
    assert result.eval_before is not None and result.eval_after is not None
    start = dict(build_models(cfg, needs_ref=False, value_head=False).model.named_parameters())
    weights = load_weights(latest_checkpoint(result.run_dir))["policy"]
    moved = {name: (w - start[name].detach()).abs().max().item() for name, w in weights.items()}
    assert moved and all(m > 0 for m in moved.values()), moved


@pytest.mark.parametrize("case", ["nash_md", "nash_mp"])
def test_two_steps_resume_two_more_equals_four_straight(tmp_path, case):
    sets = ["steps=4", "checkpoint_every=2", "epochs=2", "num_minibatches=2", *CASES[case]]
    straight = train(online_cfg(tmp_path / "straight", *sets))
    broken_cfg = online_cfg(tmp_path / "broken", *sets)

    resumed = crash_then_resume(broken_cfg)
    assert_same_weights(straight, resumed)
    keys = ("losses/pref_loss", "charts/reward_mean", "charts/opponent_reward_mean", "charts/win_rate")
    logged = [[r.get(k) for r in read_records(run.run_dir) for k in keys] for run in (straight, resumed)]
    assert logged[0] == pytest.approx(logged[1], abs=1e-6)
