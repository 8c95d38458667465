"""Wiring of the long-horizon credit and exploration methods into the loop, and their running state.

The maths is in `algorithms/entropy.py` and `algorithms/turn_credit.py`;
this module only feeds them from a step's batch. `ENTROPY_METHODS` maps
`algorithm.entropy.method` to where the method acts:

- "empg": modulates the advantages after the credit rule (any algorithm),
  from the rollout policy's mean token entropy per turn;
- "epo": adds the entropy regulariser to the loss, its smoothing band from
  the historical mean entropy of each turn (`CreditState.epo_*`);
- "siren": adds the anchored selective top-p entropy penalty, the anchor set
  from the first step's rollout batch;
- "steer": reweights the policy loss's tokens.

`CreditState` holds everything that runs across steps (EPO's history,
SIREN's anchor, the ARPO replay buffer and task filter) and is saved in
every checkpoint (`Resumable.credit`), so a resumed run continues exactly.

Choices:
1. The rollout policy's entropies (EMPG's steps, EPO's history, SIREN's
   anchor) come from one extra no-grad forward pass after the rollout, with
   the weights that sampled (`rollout_entropy`), since samplers record
   log-probs but not entropies.
2. EPO's history at turn k is the mean over steps of the step's mean token
   entropy at turn k, this step included (updated before the update).
3. SIREN's penalty is computed per micro-batch, as in the official code
   (verl computes each micro-batch's loss and divides by the accumulation);
   each micro-batch's penalty is weighted by its share of the minibatch's
   token weight. It is the one term that depends on `micro_batch_size`;
   STEER's max |Omega| is also per micro-batch (its code's batch).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

from longhorizon.algorithms import (
    empg_advantages,
    empg_step_weights,
    entropy_from_logits,
    epo_band_penalty,
    epo_loss,
    epo_phase_weight,
    gate_open,
    gated_reward_accumulation,
    mix_segment_rewards,
    peak_entropy_mask,
    selected_entropy,
    siren_loss,
    steer_weights,
    topp_entropy,
)
from longhorizon.algorithms.advantages import component_advantages
from longhorizon.rollout import EpisodeSpec
from longhorizon.train import curriculum, segment_rewards
from longhorizon.train.batch import Batch, by_prompt, microbatches
from longhorizon.train.credit import Credit, to_tokens, turn_sums
from longhorizon.train.credit_config import EntropyConfig, RewardsConfig
from longhorizon.train.model import autocast, token_forward
from longhorizon.train.replay import ReplayBuffer, TaskFilter, select_tasks
from longhorizon.types import Trajectory

Metrics = dict[str, float]


# ------------------------------------------------------------------ running state


@dataclass
class CreditState:
    """Across-step state of the credit and exploration methods; `state_dict` goes in every checkpoint."""

    step: int = 0  # training steps done (EPO's phase weight)
    epo_sum: dict[int, float] = field(default_factory=dict)  # turn -> sum over steps of the step's mean entropy
    epo_count: dict[int, int] = field(default_factory=dict)  # turn -> steps that had the turn
    siren_anchor: float | None = None
    replay: ReplayBuffer | None = None
    tasks: TaskFilter | None = None
    curriculum: dict[str, Any] | None = None  # train/curriculum.py: the knob's value and the success window

    @classmethod
    def from_config(cls, cfg: Any) -> "CreditState":
        """From a `TrainConfig`: the replay buffer and task filter only where configured."""
        r = cfg.algorithm.replay
        replay = ReplayBuffer(r.buffer_size, r.success_threshold, r.fail_std, r.fail_mean, seed=cfg.seed) if r.enabled else None
        tasks = (TaskFilter(r.filter_threshold, r.filter_min_attempts, r.success_threshold)
                 if r.filter_threshold is not None else None)
        return cls(replay=replay, tasks=tasks, curriculum=curriculum.start_state(cfg))

    def epo_history(self, token_turn: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T) historical mean entropy of each token's turn, and whether that turn has any history."""
        turns = int(token_turn.max().item()) + 1 if token_turn.numel() else 0
        device = token_turn.device
        mean = torch.tensor([self.epo_sum.get(k, 0.0) / max(self.epo_count.get(k, 0), 1) for k in range(turns)] or [0.0],
                            device=device)
        has = torch.tensor([self.epo_count.get(k, 0) > 0 for k in range(turns)] or [False], device=device)
        index = token_turn.clamp(min=0)
        return mean[index], has[index] & (token_turn >= 0)

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "epo_sum": dict(self.epo_sum), "epo_count": dict(self.epo_count),
                "siren_anchor": self.siren_anchor,
                "replay": self.replay.state_dict() if self.replay else None,
                "tasks": self.tasks.state_dict() if self.tasks else None,
                "curriculum": None if self.curriculum is None else {**self.curriculum, "window": list(self.curriculum["window"])}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return  # a checkpoint from before this state was saved
        self.step, self.siren_anchor = int(state["step"]), state["siren_anchor"]
        self.epo_sum, self.epo_count = dict(state["epo_sum"]), dict(state["epo_count"])
        for part in ("replay", "tasks"):
            if getattr(self, part) is not None and state.get(part) is not None:
                getattr(self, part).load_state_dict(state[part])
        if self.curriculum is not None and state.get("curriculum") is not None:
            self.curriculum = {**state["curriculum"], "window": list(state["curriculum"]["window"])}


# ------------------------------------------------------------------ tasks, replay, rewards


def task_env_kwargs(cfg: Any, task: int) -> dict[str, Any]:
    """Task `task`'s knobs: env_kwargs, with each `task_mix` knob at its values[task % len(values)]."""
    return {**cfg.env_kwargs, **{key: values[task % len(values)] for key, values in cfg.task_mix.items()}}


def next_tasks(cfg: Any, position: int, state: CreditState) -> tuple[list[EpisodeSpec], int]:
    """The step's episode specs and the next data position: task k uses env seed seed + (k mod task_pool), group k."""
    pool = cfg.algorithm.replay.task_pool
    keep = (lambda task: state.tasks.keep((cfg.env_id, cfg.seed + task))) if state.tasks else (lambda task: True)
    ks, position = select_tasks(position, cfg.tasks_per_step, pool, keep)
    specs = [EpisodeSpec(cfg.env_id, seed=cfg.seed + (k % pool if pool else k), env_kwargs=task_env_kwargs(cfg, k),
                         group_id=k, wrappers=cfg.wrappers) for k in ks for _ in range(cfg.algorithm.group_size)]
    return curriculum.apply(cfg, state.curriculum, state.step, specs), position  # knob value, hints


def replay(trajectories: list[Trajectory], state: CreditState) -> tuple[list[Trajectory], Metrics]:
    """ARPO: record tasks for the filter, then replay stored successes into all-negative groups."""
    metrics: Metrics = {}
    if state.tasks is not None:
        state.tasks.record(trajectories)
        metrics["replay/filtered_tasks"] = float(state.tasks.filtered_tasks())
    if state.replay is not None:
        trajectories, m = state.replay.apply(trajectories)
        metrics.update({f"replay/{k}": v for k, v in m.items()})
    return trajectories, metrics


def shaped_turn_rewards(trajectories: list[Trajectory], batch: Batch, cfg: RewardsConfig,
                        decode: Callable[[list[int]], str] | None = None,
                        sources: Any = None) -> tuple[Tensor, Tensor | None, Metrics]:
    """Per-turn rewards (N, K) from the named components, gated (G-RA) then mixed; the env's when none are set.

    Also the span components' weighted, gated scores on their spans' last tokens `(B, T)` (None without span
    components); the turn rewards already hold their per-turn sums. `sources` (`train/reward_sources.py`)
    scores the judge components.
    """
    if not cfg.components:
        return batch.turn_rewards, None, {}
    names = [c.name for c in cfg.components]
    weights = [c.weight for c in cfg.components]
    comps = segment_rewards.components(trajectories, names, batch.turn_rewards.shape[1], decode, sources)  # (C, N, K)
    metrics: Metrics = sources.metrics() if sources is not None else {}
    open_ = torch.ones(comps.shape[:2], dtype=torch.bool)  # (C, N)
    if cfg.gates is not None:
        open_ = gate_open(comps, batch.turn_mask, cfg.gates)
        comps, gate_metrics = gated_reward_accumulation(comps, batch.turn_mask, cfg.gates)  # G-RA, arXiv 2508.10548
        metrics.update(gate_metrics)
    rewards, mix_metrics = mix_segment_rewards(comps, weights, batch.turn_mask, names)
    if cfg.normalize == "group":  # LongWriter-Zero's advantage averaging (methods-2.md §4c); the logs stay raw
        comps, norm_metrics = component_advantages(comps, batch.turn_mask, batch.group_ids)
        rewards = mix_segment_rewards(comps, weights, batch.turn_mask, names)[0]
        metrics.update(norm_metrics)
    spans = span_token_rewards(trajectories, batch, names, weights, open_, decode)
    return rewards, spans, {f"rewards/{k}": v for k, v in {**metrics, **mix_metrics}.items()}


def span_token_rewards(trajectories: list[Trajectory], batch: Batch, names: list[str], weights: list[float],
                       open_: Tensor, decode: Callable[[list[int]], str] | None) -> Tensor | None:
    """(B, T): weight * score of every span on the span's last sampled token, where its G-RA gate is open."""
    span = [c for c, name in enumerate(names) if name in segment_rewards.SPAN_REWARDS]
    if not span:
        return None
    placed = {(n, c): segment_rewards.span_token_scores(traj, names[c], decode)  # per turn {token index: score}
              for n, traj in enumerate(trajectories) for c in span if open_[c, n]}
    out = torch.zeros_like(batch.old_logprobs)
    for r in range(batch.rows):
        n = int(batch.row_episode[r])
        turns = batch.token_turn[r]
        for k in turns[turns >= 0].unique().tolist():
            positions = (turns == k).nonzero().squeeze(1)  # the turn's sampled tokens, in order
            for c in span:
                for j, value in (placed[(n, c)][k] if (n, c) in placed else {}).items():
                    out[r, positions[min(j, len(positions) - 1)]] += weights[c] * value
    return out


# ------------------------------------------------------------------ entropy methods


def entropy_fn(kind: str | None, cfg: EntropyConfig) -> Callable[[Tensor], Tensor] | None:
    """The per-token entropy a method uses, as a function of the tempered logits (B, P, V) → (B, P)."""
    kinds = {"full": entropy_from_logits,
             "topp": functools.partial(topp_entropy, p=cfg.siren_top_p, top_k=cfg.siren_top_k), None: None}
    return kinds[kind]


@torch.no_grad()
def rollout_entropy(models: Any, batch: Batch, cfg: Any) -> Tensor | None:
    """(B, T) the rollout policy's entropy of each sampled token (the kind the method needs), or None."""
    fn = entropy_fn(ENTROPY_METHODS[cfg.algorithm.entropy.method].rollout_entropy, cfg.algorithm.entropy)
    if fn is None:
        return None
    out = torch.zeros_like(batch.old_logprobs)
    device = next(models.model.parameters()).device
    order = torch.arange(batch.rows)
    if cfg.share_prefix:
        order = order[by_prompt(batch, order)]
    for rows in microbatches(order, cfg.micro_batch_size):
        mb = batch.select(rows)
        with autocast(cfg):
            h = token_forward(models.model, mb.input_ids.to(device), mb.attention_mask.to(device),
                              mb.loss_mask.to(device), cfg.temperature, entropy_fn=fn,
                              share_prefix=cfg.share_prefix).reg_entropy
        out[rows, : mb.input_ids.shape[1]] = h.float().cpu()
    return out


def turn_entropy(entropy: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
    """Mean token entropy of each turn (N, K) and the mask of turns with sampled tokens."""
    tokens = turn_sums(batch.loss_mask, batch)
    return turn_sums(entropy * batch.loss_mask, batch) / tokens.clamp(min=1), (tokens > 0).float()


def observe(state: CreditState, batch: Batch, entropy: Tensor | None, cfg: EntropyConfig) -> Metrics:
    """Before the update: EPO's per-turn history gains this step; SIREN's anchor is set on the first step."""
    if entropy is None:
        return {}
    valid = batch.loss_mask.bool()
    metrics = {"entropy/rollout_mean": entropy[valid].mean().item() if valid.any() else 0.0}
    ENTROPY_METHODS[cfg.method].observe(state, batch, entropy, cfg)
    if state.siren_anchor is not None:
        metrics["entropy/siren_anchor"] = state.siren_anchor
    return metrics


def _epo_observe(state: CreditState, batch: Batch, entropy: Tensor, cfg: EntropyConfig) -> None:
    means, has = turn_entropy(entropy, batch)  # (N, K)
    counts = has.sum(0)
    for k in counts.nonzero().squeeze(1).tolist():
        state.epo_sum[k] = state.epo_sum.get(k, 0.0) + (means[:, k] * has[:, k]).sum().item() / counts[k].item()
        state.epo_count[k] = state.epo_count.get(k, 0) + 1


def _siren_observe(state: CreditState, batch: Batch, entropy: Tensor, cfg: EntropyConfig) -> None:
    if state.siren_anchor is None:  # SIREN: the anchor is the step-1 batch's selected entropy, then fixed
        selected, _ = peak_entropy_mask(entropy, batch.loss_mask, cfg.siren_quantile)
        state.siren_anchor = selected_entropy(entropy, selected).item()


def modulate_credit(credit: Credit, batch: Batch, entropy: Tensor | None, cfg: EntropyConfig) -> Credit:
    """The credit after the method's advantage modulation (EMPG); unchanged for the other methods."""
    modulate = ENTROPY_METHODS[cfg.method].modulate
    return credit if modulate is None or entropy is None else modulate(credit, batch, entropy, cfg)


def _empg_modulate(credit: Credit, batch: Batch, entropy: Tensor, cfg: EntropyConfig) -> Credit:
    """EMPG (arXiv 2509.09265): A' = g(H_turn) A + zeta f(H_next turn) on the credit's tokens."""
    h, steps = turn_entropy(entropy, batch)
    (g, f_next), m_steps = empg_step_weights(h, steps * batch.turn_mask, k=cfg.empg_k, k_f=cfg.empg_k_f)
    adv, m_adv = empg_advantages(credit.advantages, to_tokens(g, batch), to_tokens(f_next, batch), credit.loss_mask,
                                 zeta=cfg.empg_zeta, normalize=cfg.empg_normalize)
    metrics = {**credit.metrics, **{f"empg_{k}": v for k, v in {**m_steps, **m_adv}.items()}}
    return dataclasses.replace(credit, advantages=adv, metrics=metrics)


# ------------------------------------------------------------------ in the loss


def loss_terms(out: Any, mb: Batch, weights: Tensor, share: float, cfg: EntropyConfig,
               state: CreditState | None) -> tuple[Tensor, Tensor | None, Metrics]:
    """(policy-loss token weights, extra loss or None, metrics) of one micro-batch for the entropy method."""
    method = ENTROPY_METHODS[cfg.method]
    policy_weights, metrics = weights, {}
    if method.reweight is not None:
        factor, metrics = method.reweight(out, mb, cfg)
        policy_weights = weights * factor.to(weights.dtype)
    if method.loss is None:
        return policy_weights, None, metrics
    extra, m = method.loss(out, mb, weights, share, cfg, state)
    return policy_weights, extra, {**metrics, **m}


def _steer_reweight(out: Any, mb: Batch, cfg: EntropyConfig) -> tuple[Tensor, Metrics]:
    lam, m = steer_weights(out.logprobs.detach(), mb.old_logprobs, out.entropy, mb.advantages, mb.loss_mask,
                           lambda_min=cfg.steer_lambda_min)  # STEER, arXiv 2510.10150
    return lam, {f"steer_{k}": v for k, v in m.items()}


def _epo_loss(out: Any, mb: Batch, weights: Tensor, share: float, cfg: EntropyConfig,
              state: CreditState) -> tuple[Tensor, Metrics]:
    history, has = state.epo_history(mb.token_turn)
    penalty, m_band = epo_band_penalty(out.reg_entropy.detach(), history, has, mb.loss_mask,
                                       r_min=cfg.epo_r_min, r_max=cfg.epo_r_max, beta_out=cfg.epo_out_penalty)
    smooth_on = bool((mb.token_turn >= cfg.epo_smooth_from_turn).any())  # EPO: the micro-batch switch
    phase = epo_phase_weight(state.step, cfg.epo_max_epochs) if cfg.epo_phase_weights else 1.0
    loss, m = epo_loss(out.reg_entropy, penalty.to(weights.device), weights, coef=cfg.epo_coef,
                       smooth_coef=cfg.epo_smooth_coef, phase_weight=phase, smooth_on=smooth_on)
    known = has & mb.loss_mask.bool()
    metrics = {**m_band, **m, "entropy_bonus": m["entropy_bonus"] / share,
               "smooth_penalty": m["smooth_penalty"] / share, "smooth_on": float(smooth_on),
               "history_mean": history[known].mean().item() if known.any() else 0.0}
    return loss, {f"epo_{k}": v for k, v in metrics.items()}


def _siren_loss(out: Any, mb: Batch, weights: Tensor, share: float, cfg: EntropyConfig,
                state: CreditState) -> tuple[Tensor, Metrics]:
    selected, m_sel = peak_entropy_mask(out.reg_entropy.detach(), mb.loss_mask, cfg.siren_quantile)
    loss, m = siren_loss(out.reg_entropy, selected, state.siren_anchor, coef=cfg.siren_coef)  # SIREN, arXiv 2509.25133
    return share * loss, {f"siren_{k}": v for k, v in {**m_sel, **m, "penalty": loss.item()}.items()}


def _no_observe(state: CreditState, batch: Batch, entropy: Tensor, cfg: EntropyConfig) -> None:
    return None


@dataclass(frozen=True)
class EntropyMethod:
    """Where a method acts: the rollout entropy it needs, the entropy (with grad) its loss needs, its hooks."""

    rollout_entropy: str | None = None  # "full" | "topp": scored after the rollout (`rollout_entropy`)
    loss_entropy: str | None = None  # "full" | "topp": computed with grad in the update's forward pass
    observe: Callable[..., None] = _no_observe
    modulate: Callable[..., Credit] | None = None
    reweight: Callable[..., tuple[Tensor, Metrics]] | None = None
    loss: Callable[..., tuple[Tensor, Metrics]] | None = None


ENTROPY_METHODS: dict[str, EntropyMethod] = {
    "none": EntropyMethod(),
    "empg": EntropyMethod(rollout_entropy="full", modulate=_empg_modulate),
    "epo": EntropyMethod(rollout_entropy="full", loss_entropy="full", observe=_epo_observe, loss=_epo_loss),
    "siren": EntropyMethod(rollout_entropy="topp", loss_entropy="topp", observe=_siren_observe, loss=_siren_loss),
    "steer": EntropyMethod(reweight=_steer_reweight),
}
