"""Preference losses: pure functions of the log-probs of B pairs, picked by name from `PREFERENCE_LOSSES`.

Every loss takes a `PairLogps` (token log-probs `(B, T)` of the two sides of each
pair under the policy, the reference and, where a method needs them, the
previous iterate or the behaviour policy, with masks) plus its hyper-parameters,
and returns `(loss, metrics)`: `loss` a scalar (mean over pairs), `metrics` floats:

- `chosen_logratio` / `rejected_logratio`: mean of sum_t (log pi - log pi_ref) over each side;
- `chosen_reward` / `rejected_reward`: the same times beta (DPO's implicit rewards, as TRL logs them);
- `reward_margin`: mean of beta * (chosen_logratio - rejected_logratio);
- `pref_accuracy`: fraction of pairs with chosen_logratio > rejected_logratio (ties count as wrong).

A side's sequence log-prob is the masked sum `seq_logps(x, mask)`: masked positions
are replaced by 0 before the sum, so any value there (even inf) changes nothing.
Precomputed sums go in as `(B, 1)` with a mask of ones (`PairLogps.from_sums`).

"chosen" / "rejected" are the preferred / other side for the offline losses
(DPO, IPO, DNO, INPO). The online ones name the two samples of a prompt the same way
without ordering them: Nash-MD and Nash-MP read `chosen` as the policy sample y and
`preference` = P(y > y') against the opponent sample y' (`rejected`); P3O reads
`chosen` / `rejected` as y1 / y2 with their rewards.

Departures and choices where methods.md marks a detail unverified or not found:
1. IPO divides each side's log-ratio by its token count by default (`length_normalize`),
   as TRL does (its comment: confirmed with the IPO authors); `length_normalize=False`
   is Azar et al.'s eq. (17) on sequence sums.
2. Nash-MD: TRL's practical loss (methods.md §9a): per-token REINFORCE KL term
   beta * sum_t (log pi - log pi_ref)_t.detach() * log pi_t, and -(p - 1/2) * sum_t log pi_t.
3. Nash-MP (methods.md §9b, practical loss NOT FOUND): each half-step of mirror prox
   is the proximal problem argmax_pi eta [P(pi > opponent) - beta KL(pi || pi_ref)] - KL(pi || pi_k);
   divided by eta and estimated with REINFORCE it is Nash-MD's loss plus
   (1/eta) sum_t (log pi - log pi_k)_t.detach() * log pi_t. The two half-steps use
   the SAME loss and differ in what the caller passes: half-step 1 samples the
   opponent y' from pi_k; half-step 2 restarts from pi_k's weights and samples y'
   from pi_{k+1/2}; both anchor `prev_*` = log pi_k (the extragradient: the gradient
   is taken at the midpoint, the step from pi_k).
4. INPO (methods.md §9c, [RECALLED + INFERRED]): the square loss
   (h_t - eta (p - 1/2))^2 with h_t = log pi(y)/pi(y') - eta tau log pi_ref(y)/pi_ref(y')
   - (1 - eta tau) log pi_t(y)/pi_t(y'). With a hard label (p = 1, the default) the
   target is eta / 2 as in methods.md; a soft label p (a tie: 1/2) is our extension.
   Defaults eta = 10, tau = 0.01 are ours (hyper-parameters NOT FOUND); eta * tau = 1
   gives IPO with beta = 1/eta on sequence sums.
5. DNO (methods.md §9d): DNO-Prct's contrastive loss is DPO against the previous
   iterate: `prev_*` replaces the reference. beta = 0.1 and the margin threshold are
   ours (NOT FOUND); `large_margin_pairs` picks best vs worst of K samples.
6. P3O (methods.md §10a, methods-2.md §0, exact forms UNVERIFIED): trajectory-level ratios
   rho_i = pi(y_i) / pi_old(y_i), Delta = r1 - r2 with an optional KL-to-reference
   penalty inside the rewards, r_i -= kl_coef * (log pi_old(y_i) - log pi_ref(y_i)),
   computed from the behaviour log-probs (no gradient), as PPO-RLHF shapes its reward.
   V1 (separate): min(rho1 D/2, clip(rho1) D/2) + min(-rho2 D/2, -clip(rho2) D/2).
   V2 (joint): min(rho D/2, clip(rho) D/2) with rho = rho1 / rho2. Both give the vanilla
   pairwise gradient (D/2) grad(log pi(y1) - log pi(y2)) on-policy. clip = 0.2 is ours.
7. Think-RM's pairwise-difference advantage is an advantage, not a loss: it is in
   `PAIRWISE_ADVANTAGES` (methods-2.md §1, code-verified); `antisymmetrize=True`
   (both orders judged) is the [INFERRED] position-bias fix, off by default as in the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Metrics = dict[str, float]


def _zero_masked(x: Tensor, mask: Tensor) -> Tensor:
    """`x (B, T)` with 0 where masked (before any arithmetic, so inf there changes nothing)."""
    return torch.where(mask.bool(), x, torch.zeros_like(x))


def seq_logps(token_logps: Tensor, mask: Tensor) -> Tensor:
    """Sum over the masked tokens of each row: (B, T) -> (B,); masked-out values never reach the sum."""
    return _zero_masked(token_logps, mask).sum(dim=-1)


@dataclass
class PairLogps:
    """Token log-probs of B pairs. Every tensor is (B, Tc) on the chosen side, (B, Tr) on the rejected
    side, except `preference`, `chosen_reward`, `rejected_reward`: (B,). Gradients flow through
    `chosen` / `rejected` (the policy); everything else is treated as data."""

    chosen: Tensor  # (B, Tc) log pi_theta of the chosen tokens
    rejected: Tensor  # (B, Tr)
    ref_chosen: Tensor  # (B, Tc) log pi_ref
    ref_rejected: Tensor  # (B, Tr)
    chosen_mask: Tensor  # (B, Tc) 1 on the tokens that count (sampled / completion tokens)
    rejected_mask: Tensor  # (B, Tr)
    prev_chosen: Tensor | None = None  # (B, Tc) previous iterate pi_t (INPO, DNO, Nash-MP's pi_k)
    prev_rejected: Tensor | None = None  # (B, Tr)
    old_chosen: Tensor | None = None  # (B, Tc) behaviour policy pi_old (P3O)
    old_rejected: Tensor | None = None  # (B, Tr)
    preference: Tensor | None = None  # (B,) P(chosen > rejected) in [0, 1] (Nash-MD, Nash-MP, INPO)
    chosen_reward: Tensor | None = None  # (B,) scalar reward of each side (P3O)
    rejected_reward: Tensor | None = None  # (B,)

    @classmethod
    def from_sums(cls, chosen: Tensor, rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
                  **optional: Tensor) -> "PairLogps":
        """From sequence sums (B,): token tensors become (B, 1) with masks of ones; (B,) fields stay."""
        col = lambda x: x.unsqueeze(-1)  # noqa: E731
        per_pair = {"preference", "chosen_reward", "rejected_reward"}
        rest = {k: v if k in per_pair else col(v) for k, v in optional.items()}
        ones = torch.ones_like(col(chosen), dtype=torch.bool)
        return cls(col(chosen), col(rejected), col(ref_chosen), col(ref_rejected), ones, ones, **rest)

    def sums(self, which: str) -> tuple[Tensor, Tensor]:
        """Masked sequence sums (B,) of `{which}chosen` and `{which}rejected` ("" = policy, "ref_", "prev_", "old_")."""
        chosen, rejected = getattr(self, f"{which}chosen"), getattr(self, f"{which}rejected")
        if chosen is None or rejected is None:
            raise ValueError(f"this loss needs {which}chosen and {which}rejected log-probs")
        return seq_logps(chosen, self.chosen_mask), seq_logps(rejected, self.rejected_mask)

    def needs(self, name: str) -> Tensor:
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"this loss needs `{name}`")
        return value


@torch.no_grad()
def pair_metrics(chosen_logratio: Tensor, rejected_logratio: Tensor, beta: float) -> Metrics:
    """The metrics every preference loss reports, from the per-pair log-ratios (B,)."""
    c, r = chosen_logratio.double(), rejected_logratio.double()
    return {
        "chosen_logratio": c.mean().item(),
        "rejected_logratio": r.mean().item(),
        "chosen_reward": (beta * c).mean().item(),
        "rejected_reward": (beta * r).mean().item(),
        "reward_margin": (beta * (c - r)).mean().item(),
        "pref_accuracy": (c > r).double().mean().item(),
    }


def _logratios(batch: PairLogps, ref: str = "ref_") -> tuple[Tensor, Tensor]:
    """sum_t log pi - sum_t log pi_{ref}, for chosen and rejected: (B,), (B,)."""
    pc, pr = batch.sums("")
    rc, rr = batch.sums(ref)
    return pc - rc.detach(), pr - rr.detach()


# ---------------------------------------------------------------- offline: DPO, IPO, DNO


def dpo_loss(batch: PairLogps, *, beta: float = 0.1) -> tuple[Tensor, Metrics]:
    """DPO (sigmoid): mean_b -log sigmoid(beta * [(pi_c - ref_c) - (pi_r - ref_r)])."""
    chosen_lr, rejected_lr = _logratios(batch)
    loss = -F.logsigmoid(beta * (chosen_lr - rejected_lr)).mean()  # Rafailov et al. 2023 (arXiv 2305.18290) eq. (7)
    return loss, pair_metrics(chosen_lr, rejected_lr, beta)


def ipo_loss(batch: PairLogps, *, beta: float = 0.1, length_normalize: bool = True) -> tuple[Tensor, Metrics]:
    """IPO: mean_b ([chosen_lr - rejected_lr] - 1/(2 beta))^2, log-ratios per token by default (see 1.)."""
    chosen_lr, rejected_lr = _logratios(batch)
    if length_normalize:
        chosen_lr = chosen_lr / batch.chosen_mask.sum(-1).clamp(min=1)
        rejected_lr = rejected_lr / batch.rejected_mask.sum(-1).clamp(min=1)
    loss = ((chosen_lr - rejected_lr) - 1 / (2 * beta)).pow(2).mean()  # Azar et al. 2023 (arXiv 2310.12036) eq. (17)
    return loss, pair_metrics(chosen_lr, rejected_lr, beta)


def dno_loss(batch: PairLogps, *, beta: float = 0.1) -> tuple[Tensor, Metrics]:
    """DNO-Prct: DPO against the previous iterate pi_t (`prev_*`) instead of the reference (see 5.)."""
    chosen_lr, rejected_lr = _logratios(batch, ref="prev_")
    loss = -F.logsigmoid(beta * (chosen_lr - rejected_lr)).mean()  # Rosset et al. 2024 (arXiv 2404.03715), DNO-Prct
    return loss, pair_metrics(chosen_lr, rejected_lr, beta)


def large_margin_pairs(scores: Tensor, min_margin: float) -> tuple[Tensor, Tensor, Tensor]:
    """DNO's pair filter: for scores (N, K) of K samples per prompt, the best (N,) and worst (N,) sample
    index and `keep` (N,) bool: margin best - worst >= min_margin and > 0 (Rosset et al. 2024)."""
    best, worst = scores.argmax(dim=-1), scores.argmin(dim=-1)
    margin = scores.max(dim=-1).values - scores.min(dim=-1).values
    return best, worst, (margin >= min_margin) & (margin > 0)


# ---------------------------------------------------------------- online Nash family


def geometric_mixture_logits(policy_logits: Tensor, ref_logits: Tensor, beta: float) -> Tensor:
    """Next-token log-probs of pi^mu ∝ pi^(1-beta) pi_ref^beta, from logits (..., V): log_softmax of
    (1-beta) policy + beta ref (Munos et al. 2024, Nash-MD; TRL's GeometricMixtureWrapper). For sampling y'."""
    return torch.log_softmax(beta * ref_logits + (1 - beta) * policy_logits, dim=-1)


def _reinforce_kl(logps: Tensor, anchor: Tensor, mask: Tensor) -> Tensor:
    """sum_t (log pi - log anchor)_t.detach() * log pi_t per row (B,): its gradient estimates grad KL(pi || anchor)."""
    log_ratio = _zero_masked(logps - anchor, mask).detach()
    return (log_ratio * _zero_masked(logps, mask)).sum(-1)


def nash_md_loss(batch: PairLogps, *, beta: float = 0.1) -> tuple[Tensor, Metrics]:
    """Nash-MD (TRL's practical form, see 2.): y = `chosen` ~ pi, y' ~ mixture, p = `preference` = P(y > y').
    mean_b [beta * sum_t (log pi - log pi_ref)_t.detach() log pi_t - (p - 1/2) sum_t log pi_t]."""
    p, lp = batch.needs("preference"), batch.chosen
    kl = _reinforce_kl(lp, batch.ref_chosen, batch.chosen_mask)
    score = (p - 0.5) * seq_logps(lp, batch.chosen_mask)  # 0.5: control variate
    loss = (beta * kl - score).mean()  # Munos et al. 2024 (arXiv 2312.00886) via TRL nash_md_trainer._compute_losses
    return loss, _online_metrics(batch, beta, p)


def nash_mp_loss(batch: PairLogps, *, beta: float = 0.1, eta: float = 1.0) -> tuple[Tensor, Metrics]:
    """One Nash-MP half-step (see 3.): Nash-MD's loss plus (1/eta) * REINFORCE KL(pi || pi_k), pi_k = `prev_chosen`."""
    p, lp = batch.needs("preference"), batch.chosen
    kl_ref = _reinforce_kl(lp, batch.ref_chosen, batch.chosen_mask)
    kl_prox = _reinforce_kl(lp, batch.needs("prev_chosen"), batch.chosen_mask)
    score = (p - 0.5) * seq_logps(lp, batch.chosen_mask)
    loss = (beta * kl_ref + kl_prox / eta - score).mean()  # Tiapkin et al. 2025 (arXiv 2505.19731), prox step / eta
    metrics = _online_metrics(batch, beta, p)
    metrics["kl_prev"] = seq_logps(lp - batch.prev_chosen, batch.chosen_mask).detach().mean().item()
    return loss, metrics


def _online_metrics(batch: PairLogps, beta: float, p: Tensor) -> Metrics:
    chosen_lr, rejected_lr = _logratios(batch)
    return {**pair_metrics(chosen_lr, rejected_lr, beta), "preference_prob": p.double().mean().item(),
            "kl": chosen_lr.detach().double().mean().item()}


def inpo_loss(batch: PairLogps, *, eta: float = 10.0, tau: float = 0.01) -> tuple[Tensor, Metrics]:
    """INPO (see 4.): mean_b (h_t - eta (p - 1/2))^2, p = `preference` (default 1: chosen is preferred)."""
    if not 0.0 <= eta * tau <= 1.0:
        raise ValueError(f"INPO needs 0 <= eta * tau <= 1, got {eta * tau}")
    pc, pr = batch.sums("")
    rc, rr = batch.sums("ref_")
    tc, tr = batch.sums("prev_")
    h = (pc - pr) - eta * tau * (rc - rr) - (1 - eta * tau) * (tc - tr)  # Zhang et al. 2025 (arXiv 2407.00617)
    p = batch.preference if batch.preference is not None else torch.ones_like(h)
    loss = (h - eta * (p - 0.5)).pow(2).mean()
    return loss, pair_metrics(pc - rc, pr - rr, 1.0 / eta)


# ---------------------------------------------------------------- P3O


def _p3o_delta(batch: PairLogps, kl_coef: float) -> Tensor:
    """Delta = r1 - r2 (B,), each reward less kl_coef * (log pi_old - log pi_ref) of its side (see 6.)."""
    (oc, orj), (rc, rr) = batch.sums("old_"), batch.sums("ref_")
    r1 = batch.needs("chosen_reward") - kl_coef * (oc - rc)
    r2 = batch.needs("rejected_reward") - kl_coef * (orj - rr)
    return (r1 - r2).detach()


def _p3o_ratios(batch: PairLogps) -> tuple[Tensor, Tensor]:
    (pc, pr), (oc, orj) = batch.sums(""), batch.sums("old_")
    return torch.exp(pc - oc.detach()), torch.exp(pr - orj.detach())


def p3o_separate_loss(batch: PairLogps, *, clip: float = 0.2, kl_coef: float = 0.0) -> tuple[Tensor, Metrics]:
    """P3O V1, separate clipping: -mean_b [min(rho1 D/2, clip(rho1) D/2) + min(-rho2 D/2, -clip(rho2) D/2)]."""
    delta, (rho1, rho2) = _p3o_delta(batch, kl_coef) / 2, _p3o_ratios(batch)
    obj1 = torch.minimum(rho1 * delta, rho1.clamp(1 - clip, 1 + clip) * delta)  # Wu et al. 2023, P3O V1
    obj2 = torch.minimum(-rho2 * delta, -rho2.clamp(1 - clip, 1 + clip) * delta)
    clipped = ((obj1 != rho1 * delta) | (obj2 != -rho2 * delta)).double().mean().item()
    return -(obj1 + obj2).mean(), _p3o_metrics(batch, delta, clipped)


def p3o_joint_loss(batch: PairLogps, *, clip: float = 0.2, kl_coef: float = 0.0) -> tuple[Tensor, Metrics]:
    """P3O V2, joint clipping on the pair ratio rho = rho1 / rho2: -mean_b min(rho D/2, clip(rho) D/2)."""
    delta, (rho1, rho2) = _p3o_delta(batch, kl_coef) / 2, _p3o_ratios(batch)
    rho = rho1 / rho2
    obj = torch.minimum(rho * delta, rho.clamp(1 - clip, 1 + clip) * delta)  # Wu et al. 2023, P3O V2
    return -obj.mean(), _p3o_metrics(batch, delta, (obj != rho * delta).double().mean().item())


def _p3o_metrics(batch: PairLogps, half_delta: Tensor, clip_frac: float) -> Metrics:
    chosen_lr, rejected_lr = _logratios(batch)
    return {**pair_metrics(chosen_lr, rejected_lr, 1.0), "reward_diff": 2 * half_delta.double().mean().item(),
            "clip_frac": clip_frac}


PREFERENCE_LOSSES: dict[str, Callable[..., tuple[Tensor, Metrics]]] = {
    "dpo": dpo_loss,
    "ipo": ipo_loss,
    "dno": dno_loss,
    "nash_md": nash_md_loss,
    "nash_mp": nash_mp_loss,
    "inpo": inpo_loss,
    "p3o_v1": p3o_separate_loss,
    "p3o_v2": p3o_joint_loss,
}


# ---------------------------------------------------------------- Think-RM pairwise RLHF


def pairwise_difference_advantages(scores: Tensor, *, antisymmetrize: bool = False,
                                   eps: float = 1e-6) -> tuple[Tensor, Metrics]:
    """Think-RM's advantage from judge scores (N, G, G) -> (N, G) (see 7.).

    scores[n, i, j] = s(A = y_i, B = y_j), negative when y_i is better; only i < j is read
    (with `antisymmetrize`, s_ij = (scores_ij - scores_ji) / 2). d_ij = -s_ij, d_ji = s_ij;
    A_i = (1/G) sum_j d_ij / sqrt(sum_{j,k} d_jk^2 / (2 G (G-1)) + eps).
    """
    g = scores.shape[-1]
    s = (scores - scores.transpose(-1, -2)) / 2 if antisymmetrize else scores
    upper = torch.triu(s, diagonal=1)
    d = upper.transpose(-1, -2) - upper  # d_ij = -s_ij (i < j), d_ji = s_ij, d_ii = 0
    scale = torch.sqrt(d.pow(2).sum(dim=(-1, -2)) / (2 * g * (g - 1)) + eps)  # Hong et al. 2025, methods-2.md §1
    adv = d.sum(dim=-1) / g / scale.unsqueeze(-1)
    return adv, {"pairwise_scale": scale.double().mean().item(), "adv_abs_mean": adv.abs().double().mean().item()}


PAIRWISE_ADVANTAGES: dict[str, Callable[..., tuple[Tensor, Metrics]]] = {
    "think_rm": pairwise_difference_advantages,
}
