"""Does a reward model trained on quickstart pairs judge the answers, or only the episode length?

    python benchmarks/reward_model_probe.py runs/rm-quickstart/model [--tasks 64]

On the quickstart task (`stop_on_error: true`) a wrong answer ends the episode, so in every
verifier-labelled pair the winner has more turns than the loser, and a reward model can reach
held-out pair accuracy 1 by counting turns. This probe runs fresh tasks (env seeds from 10000,
never in `prefs build`'s 0..) with the oracle (every answer right) and with `noisy-oracle:0`
(every answer wrong, so the episode stops after turn 1), and reports, over tasks:

- `episode_accuracy`: r(oracle episode) > r(wrong episode) — whole episodes, lengths differ;
- `turn1_accuracy`: r(oracle's first turn) > r(wrong first turn) — the prefix through turn 1's
  action (`score_turns`), one answer each, the same length: only the answer differs.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from longhorizon.feedback.reward_model import load_reward_model
from longhorizon.rollout import EpisodeSpec, run_episodes
from longhorizon.rollout.policies import scripted_policy

ENV = "longhorizon/Execution-v0"
KNOBS = {"horizon": 2, "turn_complexity": 1, "dict_size": 2, "value_range": 1, "stop_on_error": True}  # quickstart


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", help="a reward model directory (RUN_DIR/model)")
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--first-seed", type=int, default=10_000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    specs = [EpisodeSpec(ENV, seed=args.first_seed + i, env_kwargs=KNOBS) for i in range(args.tasks)]
    right, wrong = (run_episodes(specs, scripted_policy(name, 0)) for name in ("oracle", "noisy-oracle:0"))
    rm = load_reward_model(args.model)
    episode = [a > b for a, b in zip(rm.score_episodes(right), rm.score_episodes(wrong))]
    turn1 = [a[0] > b[0] for a, b in zip(rm.score_turns(right), rm.score_turns(wrong))]
    print(json.dumps({"tasks": args.tasks, "episode_accuracy": sum(episode) / len(episode),
                      "turn1_accuracy": sum(turn1) / len(turn1), "oracle_turns": sum(len(t.turns) for t in right) / len(right),
                      "wrong_turns": sum(len(t.turns) for t in wrong) / len(wrong),
                      "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
