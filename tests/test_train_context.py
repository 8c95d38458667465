"""Training with every context strategy on the tiny random model: the parameters move, the rows
are the strategy's, and a run killed after step 3 and resumed from step 2 equals an unbroken one
(weights, sampled tokens, losses, and the memory strategy's lesson store).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from longhorizon.context import make_strategy
from longhorizon.train import train
from longhorizon.train.checkpoint import latest_checkpoint
from longhorizon.train.config import AlgorithmConfig, resolved_aggregation
from longhorizon.train.metrics import read_records
from longhorizon.train.model import build_models
from test_train import Crash, _actions, _losses, final_weights, tiny_cfg

STRATEGIES = {
    "full": ("full", {}),
    "window": ("window", {"k": 0}),  # turn 2 shows turn 0, not turn 1
    "window_reminder": ("window", {"k": 0, "reminder_every": 1}),
    "markovian_turns": ("markovian", {"mode": "turns", "carryover": 3}),
    "markovian_chunked": ("markovian", {"mode": "chunked", "chunk": 4, "carryover": 2, "head": 1, "max_chunks": 2}),
    "workspace": ("workspace", {}),
    "memory": ("memory", {"base": "window", "base_options": {"k": 0}, "top_k": 2, "capacity": 5}),
}


def context_sets(name: str) -> list[str]:
    context, options = STRATEGIES[name]
    # workspace pre-fills "<report>", which a random model never closes: the env would see "" every turn
    # and every reward would be 0; without the pre-fill the whole (random) text is the action.
    extra = ["prefill=false"] if name == "workspace" else []
    return [f"context={context}", f"context_options={json.dumps(options)}", "env_kwargs={horizon: 3}", *extra]


def _turns(run_dir: Path, step: int) -> list[list[dict]]:
    lines = (run_dir / "trajectories" / f"step_{step:06d}.jsonl").read_text().splitlines()
    return [json.loads(line)["turns"] for line in lines]


def _check_prompts(name: str, run_dir: Path) -> None:
    """The recorded prompts are the strategy's: full always extends the previous prompt, the others do not."""
    for turns in _turns(run_dir, 1):
        extends = [turns[t]["prompt_ids"][:len(turns[t - 1]["prompt_ids"]) + len(turns[t - 1]["action_ids"])]
                   == turns[t - 1]["prompt_ids"] + turns[t - 1]["action_ids"] for t in range(1, len(turns))]
        assert all(extends) if name == "full" else not all(extends), (name, extends)
        if name == "markovian_chunked":
            assert all("chunk_tokens" in t["info"]["policy"] for t in turns)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_training_with_each_strategy_moves_the_weights_and_resumes_exactly(tmp_path, name):
    sets = ["steps=4", "checkpoint_every=2", "save_trajectories=true", "epochs=1", "num_minibatches=2",
            "eval.episodes=2", "algorithm.name=grpo", *context_sets(name)]
    straight = train(tiny_cfg(tmp_path / "straight", *sets))
    _check_prompts(name, straight.run_dir)

    start = dict(build_models(tiny_cfg(tmp_path / "x", *sets), needs_ref=False, value_head=False).model.named_parameters())
    a = final_weights(straight.run_dir)
    moved = {n: (w - start[n].detach()).abs().max().item() for n, w in a["policy"].items()}
    assert moved and all(m > 0 for m in moved.values()), moved

    broken_cfg = tiny_cfg(tmp_path / "broken", *sets)

    def crash_at_step_3(step, metrics):
        if step == 3:
            raise Crash  # step 3's episodes already wrote their lessons; its checkpoint is not written

    with pytest.raises(Crash):
        train(broken_cfg, on_log=crash_at_step_3)
    assert latest_checkpoint(Path(broken_cfg.run_dir)).name == "step_000002"
    resumed = train(broken_cfg, resume=True)

    b = final_weights(resumed.run_dir)
    for n in a["policy"]:
        torch.testing.assert_close(a["policy"][n], b["policy"][n], atol=1e-6, rtol=0)
    for step in (3, 4):
        assert _actions(straight.run_dir, step) == _actions(resumed.run_dir, step)
        assert _turns(straight.run_dir, step) == _turns(resumed.run_dir, step)  # prompts (and lessons shown) too
    assert _losses(straight.run_dir) == pytest.approx(_losses(resumed.run_dir), abs=1e-6)
    if name == "memory":
        store = (straight.run_dir / "memory.jsonl").read_text()
        assert store and store == (resumed.run_dir / "memory.jsonl").read_text()
        assert len(store.splitlines()) <= 5  # the cap holds
        shown = [t[0]["prompt_ids"] for t in _turns(straight.run_dir, 4)]
        first = [t[0]["prompt_ids"] for t in _turns(straight.run_dir, 1)]
        assert all(len(s) > len(f) for s, f in zip(shown, first))  # later episodes carry lessons


def test_markovian_training_normalises_the_loss_per_trace(tmp_path):
    cfg = tiny_cfg(tmp_path, *context_sets("markovian_chunked"))
    assert cfg.algorithm.aggregation == "trace-length"  # resolved at validation, written to config.yaml
    assert resolved_aggregation(AlgorithmConfig(name=cfg.algorithm.name), "window") == "token-mean"
    explicit = tiny_cfg(tmp_path, *context_sets("markovian_chunked"), "algorithm.aggregation=token-mean")
    assert resolved_aggregation(explicit.algorithm, explicit.context) == "token-mean"
    records = read_records(train(cfg).run_dir)
    steps = [r for r in records if "losses/policy_loss" in r]
    assert len(steps) == 2 and all(torch.isfinite(torch.tensor(r["losses/policy_loss"])) for r in steps)


def test_held_out_eval_writes_no_lessons(tmp_path):
    """Only the training episodes' lessons are stored: the same run without eval has the same store."""
    sets = ["steps=1", *context_sets("memory")]
    with_eval = train(tiny_cfg(tmp_path / "a", "eval.episodes=3", *sets))
    without = train(tiny_cfg(tmp_path / "b", "eval.episodes=0", *sets))
    store_a = (with_eval.run_dir / "memory.jsonl").read_text()
    assert store_a and store_a == (without.run_dir / "memory.jsonl").read_text()
    assert make_strategy("memory").state_dict()["lessons"] == []
