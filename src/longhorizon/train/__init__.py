"""RL training on multi-turn episodes: `train(cfg)` runs the loop in `train/loop.py`.

Algorithms (`ALGORITHMS`, picked by `algorithm.name`): grpo (Dr.GRPO with
`scale_by_std: false`), rloo, loop, reinforce++, ppo. Each is a credit rule
plus a policy loss from `longhorizon.algorithms`.
"""

from longhorizon.train.config import TrainConfig, load_config
from longhorizon.train.credit import ALGORITHMS
from longhorizon.train.loop import TrainResult, train

__all__ = ["ALGORITHMS", "TrainConfig", "TrainResult", "load_config", "train"]
