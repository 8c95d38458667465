"""Long-horizon credit and exploration methods in the trainer (issue 16).

- each method with nothing to do is an exact no-op against plain GRPO (loss and gradient within 1e-7);
- SIREN's anchor is set on the first step and then kept; EPO's history averages the steps;
- each method with grpo and with ppo trains on tiny-random, moves the weights, and a run broken after
  step 2 and resumed equals 4 straight steps (the running state is in the checkpoint).
"""

from __future__ import annotations

import math

import pytest
import torch

from longhorizon.context import make_strategy
from longhorizon.errors import ConfigError
from longhorizon.models import SamplingParams, TransformersSampler
from longhorizon.rollout import ModelPolicy, run_episodes
from longhorizon.train import ALGORITHMS, train
from longhorizon.train import exploration
from longhorizon.train.batch import collate, with_credit
from longhorizon.train.checkpoint import latest_checkpoint
from longhorizon.train.loop import score, task_specs
from longhorizon.train.metrics import read_records
from longhorizon.train.model import build_models
from longhorizon.train.optim import trainable
from longhorizon.train.replay import ReplayBuffer
from longhorizon.train.update import minibatch_backward
from test_train import Crash, _actions, _losses, final_weights, tiny_cfg

EXACT = 1e-7


def rollout(cfg):
    """Models, the step's trajectories and their batch (scored), as the loop builds them."""
    torch.set_num_threads(1)
    algo = ALGORITHMS[cfg.algorithm.name]
    models = build_models(cfg, needs_ref=algo.needs_ref(cfg.algorithm), value_head=algo.value_head)
    params = SamplingParams(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    strategy = make_strategy("full")
    trajectories = run_episodes(task_specs(cfg, 0), ModelPolicy(TransformersSampler(models.model, models.tokenizer, params), strategy))
    batch = collate(trajectories, strategy, models.tokenizer.pad_token_id)
    return models, trajectories, strategy, score(models, batch, cfg, algo)[0]


def loss_and_grads(models, batch, cfg, entropy=None, state=None):
    """Plain-GRPO-style credit (plus the method's modulation), then one minibatch backward: (metrics, grads)."""
    algo = ALGORITHMS[cfg.algorithm.name]
    credit = exploration.modulate_credit(algo.credit(batch, cfg.algorithm), batch, entropy, cfg.algorithm.entropy)
    batch = with_credit(batch, advantages=credit.advantages, loss_mask=credit.loss_mask, returns=credit.returns)
    models.model.train()
    for p in trainable(models):
        p.grad = None
    metrics = minibatch_backward(models, batch, torch.arange(batch.rows), cfg, algo, state)
    grads = [p.grad.clone() for p in trainable(models) if p.grad is not None]
    return metrics, grads, credit.advantages


def assert_same(a, b):
    (ma, ga, adv_a), (mb, gb, adv_b) = a, b
    torch.testing.assert_close(adv_a, adv_b, atol=EXACT, rtol=0)
    assert ma["losses/policy_loss"] == pytest.approx(mb["losses/policy_loss"], abs=EXACT)
    assert len(ga) == len(gb) > 0 and any(g.abs().sum() > 0 for g in ga)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, atol=EXACT, rtol=0)


BASE = ["tasks_per_step=3", "algorithm.group_size=3", "micro_batch_size=9"]


def test_empg_with_constant_entropy_and_no_bonus_is_plain_grpo(tmp_path):
    plain = tiny_cfg(tmp_path, *BASE)
    empg = tiny_cfg(tmp_path, *BASE, "algorithm.entropy.method=empg", "algorithm.entropy.empg_zeta=0")
    models, _, _, batch = rollout(plain)
    constant = torch.full_like(batch.old_logprobs, 0.7)
    assert_same(loss_and_grads(models, batch, plain), loss_and_grads(models, batch, empg, constant))
    # with a varying entropy EMPG does change the advantages
    varying = torch.rand_like(batch.old_logprobs)
    _, _, adv = loss_and_grads(models, batch, empg, varying)
    assert not torch.allclose(adv, loss_and_grads(models, batch, plain)[2])


def test_gra_with_open_gates_is_plain_grpo(tmp_path):
    plain = tiny_cfg(tmp_path, *BASE)
    gated = tiny_cfg(tmp_path, *BASE, "algorithm.rewards.components=[{name: correct, weight: 0.0}, {name: env}]",
                     "algorithm.rewards.gates=[-1e9]")
    models, trajectories, _, batch = rollout(plain)
    rewards, spans, metrics = exploration.shaped_turn_rewards(trajectories, batch, gated.algorithm.rewards)
    assert spans is None
    assert torch.equal(rewards, batch.turn_rewards) and metrics["rewards/gated_frac"] == 0.0
    assert_same(loss_and_grads(models, batch, plain),
                loss_and_grads(models, with_credit(batch, turn_rewards=rewards), gated))


def test_replay_with_no_failing_group_is_plain_grpo(tmp_path):
    plain = tiny_cfg(tmp_path, *BASE)
    models, trajectories, strategy, batch = rollout(plain)
    buffer = ReplayBuffer(fail_mean=-math.inf, success_threshold=-math.inf)  # every episode stored, no group failing
    buffer.update(trajectories)
    replayed, metrics = buffer.apply(trajectories)
    assert replayed == trajectories and metrics["replay_rate"] == 0.0
    again = score(models, collate(replayed, strategy, models.tokenizer.pad_token_id), plain, ALGORITHMS["grpo"])[0]
    assert_same(loss_and_grads(models, batch, plain), loss_and_grads(models, again, plain))


def test_steer_with_lambda_min_one_is_plain_grpo(tmp_path):
    plain = tiny_cfg(tmp_path, *BASE)
    steer = tiny_cfg(tmp_path, *BASE, "algorithm.entropy.method=steer", "algorithm.entropy.steer_lambda_min=1.0")
    models, _, _, batch = rollout(plain)
    assert_same(loss_and_grads(models, batch, plain), loss_and_grads(models, batch, steer))


def test_siren_anchor_is_set_on_the_first_step_then_kept_and_epo_history_averages(tmp_path):
    cfg = tiny_cfg(tmp_path, *BASE, "algorithm.entropy.method=siren")
    models, _, _, batch = rollout(cfg)
    state = exploration.CreditState()
    entropy = exploration.rollout_entropy(models, batch, cfg)
    assert entropy.shape == batch.old_logprobs.shape and (entropy[batch.loss_mask == 0] == 0).all()
    metrics = exploration.observe(state, batch, entropy, cfg.algorithm.entropy)
    selected, _ = exploration.peak_entropy_mask(entropy, batch.loss_mask, 0.8)
    expected = exploration.selected_entropy(entropy, selected).item()
    assert state.siren_anchor == pytest.approx(expected, abs=1e-6) and metrics["entropy/siren_anchor"] == state.siren_anchor
    exploration.observe(state, batch, entropy * 2, cfg.algorithm.entropy)
    assert state.siren_anchor == pytest.approx(expected, abs=1e-6)  # fixed after step 1

    epo = tiny_cfg(tmp_path, *BASE, "algorithm.entropy.method=epo").algorithm.entropy
    means, has = exploration.turn_entropy(entropy, batch)
    state = exploration.CreditState()
    for scale in (1.0, 3.0):
        exploration.observe(state, batch, entropy * scale, epo)
    turn0 = (means[:, 0] * has[:, 0]).sum() / has[:, 0].sum()
    history, known = state.epo_history(batch.token_turn)
    assert state.epo_count[0] == 2 and state.epo_sum[0] / 2 == pytest.approx(2 * turn0.item(), abs=1e-6)
    assert known[batch.token_turn == 0].all() and not known[batch.token_turn < 0].any()


def test_config_is_off_by_default_and_rejects_bad_values(tmp_path):
    a = tiny_cfg(tmp_path).algorithm
    assert a.entropy.method == "none" and not a.rewards.components and not a.replay.enabled
    with pytest.raises(ConfigError, match="gates"):
        tiny_cfg(tmp_path, "algorithm.rewards.components=[{name: env}]", "algorithm.rewards.gates=[1.0]")
    with pytest.raises(ConfigError, match="unknown segment reward"):
        tiny_cfg(tmp_path, "algorithm.rewards.components=[{name: nope}]")
    with pytest.raises(ConfigError, match="method"):
        tiny_cfg(tmp_path, "algorithm.entropy.method=maxent")


# Each entropy method once with grpo and once with ppo; G-RA, EAPO and replay ride along (they compose).
REPLAY = ["algorithm.replay.enabled=true", "algorithm.replay.task_pool=2", "algorithm.replay.success_threshold=-1",
          "algorithm.replay.fail_mean=9", "algorithm.replay.fail_std=9"]  # every group replays from step 2 on
GRA = ["algorithm.rewards.components=[{name: success}, {name: env}]", "algorithm.rewards.gates=[0.5]",
       "algorithm.credit=per_turn"]
EPO = ["algorithm.entropy.epo_coef=0.1", "algorithm.entropy.epo_smooth_from_turn=1"]
SPANS = ["algorithm.rewards.components=[{name: env}, {name: repeated_line, weight: 0.5}]"]
CASES = {
    "grpo_empg_gra_replay": ["algorithm.name=grpo", "algorithm.entropy.method=empg", *GRA, *REPLAY],
    "grpo_epo_eapo": ["algorithm.name=grpo", "algorithm.entropy.method=epo", *EPO, "algorithm.entropy.epo_phase_weights=true",
                      "algorithm.credit=eapo", "algorithm.turn_gamma=0.9"],
    "grpo_siren": ["algorithm.name=grpo", "algorithm.entropy.method=siren", "algorithm.entropy.siren_coef=0.5"],
    "grpo_steer": ["algorithm.name=grpo", "algorithm.entropy.method=steer"],
    "ppo_empg_eapo_replay": ["algorithm.name=ppo", "algorithm.entropy.method=empg", "algorithm.credit=eapo", *REPLAY,
                             "algorithm.replay.filter_threshold=0.0", "algorithm.replay.filter_min_attempts=2"],
    "ppo_epo_gra": ["algorithm.name=ppo", "algorithm.entropy.method=epo", *EPO, *GRA],
    "ppo_siren": ["algorithm.name=ppo", "algorithm.entropy.method=siren", "algorithm.entropy.siren_coef=0.5"],
    "ppo_steer": ["algorithm.name=ppo", "algorithm.entropy.method=steer"],
    # the other algorithms the methods compose with, and span-level rewards (token-level for reinforce++)
    # (tiny-random's returns are all 0, so these use a method with its own loss term for a gradient; LOOP,
    # which then filters every group out, is composed on hand-made returns in test_span_rewards.py)
    "rloo_epo_spans": ["algorithm.name=rloo", "algorithm.entropy.method=epo", *EPO, *SPANS],
    "reinforce_pp_siren_spans": ["algorithm.name=reinforce++", "algorithm.entropy.method=siren",
                                 "algorithm.entropy.siren_coef=0.5", *SPANS],
}
EXPECTED = {"empg": "credit/empg_modulation_mean", "epo": "entropy/epo_entropy_bonus",
            "siren": "entropy/siren_selected_entropy", "steer": "entropy/steer_weight_mean"}


@pytest.mark.parametrize("case", list(CASES))
def test_each_method_trains_moves_weights_and_resumes_exactly(tmp_path, case):
    sets = ["steps=4", "checkpoint_every=2", "save_trajectories=true", *CASES[case]]
    straight = train(tiny_cfg(tmp_path / "straight", *sets))
    records = [r for r in read_records(straight.run_dir) if "charts/reward_mean" in r]
    assert all(math.isfinite(v) for r in records for v in r.values())
    method = tiny_cfg(tmp_path, *sets).algorithm.entropy.method
    assert EXPECTED[method] in records[-1], sorted(records[-1])
    if "algorithm.replay.enabled=true" in sets:
        assert records[-1]["replay/replay_rate"] == 1.0 and records[0]["replay/replay_rate"] == 0.0
    if "algorithm.replay.filter_threshold=0.0" in sets:  # every episode counts as a success: both tasks filtered
        assert records[-1]["replay/filtered_tasks"] == 2.0
    if method == "epo":
        assert records[-1]["entropy/epo_history_mean"] > 0
    if "algorithm.rewards.gates=[0.5]" in sets:
        assert "rewards/gated_frac" in records[-1] and "rewards/return_success" in records[-1]
    if SPANS[0] in sets:
        assert "rewards/return_repeated_line" in records[-1]

    cfg = tiny_cfg(tmp_path / "broken", *sets)
    start = dict(build_models(cfg, needs_ref=False, value_head=False).model.named_parameters())
    a = final_weights(straight.run_dir)
    assert all((w - start[n].detach()).abs().max() > 0 for n, w in a["policy"].items())  # every tensor moved

    def crash_at_step_3(step, metrics):
        if step == 3:
            raise Crash

    with pytest.raises(Crash):
        train(cfg, on_log=crash_at_step_3)
    assert latest_checkpoint(cfg.run_dir).name == "step_000002"
    resumed = train(cfg, resume=True)
    b = final_weights(resumed.run_dir)
    for part in ("policy", "value_head"):
        for name in a[part]:
            torch.testing.assert_close(a[part][name], b[part][name], atol=1e-6, rtol=0)
    for step in (3, 4):
        assert _actions(straight.run_dir, step) == _actions(resumed.run_dir, step)
    assert _losses(straight.run_dir) == pytest.approx(_losses(resumed.run_dir), abs=1e-6)
    assert _method_metrics(straight.run_dir) == pytest.approx(_method_metrics(resumed.run_dir), abs=1e-6)


def _method_metrics(run_dir):
    """What the methods log (EPO's history, SIREN's anchor, the replay buffer...), step by step."""
    prefixes = ("entropy/", "credit/", "replay/", "rewards/")
    return [r[k] for r in read_records(run_dir) for k in sorted(r) if k.startswith(prefixes)]


# ------------------------------------------------------------------ EAPO credit and named segment rewards


def test_eapo_credit_normalises_over_all_rounds_of_a_task():
    from longhorizon.train.config import AlgorithmConfig
    from test_train_credit import batch_of, close, episode

    batch = batch_of(episode([1.0, 1.0]), episode([0.0, 1.0]))  # returns 2 and 1
    credit = ALGORITHMS["grpo"].credit(batch, AlgorithmConfig(credit="eapo", turn_gamma=0.5, scale_by_std=False))
    # rounds: [0.5 * 2, 2] and [0.5 * 1, 1]; one group of 4 cells, mean 1.125
    close(credit.advantages, [[0, 0, -0.125, -0.125, 0, 0.875], [0, 0, -0.625, -0.625, 0, -0.125]])


def test_segment_rewards_score_each_turn_and_mix_with_weights():
    from longhorizon.train.config import AlgorithmConfig
    from longhorizon.train.segment_rewards import components
    from longhorizon.types import Trajectory, Turn

    turns = [Turn("o", "a", reward=0.5, info={"correct": True}), Turn("o", "b", reward=0.0, info={"error": "bad"})]
    won = Trajectory(env_id="e", seed=0, turns=turns, success=True)
    lost = Trajectory(env_id="e", seed=1, turns=turns[:1], success=False)
    comps = components([won, lost], ["env", "success", "correct", "format"], 2)
    expected = [[[0.5, 0.0], [0.5, 0.0]], [[0.0, 1.0], [0.0, 0.0]], [[1.0, 0.0], [1.0, 0.0]], [[0.0, -1.0], [0.0, 0.0]]]
    torch.testing.assert_close(comps, torch.tensor(expected))
    cfg = AlgorithmConfig.model_validate({"rewards": {"components": [{"name": "success"}, {"name": "format", "weight": 0.5}],
                                                      "gates": [1.0]}})
    batch = collate([won, lost], make_strategy("full"), pad_id=0)
    rewards, _, metrics = exploration.shaped_turn_rewards([won, lost], batch, cfg.rewards)
    torch.testing.assert_close(rewards, torch.tensor([[0.0, 0.5], [0.0, 0.0]]))  # success + 0.5 * format, gated
    assert metrics["rewards/return_success"] == 0.5 and metrics["rewards/return_format"] == -0.25
