"""Ray rollout workers (local Ray, CPU): the same trajectories as in process, a killed worker loses nothing,
and the training loop runs on them.

What "the same" means (see `rollout/ray_workers.py`): a worker runs a unit of groups as one batched rollout
from the unit's own seed; the in-process equivalent runs the same units one after the other with `run_unit`.
Those agree exactly. Against the one-batch runner of `workers: 0` they agree for greedy decoding (the
random numbers of a sampled batch depend on what else is in it).
"""

from __future__ import annotations

import gc
import math
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")

from longhorizon.errors import ConfigError  # noqa: E402
from longhorizon.context import make_strategy  # noqa: E402
from longhorizon.models import SamplingParams, load_model, make_sampler  # noqa: E402
from longhorizon.rollout import EpisodeSpec, ModelPolicy, run_episodes  # noqa: E402
from longhorizon.rollout.ray_workers import RolloutPool, WorkerSpec, make_units, run_unit, unit_seed  # noqa: E402
from longhorizon.train import load_config, train  # noqa: E402
from longhorizon.train.checkpoint import latest_checkpoint, load_weights  # noqa: E402
from longhorizon.train.config import RolloutSettings  # noqa: E402
from longhorizon.train.loop import task_specs  # noqa: E402
from longhorizon.train.metrics import read_records  # noqa: E402
from longhorizon.types import load_trajectories  # noqa: E402

ENV = "longhorizon/Execution-v0"
PARAMS = SamplingParams(temperature=1.0, max_new_tokens=6, seed=3)


def specs(n_tasks: int, group_size: int, horizon: int) -> list[EpisodeSpec]:
    return [EpisodeSpec(ENV, seed=100 + k, env_kwargs={"horizon": horizon}, group_id=k)
            for k in range(n_tasks) for _ in range(group_size)]


def in_process(all_specs: list[EpisodeSpec], params: SamplingParams = PARAMS, weights: dict | None = None) -> list:
    """What the workers should return: each unit run in this process, then put back in spec order."""
    torch.set_num_threads(1)
    tiny = load_model("tiny-random")
    if weights is not None:
        tiny.model.load_state_dict(weights, strict=False)  # a checkpoint holds the parameters (tied ones once)
    sampler = make_sampler("transformers", "tiny-random", params, loaded=tiny)
    out = [None] * len(all_specs)
    for unit in make_units(all_specs, params.seed):
        for position, trajectory in zip(unit.positions, run_unit(unit, sampler, make_strategy("full"))):
            out[position] = trajectory
    return out


def same(a, b) -> bool:
    """Equal trajectories: every turn's tokens, log-probs, text and reward, and how the episode ended."""
    fields = ("observation", "action", "reward", "prompt_ids", "action_ids", "action_logprobs")
    return (a.seed, a.group_id, a.terminated, a.truncated, a.success) == (b.seed, b.group_id, b.terminated,
                                                                         b.truncated, b.success) and \
        [[getattr(t, f) for f in fields] for t in a.turns] == [[getattr(t, f) for f in fields] for t in b.turns]


@pytest.fixture(scope="module")
def pool(local_ray):
    pool = RolloutPool(WorkerSpec(model="tiny-random", params=PARAMS), RolloutSettings(workers=2))
    pool.sync(load_model("tiny-random").model)
    yield pool
    pool.close()


# ------------------------------------------------------------------ units and seeds (no Ray)


def test_units_are_whole_groups_with_seeds_of_their_own():
    step = specs(3, 2, 2)
    units = make_units(step, seed=7, groups_per_unit=2)
    assert [u.positions for u in units] == [(0, 1, 2, 3), (4, 5)]
    assert [u.seed for u in units] == [unit_seed(7, (0, 1)), unit_seed(7, (2,))]
    assert len({u.seed for u in make_units(step, seed=7)}) == 3
    assert unit_seed(7, (2,)) == unit_seed(7, (2,)) != unit_seed(8, (2,))


def test_greedy_units_match_the_one_batch_runner():
    """Greedy: running unit by unit (as the workers do) equals today's one batch up to float rounding."""
    torch.set_num_threads(1)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=6, seed=3)
    step = specs(3, 2, 3)
    tiny = load_model("tiny-random")
    batch = run_episodes(step, ModelPolicy(make_sampler("transformers", "tiny-random", greedy, loaded=tiny),
                                           make_strategy("full")))
    units = in_process(step, greedy)
    for a, b in zip(batch, units):
        assert [t.action_ids for t in a.turns] == [t.action_ids for t in b.turns]
        for ta, tb in zip(a.turns, b.turns):
            assert ta.action_logprobs == pytest.approx(tb.action_logprobs, abs=1e-5)


# ------------------------------------------------------------------ on Ray


def test_two_workers_give_the_in_process_trajectories(pool):
    step = specs(4, 2, 3)
    got = pool.collect(step)
    want = in_process(step)
    assert all(same(a, b) for a, b in zip(got, want)) and len(got) == len(want) == 8
    assert {t.metadata["policy_version"] for t in got} == {pool.version}
    assert any(t.action_logprobs for t in got[0].turns)  # behaviour log-probs came back


def test_a_killed_worker_loses_nothing_and_the_step_completes(pool):
    step = specs(6, 2, 12)  # long units: the kill lands while a unit is in flight
    before = dict(pool.stats)
    victim = pool.actors[0]
    start = ray.get(victim.progress.remote())
    result: dict = {}
    collector = threading.Thread(target=lambda: result.update(trajectories=pool.collect(step)))
    collector.start()
    while ray.get(victim.progress.remote())["ticks"] == start["ticks"]:
        time.sleep(0.01)
    os.kill(start["pid"], signal.SIGKILL)  # the worker process dies mid-episode
    collector.join(timeout=600)
    assert not collector.is_alive()
    assert pool.stats["units_rerun"] == before["units_rerun"] + 1
    assert pool.stats["worker_restarts"] == before["worker_restarts"] + 1
    got, want = result["trajectories"], in_process(step)
    assert len(got) == 12 and all(same(a, b) for a, b in zip(got, want))  # whole, once, as if nothing happened
    assert {t.metadata["policy_version"] for t in got} == {pool.version}  # the replacement got the weights


def test_training_on_two_workers(tmp_path: Path, local_ray):
    """Two steps on the workers: each step's episodes are exactly what the in-process units sample with the
    weights the trainer had then (the initial ones, then step 1's checkpoint), and the parameters move."""
    torch.set_num_threads(1)
    sets = ["model=tiny-random", "env_id=longhorizon/Apps-v0", "env_kwargs={max_steps: 1}", "max_new_tokens=5",
            "steps=2", "tasks_per_step=4", "algorithm.group_size=2", "algorithm.entropy.method=epo",
            "micro_batch_size=4", "eval.episodes=0", "torch_threads=1", f"run_dir={tmp_path / 'run'}",
            "checkpoint_every=1", "keep_checkpoints=2", "optim.lr=0.01", "rollout.workers=2"]
    cfg = load_config(None, sets)  # every reward is 0 for tiny-random here: EPO's entropy bonus moves the weights
    result = train(cfg)
    records = [r for r in read_records(result.run_dir) if "charts/reward_mean" in r]
    assert len(records) == 2 and all(math.isfinite(v) for r in records for v in r.values())
    assert records[-1]["rollout/worker_restarts"] == 0.0
    params = SamplingParams(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    start = load_model("tiny-random").model.state_dict()
    after_step_1 = load_weights(result.run_dir / "checkpoints" / "step_000001")["policy"]
    assert any(not torch.equal(after_step_1[k], start[k]) for k in after_step_1)  # parameters moved
    for step, weights in ((1, start), (2, after_step_1)):
        got = load_trajectories(result.run_dir / "trajectories" / f"step_{step:06d}.jsonl")
        want = in_process(task_specs(cfg, (step - 1) * cfg.tasks_per_step), params, weights)
        assert len(got) == 8 and all(same(a, b) for a, b in zip(got, want))
        assert {t.metadata["policy_version"] for t in got} == {step}  # sampled with the weights after step - 1


class Crash(Exception):
    pass


def test_two_steps_resume_two_more_equals_four_straight_on_workers(tmp_path: Path, local_ray):
    """Unit seeds come from group ids and the workers get the checkpoint's weights: a resume is exact."""
    torch.set_num_threads(1)

    def cfg(name: str):
        return load_config(None, [
            "model=tiny-random", "env_id=longhorizon/Apps-v0", "env_kwargs={max_steps: 1}", "max_new_tokens=4",
            "steps=4", "tasks_per_step=2", "algorithm.group_size=2", "algorithm.name=reinforce++", "algorithm.entropy.method=epo",
            "micro_batch_size=4", "eval.episodes=0", "torch_threads=1", f"run_dir={tmp_path / name}",
            "checkpoint_every=2", "save_final_model=false", "optim.lr=0.01", "rollout.workers=2"])

    def crash_at_step_3(step, metrics):
        if step == 3:
            raise Crash

    straight = train(cfg("straight"))
    with pytest.raises(Crash):
        train(cfg("broken"), on_log=crash_at_step_3)
    gc.collect()  # the crashed run's worker handles go, and Ray stops those actors
    resumed = train(cfg("broken"), resume=True)
    a, b = (load_weights(latest_checkpoint(r.run_dir))["policy"] for r in (straight, resumed))
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0)
    for step in (3, 4):
        x, y = (load_trajectories(r.run_dir / "trajectories" / f"step_{step:06d}.jsonl") for r in (straight, resumed))
        assert all(same(p, q) for p, q in zip(x, y)) and len(x) == len(y) == 4


def test_workers_need_transformers_and_a_stateless_context():
    with pytest.raises(ConfigError, match="rollout.workers runs transformers"):
        load_config(None, ["rollout.workers=2", "sampler=vllm"])
    with pytest.raises(ConfigError, match="rollout.workers needs a context"):
        load_config(None, ["rollout.workers=2", "context=memory"])
    with pytest.raises(ConfigError, match="workers"):
        load_config(None, ["rollout.workers=-1"])
