"""How well a model's pair probabilities match the labels: accuracy, calibration (ECE) and log-loss.

    metrics = pair_metrics(log_odds)      # log_odds (N,): the model's log-odds that each pair's labelled winner wins

Every function takes the log-odds z of "the labelled winner wins", so p = sigmoid(z)
(a reward model's r_chosen - r_rejected; a preference model's averaged log-odds).

Choices:
1. Accuracy counts z > 0 as right and z == 0 (no preference) as half right, so a model that
   scores every pair equal gets 0.5, not 0 (TRL counts a tie as wrong in training and drops
   it in evaluation; DPO's `pref_accuracy` here counts it wrong).
2. Expected calibration error (Naeini et al. 2015; Guo et al. 2017) over `bins` equal-width
   bins of [0, 1]: sum over bins of (n_b / N) * |mean outcome - mean p|. A pair is a binary
   event only once an order is fixed, and with the winner always first every outcome is 1,
   so each pair enters in both orders: (p, 1) and (1 - p, 0). The result does not depend on
   how the pairs' sides were stored, and a model that always says 0.5 has ECE 0.
3. Log-loss is the mean of -log p = softplus(-z), computed from z so that it stays finite for
   confident models (it is the mean binary cross-entropy, both orders alike).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def pair_accuracy(log_odds: Tensor) -> float:
    """Fraction of pairs with z > 0, z == 0 counting one half."""
    return ((log_odds > 0).double() + 0.5 * (log_odds == 0).double()).mean().item()


def expected_calibration_error(log_odds: Tensor, bins: int = 10) -> float:
    """ECE over `bins` equal-width probability bins, each pair entered in both orders (module docstring)."""
    p = torch.sigmoid(log_odds.double())
    probs = torch.cat([p, 1 - p])  # (2N,)
    outcomes = torch.cat([torch.ones_like(p), torch.zeros_like(p)])  # (2N,)
    index = (probs * bins).floor().clamp(max=bins - 1).long()  # bin b holds [b/bins, (b+1)/bins); p = 1 in the last
    ece = 0.0
    for b in index.unique().tolist():
        members = index == b
        ece += members.double().mean().item() * abs(outcomes[members].mean().item() - probs[members].mean().item())
    return ece


def log_loss(log_odds: Tensor) -> float:
    """Mean -log sigmoid(z): the binary cross-entropy of the labels."""
    return F.softplus(-log_odds.double()).mean().item()


def pair_metrics(log_odds: Tensor, bins: int = 10) -> dict[str, float]:
    """pair_accuracy, pair_ece, pair_log_loss, pair_margin (mean z) and pairs (N) of N pairs' log-odds."""
    return {"pair_accuracy": pair_accuracy(log_odds), "pair_ece": expected_calibration_error(log_odds, bins),
            "pair_log_loss": log_loss(log_odds), "pair_margin": log_odds.double().mean().item(),
            "pairs": float(len(log_odds))}
