"""Rewards to per-token advantages, and which loss each algorithm uses: the `ALGORITHMS` registry.

Every estimator and loss is a pure function from `longhorizon.algorithms`;
this module only wires episodes to them.

Multi-turn credit (`algorithm.credit`), per episode and turn (N, K):
- "outcome": the episode return R = sum of turn rewards goes to every turn;
- "per_turn": the discounted return-to-go G_k = r_k + turn_gamma * G_{k+1};
- "eapo": round k of a T-round episode gets turn_gamma^(T-1-k) * R (EAPO,
  arXiv 2511.07327); group methods compare all rounds of a task's episodes
  together (one group per task, not per turn).

Group methods (grpo, rloo, loop) compare samples of the same task. With
outcome credit they compare episode returns and give each episode's
advantage to all its sampled tokens. With per-turn credit they compare the
turn-k returns of the group's episodes that reached turn k.

Token-level methods (reinforce++, ppo) turn the credit into token rewards: at
the last sampled token of turn k they place G_k - G_{k+1}, so that the
undiscounted token return-to-go inside turn k is G_k (for outcome credit
that is R on the final token, as in PPO-max / REINFORCE++), plus the KL
penalty -kl_coef * KL_t on every sampled token (`kl_penalized_rewards`).
Span rewards (`algorithm.rewards` span components, `Batch.span_rewards`) sit on
their spans' last tokens instead of at turn ends, as in Fine-Grained RLHF: the
credit rule runs on the turn rewards without them, and they are added per
token, so token-level discounting (gae_gamma) is what applies to them. Group
methods compare per-turn scores, so for them a span's reward counts in its
turn's reward.

RLOO (Ahmadian et al. 2024, arXiv 2402.14740) folds the KL into the
sequence reward, R - beta * sum_t k1_t. Here the per-token KL of each
turn's sampled tokens (all the rows of the episode, whatever the context
strategy split it into) is summed per turn and subtracted from that turn's
reward before the credit rule: with outcome credit the episode score is
exactly R - beta * sum_t KL_t over the whole episode; with per_turn credit
turn k's return-to-go carries the (discounted) KL of turns >= k, as it
carries their rewards.

Departures from the papers:
1. rloo's KL uses the estimator `kl_estimator` (k1 by default, the paper's);
   with per_turn credit it is discounted per turn like the rewards (the
   paper has one sequence reward, i.e. outcome credit).
2. rloo, reinforce++ and ppo fold the KL into the reward with the behaviour
   log-probs of the sampled tokens (the policy before this step's updates).
3. The KL and every log-prob use softmax(logits / temperature), the
   distribution the rollouts were sampled from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from longhorizon.algorithms import (
    ADVANTAGE_ESTIMATORS,
    broadcast_outcome,
    discounted_turn_returns,
    eapo_round_rewards,
    kl_penalized_rewards,
    kl_penalty,
)
from longhorizon.train.batch import Batch
from longhorizon.train.config import AlgorithmConfig

Metrics = dict[str, float]


@dataclass
class Credit:
    """What the update needs: token advantages, the (possibly filtered) loss mask, value targets."""

    advantages: Tensor  # (B, T)
    loss_mask: Tensor  # (B, T)
    returns: Tensor | None = None  # (B, T), ppo
    metrics: Metrics = field(default_factory=dict)


TURN_CREDITS: dict[str, Callable[[Tensor, Tensor, float], Tensor]] = {
    "outcome": lambda rewards, mask, gamma: broadcast_outcome(rewards.sum(1), mask),
    "per_turn": lambda rewards, mask, gamma: discounted_turn_returns(rewards, mask, gamma),
    "eapo": lambda rewards, mask, gamma: eapo_round_rewards(rewards.sum(1), mask, gamma)[0],  # EAPO, arXiv 2511.07327
}


def turn_credit(batch: Batch, cfg: AlgorithmConfig, turn_rewards: Tensor | None = None) -> Tensor:
    """Credit of each turn (N, K): the episode return, the discounted return-to-go, or EAPO's discounted outcome."""
    rewards = batch.turn_rewards if turn_rewards is None else turn_rewards  # (N, K)
    return TURN_CREDITS[cfg.credit](rewards, batch.turn_mask, cfg.turn_gamma)


# (N, K) comparison group of each (episode, turn) cell, from group_ids (N,) and K: (task, turn) for per_turn;
# the task for eapo, which normalises over all round-samples of a question.
CELL_GROUPS: dict[str, Callable[[Tensor, int], Tensor]] = {
    "per_turn": lambda groups, turns: groups[:, None] * turns + torch.arange(turns),
    "eapo": lambda groups, turns: groups[:, None].expand(-1, turns),
}


def cell_groups(batch: Batch, cfg: AlgorithmConfig) -> Tensor:
    """(N, K) comparison group of each (episode, turn) cell under per-turn credit rules."""
    return CELL_GROUPS[cfg.credit](batch.group_ids, batch.turn_mask.shape[1])


def turn_sums(token_values: Tensor, batch: Batch) -> Tensor:
    """Sum of `token_values (B, T)` over each turn's sampled tokens → (N, K), over all the episode's rows."""
    n, k = batch.turn_rewards.shape
    sampled = batch.token_turn >= 0  # (B, T)
    cell = batch.row_episode[:, None] * k + batch.token_turn.clamp(min=0)  # (B, T) flat (episode, turn)
    sums = token_values.new_zeros(n * k).index_add(0, cell[sampled], token_values[sampled])
    return sums.view(n, k)


def kl_turn_rewards(batch: Batch, cfg: AlgorithmConfig) -> Tensor:
    """Turn rewards (N, K) minus beta * the turn's summed KL_t (behaviour vs reference log-probs).

    RLOO, Ahmadian et al. 2024 (arXiv 2402.14740) §3: R(x, y) - beta * sum_t log(pi(y_t) / pi_ref(y_t)).
    """
    if cfg.kl_coef == 0:
        return batch.turn_rewards
    kl = kl_penalty(batch.old_logprobs, batch.ref_logprobs, batch.loss_mask, estimator=cfg.kl_estimator)  # (B, T)
    return batch.turn_rewards - cfg.kl_coef * turn_sums(kl, batch)


# ------------------------------------------------------------------ turns <-> tokens (only here)


def to_tokens(turn_values: Tensor, batch: Batch) -> Tensor:
    """Per-turn values (N, K) on every sampled token of that turn → (B, T), 0 elsewhere."""
    per_row = turn_values[batch.row_episode]  # (B, K)
    gathered = per_row.gather(1, batch.token_turn.clamp(min=0))
    return torch.where(batch.token_turn >= 0, gathered, torch.zeros_like(gathered))


def turn_ends(batch: Batch) -> Tensor:
    """(B, T) bool: the last sampled token of each turn."""
    turn = batch.token_turn
    next_turn = torch.cat([turn[:, 1:], torch.full_like(turn[:, :1], -1)], dim=1)
    return (turn >= 0) & (next_turn != turn)


# ------------------------------------------------------------------ group methods


GroupEstimate = Callable[[Tensor, Tensor, AlgorithmConfig], tuple[Tensor, Tensor, Metrics]]


def _grpo(scores: Tensor, groups: Tensor, cfg: AlgorithmConfig) -> tuple[Tensor, Tensor, Metrics]:
    adv, metrics = ADVANTAGE_ESTIMATORS["grpo" if cfg.scale_by_std else "dr_grpo"](scores, groups)
    return adv, torch.ones_like(adv, dtype=torch.bool), metrics


def _rloo(scores: Tensor, groups: Tensor, cfg: AlgorithmConfig) -> tuple[Tensor, Tensor, Metrics]:
    adv, metrics = ADVANTAGE_ESTIMATORS["rloo"](scores, groups)
    return adv, torch.ones_like(adv, dtype=torch.bool), metrics


def _loop(scores: Tensor, groups: Tensor, cfg: AlgorithmConfig) -> tuple[Tensor, Tensor, Metrics]:
    (adv, keep), metrics = ADVANTAGE_ESTIMATORS["loop"](
        scores, groups, abs_threshold=cfg.loop_abs_threshold, normalize_std=cfg.loop_normalize_std)
    return adv, keep, metrics


def group_credit(estimate: GroupEstimate, kl_in_reward: bool = False) -> Callable[[Batch, AlgorithmConfig], Credit]:
    """Credit for a group method: estimate over episodes (outcome) or over (group, turn) cells (per_turn).

    With `kl_in_reward` (rloo) the turn rewards lose beta * their summed KL first (`kl_turn_rewards`).
    """

    def credit(batch: Batch, cfg: AlgorithmConfig) -> Credit:
        valid = batch.turn_mask.bool()  # (N, K)
        rewards = kl_turn_rewards(batch, cfg) if kl_in_reward else batch.turn_rewards  # (N, K)
        if cfg.credit == "outcome":
            adv, keep, metrics = estimate(rewards.sum(1), batch.group_ids, cfg)  # (N,)
            adv_turn, keep_turn = broadcast_outcome(adv, valid), broadcast_outcome(keep.float(), valid)
        else:
            cells = cell_groups(batch, cfg)  # (N, K)
            adv, keep, metrics = estimate(turn_credit(batch, cfg, rewards)[valid], cells[valid], cfg)
            adv_turn = torch.zeros_like(batch.turn_rewards).masked_scatter(valid, adv)
            keep_turn = torch.zeros_like(batch.turn_rewards).masked_scatter(valid, keep.float())
        return Credit(advantages=to_tokens(adv_turn, batch),
                      loss_mask=batch.loss_mask * to_tokens(keep_turn, batch), metrics=metrics)

    return credit


# ------------------------------------------------------------------ token-level methods


def token_rewards(batch: Batch, cfg: AlgorithmConfig) -> Tensor:
    """(B, T) rewards: credit increments at turn ends, span rewards at their spans' last tokens, minus the KL
    penalty on every sampled token."""
    spans = batch.span_rewards
    turn_part = batch.turn_rewards if spans is None else batch.turn_rewards - turn_sums(spans, batch)
    credit = turn_credit(batch, cfg, turn_part)  # (N, K)
    increments = credit - torch.cat([credit[:, 1:], credit.new_zeros(credit.shape[0], 1)], dim=1)
    rewards = to_tokens(increments, batch) * turn_ends(batch)
    if spans is not None:  # Fine-Grained RLHF (Wu et al. 2023): a segment's reward on its last token
        rewards = rewards + spans
    if cfg.kl_coef > 0:  # PPO-max (Zheng et al. 2023, arXiv 2307.04964) token-level KL in the reward
        no_outcome = batch.old_logprobs.new_zeros(batch.rows)
        rewards = rewards + kl_penalized_rewards(no_outcome, batch.old_logprobs, batch.ref_logprobs,
                                                 batch.loss_mask, cfg.kl_coef, kl_estimator=cfg.kl_estimator)
    return rewards


def reinforce_pp_credit(batch: Batch, cfg: AlgorithmConfig) -> Credit:
    """REINFORCE++ (Hu 2025, arXiv 2501.03262): return-to-go of token rewards, whitened over the batch."""
    adv, metrics = ADVANTAGE_ESTIMATORS["reinforce++"](token_rewards(batch, cfg), batch.loss_mask)
    return Credit(advantages=adv, loss_mask=batch.loss_mask, metrics=metrics)


def ppo_credit(batch: Batch, cfg: AlgorithmConfig) -> Credit:
    """PPO with GAE(gamma, lambda) over token rewards and the value head's predictions."""
    (adv, returns), metrics = ADVANTAGE_ESTIMATORS["gae"](
        token_rewards(batch, cfg), batch.old_values, batch.loss_mask,
        gamma=cfg.gae_gamma, lam=cfg.gae_lambda, whiten_advantages=cfg.whiten_advantages)
    return Credit(advantages=adv, loss_mask=batch.loss_mask, returns=returns, metrics=metrics)


# ------------------------------------------------------------------ the registry


@dataclass(frozen=True)
class Algorithm:
    """An algorithm = a credit function + a policy loss (a `POLICY_LOSSES` key) + where its KL goes."""

    credit: Callable[[Batch, AlgorithmConfig], Credit]
    policy_loss: str
    kl_in: str  # "loss", "reward" or "none"
    value_head: bool = False

    def needs_ref(self, cfg: AlgorithmConfig) -> bool:
        return self.kl_in != "none" and cfg.kl_coef > 0


ALGORITHMS: dict[str, Algorithm] = {
    "grpo": Algorithm(group_credit(_grpo), "ppo_clip", kl_in="loss"),
    # GRPO's credit over each task's initial episodes and its refinement (train/critique.py); the refinement's
    # tokens take the policy-shaping loss instead of ppo_clip (train/update.py)
    "critique_grpo": Algorithm(group_credit(_grpo), "ppo_clip", kl_in="loss"),
    "rloo": Algorithm(group_credit(_rloo, kl_in_reward=True), "reinforce", kl_in="reward"),
    "loop": Algorithm(group_credit(_loop), "loop", kl_in="none"),
    "reinforce++": Algorithm(reinforce_pp_credit, "ppo_clip", kl_in="reward"),
    "ppo": Algorithm(ppo_credit, "ppo_clip", kl_in="reward", value_head=True),
}
