"""One step's episodes as padded tensors, and the slices the optimizer walks over.

Rows come from the context strategy's `to_samples`, so training sees exactly
the token ids that were sampled (never re-tokenised text). Each sample's
`token_turns` becomes `token_turn`, the turn each sampled token belongs to;
`train/credit` alone maps per-turn credit (N, K) onto tokens (B, T) with it.

Shapes: N episodes, K = most turns of any episode, B rows (one per episode
for the `full` strategy, more for strategies that split an episode), T the
longest row.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from longhorizon.context import ContextStrategy
from longhorizon.train.prefix import prefix_order
from longhorizon.types import Sample, Trajectory


@dataclass
class Batch:
    """Training rows (B, T), per-turn rewards (N, K), and what credit assignment adds later."""

    input_ids: Tensor  # (B, T) long, right-padded
    attention_mask: Tensor  # (B, T) long
    loss_mask: Tensor  # (B, T) float: 1 where the model sampled the token
    old_logprobs: Tensor  # (B, T) behaviour log-probs, 0 off the mask
    token_turn: Tensor  # (B, T) long: turn index of each sampled token, -1 elsewhere
    row_episode: Tensor  # (B,) long: episode index of each row
    turn_rewards: Tensor  # (N, K) env reward of each turn, 0 on missing turns
    turn_mask: Tensor  # (N, K) float: 1 where the turn exists
    group_ids: Tensor  # (N,) long: episodes of the same task share an id
    ref_logprobs: Tensor | None = None  # (B, T) reference-model log-probs
    old_values: Tensor | None = None  # (B, T) value-head predictions at collection time
    advantages: Tensor | None = None  # (B, T)
    returns: Tensor | None = None  # (B, T) value targets (ppo)
    span_rewards: Tensor | None = None  # (B, T) span rewards on their spans' last tokens (already in turn_rewards' sums)
    prox_logprobs: Tensor | None = None  # (B, T) decoupled PPO: the trainer's log-probs before this step's updates
    shaped: Tensor | None = None  # (B,) bool: Critique-GRPO's refinement rows (policy-shaping loss, no ratio)

    @property
    def rows(self) -> int:
        return self.input_ids.shape[0]

    def select(self, rows: Tensor) -> "Batch":
        """The given rows, trimmed to their longest real sequence (per-episode fields kept whole)."""
        width = int(self.attention_mask[rows].sum(1).max().item()) if len(rows) else 0
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ROW_FIELDS:
            if out[name] is not None:
                out[name] = out[name][rows] if name in PER_ROW else out[name][rows, :width]
        return Batch(**out)


ROW_FIELDS = ("input_ids", "attention_mask", "loss_mask", "old_logprobs", "token_turn", "row_episode",
              "ref_logprobs", "old_values", "advantages", "returns", "span_rewards",
              "prox_logprobs", "shaped")
PER_ROW = ("row_episode", "shaped")  # (B,) fields; the others are (B, T)


def collate(trajectories: list[Trajectory], strategy: ContextStrategy, pad_id: int) -> Batch:
    """Pad every episode's samples into one Batch."""
    rows: list[tuple[int, Sample]] = []
    for i, traj in enumerate(trajectories):
        rows += [(i, s) for s in strategy.to_samples(traj)]
    k_max = max((len(t.turns) for t in trajectories), default=0)
    turn_rewards = torch.zeros(len(trajectories), max(k_max, 1))
    for i, traj in enumerate(trajectories):
        turn_rewards[i, : len(traj.turns)] = torch.tensor([t.reward for t in traj.turns])
    turn_mask = (torch.arange(turn_rewards.shape[1]) < torch.tensor([[len(t.turns)] for t in trajectories])).float()
    refined = [bool(t.metadata.get("refinement")) for t in trajectories]  # Critique-GRPO (train/critique.py)
    shaped = torch.tensor([refined[i] for i, _ in rows], dtype=torch.bool) if any(refined) else None
    return Batch(**_pad_rows(rows, pad_id), turn_rewards=turn_rewards, turn_mask=turn_mask,
                 group_ids=torch.tensor([t.group_id for t in trajectories], dtype=torch.long), shaped=shaped)


def _pad_rows(rows: list[tuple[int, Sample]], pad_id: int) -> dict[str, Tensor]:
    width = max((len(s.input_ids) for _, s in rows), default=1)
    b = len(rows)
    out = {"input_ids": torch.full((b, width), pad_id, dtype=torch.long),
           "attention_mask": torch.zeros(b, width, dtype=torch.long), "loss_mask": torch.zeros(b, width),
           "old_logprobs": torch.zeros(b, width), "token_turn": torch.full((b, width), -1, dtype=torch.long),
           "row_episode": torch.tensor([i for i, _ in rows], dtype=torch.long)}
    for r, (_, s) in enumerate(rows):
        n = len(s.input_ids)
        out["input_ids"][r, :n] = torch.tensor(s.input_ids)
        out["attention_mask"][r, :n] = 1
        out["loss_mask"][r, :n] = torch.tensor(s.loss_mask, dtype=torch.float)
        out["old_logprobs"][r, :n] = torch.tensor(s.old_logprobs)
        out["token_turn"][r, :n] = torch.where(torch.tensor(s.loss_mask) > 0, torch.tensor(s.token_turns), -1)
    return out


def minibatches(rows: Tensor, num_minibatches: int) -> list[Tensor]:
    """A random permutation of `rows` (global torch RNG) split into nearly equal non-empty parts."""
    perm = rows[torch.randperm(len(rows))]
    return [part for part in torch.tensor_split(perm, num_minibatches) if len(part)]


def microbatches(rows: Tensor, size: int) -> list[Tensor]:
    return list(torch.split(rows, size))


def by_prompt(batch: Batch, rows: Tensor) -> Tensor:
    """(len(rows),) a stable permutation of `rows` that puts rows sharing a prompt prefix next to each other.

    `microbatches` then splits in that order, so a group's rows share their prompt inside a micro-batch.
    """
    return prefix_order(batch.input_ids[rows], batch.attention_mask[rows], batch.loss_mask[rows])


def with_credit(batch: Batch, **tensors: Tensor | None) -> Batch:
    return replace(batch, **tensors)
