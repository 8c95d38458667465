"""Drift: how far the policy's next-token distribution moves from a reference model's, turn by turn.

After "Drift No More? Context Equilibria in Multi-Turn LLM Interactions"
(Dongre et al., arXiv 2510.07777; `../shared/reference/methods.md` (f)):
drift at turn t is D_t = KL(q_t || p_t), q the test model's token-level
predictive distribution and p a reference model's, averaged over the tokens
of the turn's response. Both models read the same context: the prompt the
policy saw at that turn and the tokens it sampled.

    d = turn_drift(policy_model, reference_model, trajectory)   # one D_t per turn
    curve = drift_by_turn([turn_drift(...) for each episode])   # mean and SE over episodes, by turn

`longhorizon eval --diagnose drift --reference MODEL` runs the eval's policy
at its longest horizon twice, without and with the reminder intervention
(context option `reminder_every`, `context/reminder.py`), and plots both curves.

Choices (the paper's reference model and temperature are not known to us):
- the reference is any model `load_reference` loads: a registered name, a HF
  directory (an earlier checkpoint, the base model), or `tiny-random:SEED` (a
  tiny model with other initial weights, for tests);
- both distributions are the raw softmax of the logits (temperature 1), over
  the full vocabulary, whatever temperature sampled the episode;
- a turn without sampled tokens (scripted policies, overflow) has no D_t.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from longhorizon.errors import UserError
from longhorizon.types import Trajectory


def token_kl(q_logits: torch.Tensor, p_logits: torch.Tensor) -> torch.Tensor:
    """KL(q || p) per position: (T, V), (T, V) -> (T,). Dongre et al. 2025, D_t = KL(q_t || p_t)."""
    log_q = torch.log_softmax(q_logits.float(), dim=-1)  # (T, V)
    log_p = torch.log_softmax(p_logits.float(), dim=-1)  # (T, V)
    return (log_q.exp() * (log_q - log_p)).sum(-1)  # (T,)


@torch.no_grad()
def action_logits(model: Any, prompt_ids: list[int], action_ids: list[int]) -> torch.Tensor:
    """(T_a, V): the logits that predicted each sampled id, given the prompt and the ids before it."""
    ids = torch.tensor([list(prompt_ids) + list(action_ids)], device=model.device)  # (1, L)
    logits = model(input_ids=ids).logits[0]  # (L, V)
    start = len(prompt_ids) - 1
    return logits[start:start + len(action_ids)]


def turn_drift(policy: Any, reference: Any, trajectory: Trajectory) -> list[float | None]:
    """D_t for each turn: the mean over its sampled tokens of KL(policy || reference); None without tokens.

    When every turn's prompt and answer is a prefix of the last turn's (the `full` strategy), both models read
    that one sequence once (causal attention: the same logits, one forward instead of one per turn).
    """
    scored = [t for t in trajectory.turns if sampled(t)]
    packed = scored[-1].prompt_ids + scored[-1].action_ids if scored else []
    if scored and all(packed[:len(t.prompt_ids) + len(t.action_ids)] == t.prompt_ids + t.action_ids for t in scored):
        kl = token_kl(action_logits(policy, packed[:1], packed[1:]),
                      action_logits(reference, packed[:1], packed[1:]))  # (L - 1,): position i predicts id i + 1
        spans = [(len(t.prompt_ids) - 1, len(t.action_ids)) for t in trajectory.turns]
        return [float(kl[a:a + n].mean()) if sampled(t) else None for t, (a, n) in zip(trajectory.turns, spans)]
    return [one_turn_drift(policy, reference, t) if sampled(t) else None for t in trajectory.turns]


def sampled(turn: Any) -> bool:
    return bool(turn.action_ids and turn.prompt_ids)


def one_turn_drift(policy: Any, reference: Any, turn: Any) -> float:
    kl = token_kl(action_logits(policy, turn.prompt_ids, turn.action_ids),
                  action_logits(reference, turn.prompt_ids, turn.action_ids))  # (T_a,)
    return float(kl.mean())


def drift_by_turn(per_episode: list[list[float | None]]) -> list[dict[str, Any]]:
    """Mean D_t and its SE over the episodes that have one at each turn index (turns count from 1)."""
    rows = []
    for i in range(max((len(d) for d in per_episode), default=0)):
        values = [d[i] for d in per_episode if len(d) > i and d[i] is not None]
        if not values:
            continue
        se = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
        rows.append({"turn": i + 1, "episodes": len(values), "drift": float(np.mean(values)), "se": se})
    return rows


def load_reference(spec: str, dtype: str = "float32") -> Any:
    """The reference model: `tiny-random:SEED`, a registered name, or a local HF directory (eval mode)."""
    from longhorizon.models import DTYPES, load_model, load_tiny

    name, _, seed = spec.partition(":")
    if name == "tiny-random" and seed:
        if not seed.isdigit():
            raise UserError(f"--reference tiny-random:SEED needs an integer seed, got {seed!r}")
        model = load_tiny(DTYPES[dtype], seed=int(seed))[0]
    else:
        model = load_model(spec, dtype=dtype).model
    return model.eval()


def plot_drift(curves: dict[str, list[dict[str, Any]]], path: str | Path, title: str = "") -> Path:
    """D_t against the turn index, one line (± 1 SE) per condition (e.g. without / with reminders)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, rows in curves.items():
        ax.errorbar([r["turn"] for r in rows], [r["drift"] for r in rows], yerr=[r["se"] for r in rows],
                    marker="o", capsize=3, label=label)
    ax.set(xlabel="turn", ylabel="KL(policy || reference), mean over the turn's tokens",
           title=f"drift {title}".strip())
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
