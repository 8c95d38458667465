"""Losses of models that learn from preferences: pure functions of two scores per pair, picked by name.

    loss, metrics = REWARD_MODEL_LOSSES["reward_model"](r_chosen, r_rejected, margin=None, center_coef=0.0)

Both take the two scalar outputs of a pair, `first` and `second`, each `(B,)`, with the
labelled winner (chosen) in the first role, plus an optional per-pair `margin` `(B,)`
and `center_coef`, and return `(loss, metrics)`: `loss` the mean over pairs, metrics floats:

- `pref_accuracy`: fraction of pairs whose log-odds of "chosen wins" are > 0 (TRL's `accuracy`);
- `reward_margin`: mean log-odds of "chosen wins" (TRL's `margin` for a reward model);
- `chosen_reward` / `rejected_reward` (reward model) or `order_bias` (preference model).

`reward_model` (Bradley-Terry): `first` / `second` are r(x, y_chosen) and r(x, y_rejected),
and P(chosen wins) = sigmoid(r_chosen - r_rejected).

`preference_model` (pairwise): `first` / `second` are f(x, chosen, rejected) and
f(x, rejected, chosen), the model's logit that the continuation shown first wins, read in
both orders, and P(chosen wins) = sigmoid((f(x, c, r) - f(x, r, c)) / 2)
(`feedback/reward_model.py` says why).

`pair_log_odds` maps each kind's two outputs to those log-odds; the losses are
-log sigmoid(log-odds - margin), so both are binary cross-entropy on the label.
`center_coef` adds center_coef * mean(s^2) with s = first + second: for a reward
model the sum of the two rewards (Eisenstein et al. 2023, TRL's
`center_rewards_coefficient`), which pins the reward's free offset near 0; for a
preference model the part of f that does not flip sign with the order of the two
continuations (its position bias), which the averaged log-odds ignore.
"""

from __future__ import annotations

from typing import Callable

import torch.nn.functional as F
from torch import Tensor

Metrics = dict[str, float]


def bradley_terry_log_odds(r_chosen: Tensor, r_rejected: Tensor) -> Tensor:
    """(B,) log-odds that chosen wins under Bradley-Terry: r_chosen - r_rejected."""
    return r_chosen - r_rejected


def pairwise_log_odds(f_chosen_first: Tensor, f_rejected_first: Tensor) -> Tensor:
    """(B,) log-odds that chosen wins, averaged over both orders: (f(x,c,r) - f(x,r,c)) / 2, so P(a > b) = 1 - P(b > a)."""
    return (f_chosen_first - f_rejected_first) / 2


def bradley_terry_loss(r_chosen: Tensor, r_rejected: Tensor, margin: Tensor | None = None,
                       center_coef: float = 0.0) -> tuple[Tensor, Metrics]:
    """-log sigmoid(r_c - r_r - margin), mean over pairs, + center_coef * mean((r_c + r_r)^2); inputs (B,)."""
    log_odds = bradley_terry_log_odds(r_chosen, r_rejected)  # (B,)
    # Bradley & Terry (1952); Ouyang et al. 2022 eq. 1; the margin: Touvron et al. 2023 (Llama 2) eq. 2;
    # as TRL's RewardTrainer.compute_loss
    loss = -F.logsigmoid(log_odds - (margin if margin is not None else 0.0)).mean()
    if center_coef:
        loss = loss + center_coef * ((r_chosen + r_rejected) ** 2).mean()  # Eisenstein et al. 2023 (TRL)
    return loss, {**_odds_metrics(log_odds), "chosen_reward": r_chosen.mean().item(),
                  "rejected_reward": r_rejected.mean().item()}


def pairwise_preference_loss(f_chosen_first: Tensor, f_rejected_first: Tensor, margin: Tensor | None = None,
                             center_coef: float = 0.0) -> tuple[Tensor, Metrics]:
    """Binary cross-entropy of P(chosen wins) = sigmoid((f(x,c,r) - f(x,r,c)) / 2) against the label 1,
    i.e. the mean BCE over both orders in logit space; + center_coef * mean((f(x,c,r) + f(x,r,c))^2); inputs (B,)."""
    log_odds = pairwise_log_odds(f_chosen_first, f_rejected_first)  # (B,)
    loss = -F.logsigmoid(log_odds - (margin if margin is not None else 0.0)).mean()
    bias = f_chosen_first + f_rejected_first  # (B,) the order-symmetric part: 0 for a position-consistent model
    if center_coef:
        loss = loss + center_coef * (bias ** 2).mean()
    return loss, {**_odds_metrics(log_odds), "order_bias": (bias / 2).abs().mean().item()}


def _odds_metrics(log_odds: Tensor) -> Metrics:
    return {"pref_accuracy": (log_odds > 0).float().mean().item(), "reward_margin": log_odds.mean().item()}


REWARD_MODEL_LOSSES: dict[str, Callable[..., tuple[Tensor, Metrics]]] = {
    "reward_model": bradley_terry_loss,
    "preference_model": pairwise_preference_loss,
}

PAIR_LOG_ODDS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "reward_model": bradley_terry_log_odds,
    "preference_model": pairwise_log_odds,
}
