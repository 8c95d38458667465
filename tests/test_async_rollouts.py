"""Asynchronous training with a staleness bound (`rollout.max_staleness`, rollout/asynchronous.py) and the
decoupled PPO loss (`algorithm.decoupled`): the rules by hand, then on a local Ray with two workers."""

from __future__ import annotations

import gc
import math
from pathlib import Path

import pytest
import torch

from longhorizon.algorithms import behaviour_weights, ppo_clip_loss
from longhorizon.errors import ConfigError
from longhorizon.rollout.asynchronous import Finished, admissible, split_stale
from longhorizon.rollout.ray_workers import Unit
from longhorizon.train import load_config

# ------------------------------------------------------------------ the rules, by hand (no Ray)


def test_admission_rule_is_areal_get_capacity():
    """accepted + running < (max_staleness + version + 1) * batch: with 3 units a step and k = 1, six units may
    start before the first update, nine after it; with k = 0 only the current step's three."""
    assert [admissible(n, 0, 1, 3) for n in (0, 5, 6)] == [True, True, False]
    assert [admissible(n, 1, 1, 3) for n in (6, 8, 9)] == [True, True, False]
    assert [admissible(n, 0, 0, 3) for n in (2, 3)] == [True, False]
    assert [admissible(n, 4, 0, 3) for n in (14, 15)] == [True, False]


def _finished(version: int, task: int) -> Finished:
    return Finished(Unit(0, (), (), 0), [], version)


def test_units_more_than_max_staleness_behind_are_stale():
    buffer = [_finished(v, i) for i, v in enumerate((5, 3, 2, 4))]
    fresh, stale = split_stale(buffer, version=5, max_staleness=2)
    assert [f.version for f in fresh] == [5, 3, 4] and [f.version for f in stale] == [2]
    fresh, stale = split_stale(buffer, version=5, max_staleness=0)
    assert [f.version for f in fresh] == [5] and [f.version for f in stale] == [3, 2, 4]


def test_behaviour_weights_by_hand():
    """w = exp(prox - behaviour) on sampled tokens, 0 above the cap or off the mask."""
    prox = torch.tensor([[-1.0, -2.0, -0.5, -3.0]])
    behaviour = torch.tensor([[-1.0, -0.5, -2.5, -3.5]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    w = behaviour_weights(prox, behaviour, mask, cap=5.0)
    # exp(0) = 1; exp(-1.5) = 0.22313016; exp(2.0) = 7.3890561 > 5 -> 0; masked -> 0
    torch.testing.assert_close(w, torch.tensor([[1.0, 0.22313016, 0.0, 0.0]]), atol=1e-6, rtol=0)
    assert behaviour_weights(prox, behaviour, mask, cap=8.0)[0, 2].item() == pytest.approx(7.3890561, abs=1e-6)


def test_decoupled_loss_is_areal_ppo_actor_loss_by_hand():
    """ppo_clip_loss(old = pi_prox, weights = mask / sum(mask) * w) is AReaL's decoupled loss:
    sum_t mask_t 1[w_t <= cap] w_t max(-A r_t, -A clip(r_t)) / sum_t mask_t, r_t = pi_theta / pi_prox."""
    logp = torch.tensor([[-1.0, -1.0, -2.0]])
    prox = torch.tensor([[-1.5, -0.8, -2.0]])
    behaviour = torch.tensor([[-1.2, -0.8, -3.0]])
    adv = torch.tensor([[1.0, -2.0, 0.5]])
    mask = torch.ones(1, 3)
    w = behaviour_weights(prox, behaviour, mask, cap=5.0)  # exp(-0.3), exp(0) = 1, exp(1.0) = 2.7182818
    loss, _ = ppo_clip_loss(logp, prox, adv, mask, clip_low=0.2, clip_high=0.2, weights=w * mask / 3)
    # token 0: r = exp(0.5) = 1.6487213, A = 1: max(-1.6487213, -1.2) = -1.2, times exp(-0.3) = 0.74081822 -> -0.88898186
    # token 1: r = exp(-0.2) = 0.81873075, A = -2: max(1.6374615, 1.6374615) = 1.6374615 (clip at 0.8 gives 1.6)
    #          -> max(1.6374615, 1.6) = 1.6374615, times 1
    # token 2: r = 1, A = 0.5: -0.5, times 2.7182818 -> -1.3591409
    want = (-0.88898186 + 1.6374615 - 1.3591409) / 3
    assert loss.item() == pytest.approx(want, abs=1e-6)


def test_proximal_logprobs_run_only_the_rows_with_a_gradient():
    """pi_prox is the current weights' log-probs on rows whose loss has a gradient; rows with all advantages 0 keep
    their behaviour log-probs (never run), and a batch with no such row runs nothing."""
    from longhorizon.train.batch import Batch
    from longhorizon.train.credit import ALGORITHMS
    from longhorizon.train.loop import proximal_logprobs
    from longhorizon.train.model import build_models, token_forward

    cfg = load_config(None, ["model=tiny-random", "rollout.workers=2", "rollout.max_staleness=1",
                             "algorithm.decoupled=true", "micro_batch_size=1", "torch_threads=1"])
    models = build_models(cfg, needs_ref=False, value_head=False)
    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 10, 11, 0]])
    mask = torch.tensor([[0.0, 0, 1, 1, 1], [0, 0, 1, 1, 0]])
    old = torch.tensor([[0.0, 0, -1.0, -2.0, -3.0], [0, 0, -0.5, -0.25, 0]])
    batch = Batch(input_ids=ids, attention_mask=torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]), loss_mask=mask,
                  old_logprobs=old, token_turn=torch.where(mask > 0, 0, -1), row_episode=torch.tensor([0, 1]),
                  turn_rewards=torch.zeros(2, 1), turn_mask=torch.ones(2, 1), group_ids=torch.tensor([0, 0]),
                  advantages=torch.zeros(2, 5))
    algo = ALGORITHMS["grpo"]
    none, metrics = proximal_logprobs(models, batch, cfg, algo)
    assert metrics["losses/prox_rows"] == 0 and torch.equal(none.prox_logprobs, old)
    batch.advantages = torch.tensor([[0.0] * 5, [0, 0, 1.0, 1.0, 0]])
    one, metrics = proximal_logprobs(models, batch, cfg, algo)
    with torch.no_grad():
        want = token_forward(models.model, ids[1:, :4], batch.attention_mask[1:, :4], mask[1:, :4], cfg.temperature).logprobs
    assert metrics["losses/prox_rows"] == 1 and torch.equal(one.prox_logprobs[0], old[0])
    torch.testing.assert_close(one.prox_logprobs[1, :4], want[0] * mask[1, :4], atol=1e-6, rtol=0)
    assert one.prox_logprobs[1, 4] == 0


def test_config_refuses_what_asynchronous_training_cannot_do():
    with pytest.raises(ConfigError, match="needs Ray rollout workers"):
        load_config(None, ["rollout.max_staleness=1"])
    with pytest.raises(ConfigError, match="task filter"):
        load_config(None, ["rollout.workers=2", "rollout.max_staleness=1", "algorithm.replay.enabled=true",
                           "algorithm.replay.filter_threshold=0.1"])
    with pytest.raises(ConfigError, match="decoupled"):
        load_config(None, ["algorithm.decoupled=true"])
    with pytest.raises(ConfigError, match="clipped-ratio loss"):
        load_config(None, ["rollout.workers=2", "rollout.max_staleness=1", "algorithm.name=rloo",
                           "algorithm.decoupled=true"])
    with pytest.raises(ConfigError, match="max_staleness"):
        load_config(None, ["rollout.workers=2", "rollout.max_staleness=-1"])
    cfg = load_config(None, ["rollout.workers=2", "rollout.max_staleness=2", "algorithm.decoupled=true"])
    assert cfg.rollout.max_staleness == 2 and cfg.algorithm.behaviour_weight_cap == 5.0


# ------------------------------------------------------------------ training on a local Ray

ray = pytest.importorskip("ray")

from longhorizon.models import load_model  # noqa: E402
from longhorizon.train import train  # noqa: E402
from longhorizon.train.checkpoint import latest_checkpoint, load_weights  # noqa: E402
from longhorizon.train.metrics import read_records  # noqa: E402
from longhorizon.types import load_trajectories  # noqa: E402


def _cfg(tmp_path: Path, name: str, *extra: str):
    """tiny-random on one-turn Apps tasks: every reward is 0, so EPO's entropy bonus gives the gradient."""
    return load_config(None, [
        "model=tiny-random", "env_id=longhorizon/Apps-v0", "env_kwargs={max_steps: 1}", "max_new_tokens=5",
        "tasks_per_step=4", "algorithm.group_size=2", "algorithm.entropy.method=epo", "micro_batch_size=4",
        "eval.episodes=0", "torch_threads=1", f"run_dir={tmp_path / name}", "save_final_model=false",
        "optim.lr=0.01", "rollout.workers=2", *extra])


def test_max_staleness_0_equals_synchronous_training(tmp_path: Path, local_ray):
    """k = 0: the same units, seeds, weights and order as the synchronous pool: the same weights after 3 steps
    (within 1e-6) and the same trajectories at every step, all sampled by the weights of the step before."""
    torch.set_num_threads(1)
    sync = train(_cfg(tmp_path, "sync", "steps=3", "checkpoint_every=3"))
    asyn = train(_cfg(tmp_path, "async", "steps=3", "checkpoint_every=3", "rollout.max_staleness=0"))
    a, b = (load_weights(latest_checkpoint(r.run_dir))["policy"] for r in (sync, asyn))
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0)
    start = load_model("tiny-random").model.state_dict()
    assert any(not torch.equal(a[k], start[k]) for k in a)  # the weights moved
    for step in (1, 2, 3):
        x, y = (load_trajectories(r.run_dir / "trajectories" / f"step_{step:06d}.jsonl") for r in (sync, asyn))
        assert [[t.action_ids for t in e.turns] for e in x] == [[t.action_ids for t in e.turns] for e in y]
        assert {e.metadata["policy_version"] for e in y} == {step}
    records = [r for r in read_records(asyn.run_dir) if "async/staleness_max" in r]
    assert len(records) == 3 and all(r["async/staleness_max"] == 0 and r["async/staleness_frac_0"] == 1 for r in records)
    assert all(r["async/units_resampled"] == 0 for r in records)


class Crash(Exception):
    pass


def test_max_staleness_0_resumes_exactly(tmp_path: Path, local_ray):
    """A k = 0 run stopped after step 2 and resumed gives the weights of 3 straight steps: the data position
    checkpointed is the first task not yet trained on, whatever the workers had started."""
    torch.set_num_threads(1)

    def crash_at_step_3(step, metrics):
        if step == 3:
            raise Crash

    straight = train(_cfg(tmp_path, "straight", "steps=3", "checkpoint_every=1", "rollout.max_staleness=0"))
    with pytest.raises(Crash):
        train(_cfg(tmp_path, "broken", "steps=3", "checkpoint_every=1", "rollout.max_staleness=0"),
              on_log=crash_at_step_3)
    gc.collect()
    resumed = train(_cfg(tmp_path, "broken", "steps=3", "checkpoint_every=1", "rollout.max_staleness=0"), resume=True)
    a, b = (load_weights(latest_checkpoint(r.run_dir))["policy"] for r in (straight, resumed))
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0)


def test_max_staleness_2_trains_nothing_older_than_2_versions(tmp_path: Path, local_ray):
    """k = 2, with decoupled PPO: workers run up to two steps ahead, so some trained units are stale, and
    none by more than 2 versions (read from each saved trajectory's behaviour version). The weights move."""
    torch.set_num_threads(1)
    result = train(_cfg(tmp_path, "k2", "steps=5", "checkpoint_every=5", "rollout.max_staleness=2",
                        "algorithm.decoupled=true"))
    staleness = []
    for step in range(1, 6):  # step s trains with weights version s (1 = the initial weights)
        episodes = load_trajectories(result.run_dir / "trajectories" / f"step_{step:06d}.jsonl")
        assert len(episodes) == 8 and len({e.group_id for e in episodes}) == 4  # whole groups
        staleness += [step - e.metadata["policy_version"] for e in episodes]
    assert 0 <= min(staleness) and max(staleness) <= 2
    assert max(staleness) >= 1  # the workers did run ahead
    records = [r for r in read_records(result.run_dir) if "async/staleness_max" in r]
    assert [r["async/staleness_max"] <= 2 for r in records] == [True] * 5
    assert all(math.isfinite(r["losses/behaviour_weight_mean"]) and r["losses/behaviour_weight_mean"] > 0
               for r in records)
    assert all(0 <= r["async/worker_idle_fraction"] <= 1 and r["async/trainer_idle_s"] >= 0 for r in records)
    start = load_model("tiny-random").model.state_dict()
    end = load_weights(latest_checkpoint(result.run_dir))["policy"]
    assert any(not torch.equal(end[k], start[k]) for k in end)
