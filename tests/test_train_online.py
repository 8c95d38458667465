"""Online preference optimisation (online_dpo, dno, inpo, p3o_v1, p3o_v2) on the tiny random model: verifier-labelled
pairs of the policy's own episodes move every trainable tensor with finite metrics, and resume is exact."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from longhorizon.envs.core.base import TextEnv
from longhorizon.train import load_config, train
from longhorizon.train.checkpoint import latest_checkpoint, load_weights
from longhorizon.train.config import AlgorithmConfig
from longhorizon.train.metrics import read_records
from longhorizon.train.model import build_models
from longhorizon.train.online import episode_pairs
from longhorizon.types import Trajectory, Turn
from tests.test_train import assert_same_weights, crash_then_resume

TEST_ENV = "longhorizon-test/PrefChars-v0"


class CharsEnv(TextEnv):
    """Each turn pays (distinct characters in the answer) / 20, so random samples of one task differ."""

    KNOBS = {"horizon": "turns per episode"}

    def __init__(self, horizon: int = 2, render_mode: str | None = None):
        super().__init__(render_mode)
        self.horizon = horizon

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.turn = 0
        return f"Task {seed}: say anything.", {}

    def step(self, action):
        self.turn += 1
        reward = len(set(action)) / 20
        done = self.turn >= self.horizon
        return ("Done." if done else "Again."), reward, done, False, {"success": reward > 0.3} if done else {}


if TEST_ENV not in gym.registry:
    gym.register(TEST_ENV, entry_point=CharsEnv, disable_env_checker=True)


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def online_cfg(tmp_path: Path, *sets: str):
    base = ["model=tiny-random", f"env_id={TEST_ENV}", "env_kwargs={horizon: 2}", "max_new_tokens=5", "steps=2",
            "tasks_per_step=2", "algorithm.group_size=3", "algorithm.pairing=all", "micro_batch_size=2",
            "eval.episodes=0", "torch_threads=1", f"run_dir={tmp_path / 'run'}", "save_final_model=false",
            "save_trajectories=false", "checkpoint_every=1", "optim.lr=0.01"]
    return load_config(None, base + list(sets))


CASES = {"online_dpo": [], "dno": ["algorithm.name=dno"], "inpo": ["algorithm.name=inpo", "algorithm.eta=2.0",
         "algorithm.tau=0.25"], "p3o_v1": ["algorithm.name=p3o_v1", "algorithm.kl_coef=0.05"],
         "p3o_v2": ["algorithm.name=p3o_v2"], "online_dpo_lora": ["lora.enabled=true", "lora.r=4"]}


def _name(case: str) -> str:
    return "algorithm.name=online_dpo" if case.startswith("online_dpo") else CASES[case][0]


@pytest.mark.parametrize("case", list(CASES))
def test_every_online_method_trains_two_steps(tmp_path, case):
    cfg = online_cfg(tmp_path, _name(case), "eval.episodes=2", "epochs=2", "num_minibatches=2", *CASES[case])
    result = train(cfg)
    records = read_records(result.run_dir)
    assert all(math.isfinite(v) for r in records for v in r.values()), records
    steps = [r for r in records if "charts/pairs" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(r["charts/pairs"] > 0 for r in steps)
    for key in ("losses/pref_loss", "losses/reward_margin", "losses/chosen_logratio", "losses/rejected_logratio",
                "losses/pref_accuracy", "losses/grad_norm", "charts/reward_mean"):
        assert key in steps[-1], key
    assert result.eval_before is not None and result.eval_after is not None
    start = dict(build_models(cfg, needs_ref=False, value_head=False).model.named_parameters())
    weights = load_weights(latest_checkpoint(result.run_dir))["policy"]
    moved = {name: (w - start[name].detach()).abs().max().item() for name, w in weights.items()}
    assert moved and all(m > 0 for m in moved.values()), moved


def test_dno_first_loss_is_log_2_on_policy(tmp_path):
    result = train(online_cfg(tmp_path, "algorithm.name=dno", "steps=1"))  # reference = the sampling iterate
    (first,) = [r for r in read_records(result.run_dir) if "losses/pref_loss" in r]
    assert first["losses/pref_loss"] == pytest.approx(math.log(2), abs=1e-4)  # behaviour log-probs from generate


@pytest.mark.parametrize("case", ["online_dpo", "dno", "inpo", "p3o_v1", "p3o_v2", "online_dpo_lora"])
def test_two_steps_resume_two_more_equals_four_straight(tmp_path, case):
    sets = [_name(case), "steps=4", "checkpoint_every=2", "epochs=2", "num_minibatches=2", *CASES[case]]
    straight = train(online_cfg(tmp_path / "straight", *sets))
    broken_cfg = online_cfg(tmp_path / "broken", *sets)

    resumed = crash_then_resume(broken_cfg)
    assert_same_weights(straight, resumed)
    keys = ("losses/pref_loss", "charts/reward_mean", "charts/pairs")
    logged = [[r.get(k) for r in read_records(run.run_dir) for k in keys] for run in (straight, resumed)]
    assert logged[0] == pytest.approx(logged[1], abs=1e-6)


def _traj(group: int, reward: float) -> Trajectory:
    return Trajectory(env_id="e", seed=group, group_id=group, turns=[Turn(observation="o", action="a", reward=reward)])


def test_episode_pairs_by_return():
    trajs = [_traj(0, 0.2), _traj(0, 0.9), _traj(0, 0.5), _traj(1, 0.3), _traj(1, 0.3)]
    best_worst = AlgorithmConfig(name="online_dpo")
    assert episode_pairs(trajs, best_worst).tolist() == [[1, 0]]  # group 1 is a tie
    every = AlgorithmConfig(name="online_dpo", pairing="all")
    assert sorted(episode_pairs(trajs, every).tolist()) == [[1, 0], [1, 2], [2, 0]]
    margin = AlgorithmConfig(name="dno", pairing="all", min_margin=0.35)
    assert sorted(episode_pairs(trajs, margin).tolist()) == [[1, 0], [1, 2]]


def test_inpo_needs_eta_tau_at_most_one():
    with pytest.raises(Exception, match="eta \\* tau"):
        AlgorithmConfig(name="inpo", eta=10.0, tau=0.5)


def test_episode_pairs_by_a_model_labeller():
    from longhorizon.feedback.labellers import Label

    def shorter_action_wins(candidates):  # stands in for a reward model: prefers lower returns here
        return [Label(0.8 if c.return_a < c.return_b else 0.2 if c.return_a > c.return_b else 0.5) for c in candidates]

    trajs = [_traj(0, 0.2), _traj(0, 0.9), _traj(0, 0.5), _traj(1, 0.3), _traj(1, 0.3)]
    every = AlgorithmConfig(name="online_dpo", pairing="all", labeller="reward_model", labeller_model="m")
    assert sorted(episode_pairs(trajs, every, shorter_action_wins).tolist()) == [[0, 1], [0, 2], [2, 1]]


def test_a_model_labeller_needs_its_model_and_all_pairs():
    with pytest.raises(Exception, match="needs labeller_model"):
        AlgorithmConfig(name="online_dpo", pairing="all", labeller="judge")
    with pytest.raises(Exception, match="pairing: all"):
        AlgorithmConfig(name="online_dpo", labeller="judge", labeller_model="tiny-random")
