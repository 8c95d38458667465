"""A small runs directory of hand-built episodes (no model): for the tests, the load benchmark and a first look.

    write_demo_runs(Path("runs-demo"));  longhorizon view runs-demo

`eval-demo/` is an eval run: two tasks of a fake Execution env, two episodes
each (a good one and one that slips at turn 1), with token ids and log-probs,
one episode whose model output is HTML and script (`HOSTILE`), and one
multi-stage tool-calling episode (search, read, answer). `train-demo/` is a
training run: `trajectories/step_000001.jsonl`, `step_000002.jsonl` and
`eval/step_000002.jsonl`.
"""

from __future__ import annotations

import json
from pathlib import Path

from longhorizon.store import RunDir
from longhorizon.types import Trajectory, Turn

ENV = "longhorizon/Execution-v0"
HOSTILE = '<script>alert(1)</script><b>bold?</b><img src=x onerror="alert(2)"><a href="javascript:alert(3)">link</a>'


def turn(observation: str, action: str, reward: float, logprobs: list[float] | None = None, **info: object) -> Turn:
    lps = logprobs if logprobs is not None else [-0.05, -0.4, -1.5, -3.0][: max(1, min(4, len(action.split())))]
    return Turn(observation=observation, action=action, reward=reward, prompt_ids=[1, 2, 3],
                action_ids=list(range(100, 100 + len(lps))), action_logprobs=lps, info=dict(info))


def execution_episode(seed: int, slip: bool, group: int = 0) -> Trajectory:
    """Three turns of running sums; with `slip`, turn 1 is wrong and the rest follow from it."""
    values = [3, 5, 2]
    total, turns = 0, []
    for t, v in enumerate(values):
        total += v
        answer = total + (1 if slip and t >= 1 else 0)
        turns.append(turn(f"Step {t + 1}: add {v} (seed {seed}). What is the running total?", f"<answer>{answer}</answer>",
                          0.0 if slip and t >= 1 else 1.0, [-0.1, -2.5 if slip and t == 1 else -0.2, -0.05]))
    final = "Task failed." if slip else "All correct."
    return Trajectory(ENV, seed, turns, group_id=group, horizon=3, terminated=True, success=not slip,
                      metadata={"final_observation": final})


def hostile_episode(seed: int) -> Trajectory:
    """A model output (and an observation) full of markup; a viewer must show it as text."""
    turns = [turn(f"Render this: {HOSTILE}", f"Sure: {HOSTILE} </pre></textarea><!--", 0.0)]
    return Trajectory(ENV, seed, turns, horizon=3, terminated=True, success=False,
                      metadata={"final_observation": f"reply {HOSTILE}"})


def call(name: str, **arguments: object) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def search_episode(seed: int) -> Trajectory:
    """Search, read, answer: a multi-stage episode for NExT-Search stage ratings."""
    turns = [
        turn("Who wrote the report on tidal energy? Use the tools.", call("search", query="tidal energy report author"), 0.0,
             role="tool"),
        turn('[search] {"results": ["doc-7: Tidal energy 2024, by R. Okafor"]}', call("read", doc="doc-7"), 0.0, role="tool"),
        turn("[read] Tidal energy 2024. Author: R. Okafor.", "<answer>R. Okafor</answer>", 1.0),
    ]
    return Trajectory("longhorizon/Search-demo", seed, turns, horizon=3, terminated=True, success=True,
                      metadata={"final_observation": "Correct."})


def write_demo_runs(root: str | Path) -> Path:
    root = Path(root)
    run = RunDir(root / "eval-demo")
    run.write_config({"model": "oracle", "env_id": ENV})
    run.write_trajectories([execution_episode(0, False), execution_episode(0, True), execution_episode(1, True),
                            execution_episode(1, False), hostile_episode(2), search_episode(3)])
    train = RunDir(root / "train-demo")
    (train.path / "trajectories").mkdir(exist_ok=True)
    (train.path / "eval").mkdir(exist_ok=True)
    for step in (1, 2):
        train.write_trajectories([execution_episode(10 + step, slip, group=0) for slip in (False, True)],
                                 name=f"trajectories/step_{step:06d}.jsonl")
    train.write_trajectories([execution_episode(1000, True)], name="eval/step_000002.jsonl")
    return root
