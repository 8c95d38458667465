"""Pure advantage estimators and losses, each picked by name from a registry dict.

- `ADVANTAGE_ESTIMATORS`: "grpo", "dr_grpo", "rloo", "loop", "reinforce++", "gae".
- `POLICY_LOSSES`: "ppo_clip", "loop", "reinforce" (shared signature
  `fn(logprobs, old_logprobs, advantages, mask, **kw)`); `policy_shaping_loss` (Critique-GRPO's
  off-policy tokens, no ratio).
- `AGGREGATIONS`: "token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "trace-length",
  each a function of `(mask, trace_ids)` giving the token weights `(B, T)` (`token_weights`).
- `KL_ESTIMATORS`: "k1", "k2", "k3".
- `PREFERENCE_LOSSES`: "dpo", "ipo", "dno", "nash_md", "nash_mp", "inpo", "p3o_v1", "p3o_v2"
  (shared signature `fn(batch: PairLogps, **hyper)`); `PAIRWISE_ADVANTAGES`: "think_rm".
- `REWARD_MODEL_LOSSES` (reward_losses.py): "reward_model" (Bradley-Terry), "preference_model" (pairwise),
  `fn(first, second, margin=None, center_coef=0.0)` on two scores per pair; `PAIR_LOG_ODDS`.
- `ENTROPY_FUNCTIONS` (entropy.py): EMPG, EPO, SIREN, STEER building blocks.
- `TURN_CREDIT_FUNCTIONS` (turn_credit.py): G-RA gating, EAPO discounting, fine-grained reward mixes.
"""

from longhorizon.algorithms.advantages import (
    ADVANTAGE_ESTIMATORS,
    broadcast_outcome,
    discounted_turn_returns,
    gae_advantages,
    grpo_advantages,
    kl_penalized_rewards,
    loop_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
    whiten,
)
from longhorizon.algorithms.entropy import (
    ENTROPY_FUNCTIONS,
    empg_advantages,
    empg_step_weights,
    epo_band_penalty,
    epo_loss,
    epo_phase_weight,
    peak_entropy_mask,
    selected_entropy,
    siren_loss,
    steer_weights,
    topp_entropy,
)
from longhorizon.algorithms.turn_credit import (
    TURN_CREDIT_FUNCTIONS,
    eapo_round_rewards,
    gated_reward_accumulation,
    gate_open,
    mix_segment_rewards,
)
from longhorizon.algorithms.losses import (
    AGGREGATIONS,
    KL_ESTIMATORS,
    POLICY_LOSSES,
    aggregate,
    token_weights,
    weighted_sum,
    entropy_from_logits,
    kl_loss,
    kl_penalty,
    loop_loss,
    behaviour_weights,
    policy_shaping_loss,
    ppo_clip_loss,
    reinforce_loss,
    value_loss,
)
from longhorizon.algorithms.preference import (
    PAIRWISE_ADVANTAGES,
    PREFERENCE_LOSSES,
    PairLogps,
    geometric_mixture_logits,
    large_margin_pairs,
    pairwise_difference_advantages,
    seq_logps,
)
from longhorizon.algorithms.reward_losses import PAIR_LOG_ODDS, REWARD_MODEL_LOSSES

__all__ = [
    "PAIR_LOG_ODDS",
    "REWARD_MODEL_LOSSES",
    "PAIRWISE_ADVANTAGES",
    "PREFERENCE_LOSSES",
    "PairLogps",
    "geometric_mixture_logits",
    "large_margin_pairs",
    "pairwise_difference_advantages",
    "seq_logps",
    "ENTROPY_FUNCTIONS",
    "TURN_CREDIT_FUNCTIONS",
    "eapo_round_rewards",
    "empg_advantages",
    "empg_step_weights",
    "epo_band_penalty",
    "epo_loss",
    "epo_phase_weight",
    "gated_reward_accumulation",
    "gate_open",
    "mix_segment_rewards",
    "peak_entropy_mask",
    "selected_entropy",
    "siren_loss",
    "steer_weights",
    "topp_entropy",
    "ADVANTAGE_ESTIMATORS",
    "AGGREGATIONS",
    "KL_ESTIMATORS",
    "POLICY_LOSSES",
    "aggregate",
    "token_weights",
    "weighted_sum",
    "broadcast_outcome",
    "discounted_turn_returns",
    "entropy_from_logits",
    "gae_advantages",
    "grpo_advantages",
    "kl_loss",
    "kl_penalized_rewards",
    "kl_penalty",
    "loop_advantages",
    "loop_loss",
    "behaviour_weights",
    "policy_shaping_loss",
    "ppo_clip_loss",
    "reinforce_loss",
    "reinforce_pp_advantages",
    "rloo_advantages",
    "value_loss",
    "whiten",
]
