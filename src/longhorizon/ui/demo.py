"""A small runs directory of hand-built episodes (no model): for the tests, the load benchmark and a first look.

    write_demo_runs(Path("runs-demo"));  longhorizon view runs-demo

`eval-demo/` is an eval run: two tasks of a fake Execution env, two episodes
each (a good one and one that slips at turn 1), one episode whose model output
is HTML and script (`HOSTILE`), and one multi-stage tool-calling episode
(search, read, answer). Its token ids come from a small word-level tokenizer
built from the demo's own text and saved in `eval-demo/tokenizer/` (its
config.yaml names that directory as the model), so the viewer decodes them;
prompt ids are the whole history so far (the `full` context strategy). The
log-probs are made up: digits of a turn with reward 0 are unlikely (-2.6),
other tokens drawn from a seeded generator. `train-demo/` is a training run
without a tokenizer (the viewer shows token ids): `trajectories/step_000001.jsonl`,
`step_000002.jsonl` and `eval/step_000002.jsonl`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from longhorizon.store import RunDir
from longhorizon.types import Trajectory, Turn

ENV = "longhorizon/Execution-v0"
HOSTILE = '<script>alert(1)</script><b>bold?</b><img src=x onerror="alert(2)"><a href="javascript:alert(3)">link</a>'


TOKEN_PATTERN = r" ?\w+| ?[^\s\w]|\s+"


def turn(observation: str, action: str, reward: float, **info: object) -> Turn:
    """A turn with made-up token ids (token ids and log-probs are filled by `tokenize`)."""
    return Turn(observation=observation, action=action, reward=reward, prompt_ids=[1, 2, 3],
                action_ids=[100 + k for k in range(len(action.split()))],
                action_logprobs=[-0.1 * (k % 4) for k in range(len(action.split()))], info=dict(info))


def execution_episode(seed: int, slip: bool, group: int = 0) -> Trajectory:
    """Three turns of running sums; with `slip`, turn 1 is wrong and the rest follow from it."""
    values = [3, 5, 2]
    total, turns = 0, []
    for t, v in enumerate(values):
        total += v
        answer = total + (1 if slip and t >= 1 else 0)
        turns.append(turn(f"Step {t + 1}: add {v} (seed {seed}). What is the running total?", f"<answer>{answer}</answer>",
                          0.0 if slip and t >= 1 else 1.0))
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


def history(traj: Trajectory, t: int) -> str:
    """The full-history prompt of turn t, as text."""
    parts = [traj.turns[0].observation]
    for k in range(t):
        parts += [traj.turns[k].action, traj.turns[k + 1].observation]
    return "\n".join(parts)


def build_tokenizer(trajs: list[Trajectory], where: Path) -> Any:
    """A word-level tokenizer over the demo's text, saved where transformers' AutoTokenizer loads it."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    split = pre_tokenizers.Split(Regex(TOKEN_PATTERN), behavior="isolated")
    texts = [history(traj, t) + "\n" + traj.turns[t].action for traj in trajs for t in range(len(traj.turns))]
    words = sorted({piece for text in texts for piece, _ in split.pre_tokenize_str(text)})
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer, tokenizer.decoder = split, decoders.Fuse()
    where.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(where / "tokenizer.json"))
    (where / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]"}))
    return tokenizer


def tokenize(trajs: list[Trajectory], tokenizer: Any, seed: int = 0) -> None:
    """Fill prompt ids (full history), action ids and made-up log-probs (module docstring)."""
    rng = random.Random(seed)
    for traj in trajs:
        for t, turn_ in enumerate(traj.turns):
            turn_.prompt_ids = tokenizer.encode(history(traj, t)).ids
            encoded = tokenizer.encode(turn_.action)
            turn_.action_ids = encoded.ids
            turn_.action_logprobs = [-2.6 if turn_.reward == 0 and piece.strip().isdigit() else -rng.choice([0.01, 0.05, 0.2, 0.5, 0.9])
                                     for piece in encoded.tokens]


def write_demo_runs(root: str | Path) -> Path:
    root = Path(root)
    run = RunDir(root / "eval-demo")
    trajs = [execution_episode(0, False), execution_episode(0, True), execution_episode(1, True),
             execution_episode(1, False), hostile_episode(2), search_episode(3)]
    tokenize(trajs, build_tokenizer(trajs, run.path / "tokenizer"))
    run.write_config({"model": str((run.path / "tokenizer").resolve()), "env_id": ENV})
    run.write_trajectories(trajs)
    train = RunDir(root / "train-demo")
    (train.path / "trajectories").mkdir(exist_ok=True)
    (train.path / "eval").mkdir(exist_ok=True)
    for step in (1, 2):
        train.write_trajectories([execution_episode(10 + step, slip, group=0) for slip in (False, True)],
                                 name=f"trajectories/step_{step:06d}.jsonl")
    train.write_trajectories([execution_episode(1000, True)], name="eval/step_000002.jsonl")
    return root
