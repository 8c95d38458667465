"""RL training on multi-turn episodes: `train(cfg)` runs the loop in `train/loop.py`.

Algorithms (`ALGORITHMS`, picked by `algorithm.name`): grpo (Dr.GRPO with
`scale_by_std: false`), rloo, loop, reinforce++, ppo. Each is a credit rule
plus a policy loss from `longhorizon.algorithms`. Preference methods train through the same `train(cfg)`:
dpo, ipo offline on `preferences` (`train/offline.py`); online_dpo, dno, inpo, p3o_v1, p3o_v2 on verifier-labelled
pairs of the policy's own episodes (`train/online.py`); reward_model and preference_model (a scalar head trained
on `preferences`, evaluated on held-out pairs) in `train/scorers.py`.
"""

from longhorizon.train.config import TrainConfig, load_config
from longhorizon.train.credit import ALGORITHMS
from longhorizon.train.loop import TrainResult, train

__all__ = ["ALGORITHMS", "TrainConfig", "TrainResult", "load_config", "train"]
