"""Supervised losses: the negative log-likelihood of demonstrated tokens (`algorithm.name: sft`).

Aggregation: token-mean over the minibatch, -sum_{b,t} m_bt log pi(y_bt | y_<bt) / sum_{b,t} m_bt, where m is
the loss mask (1 on the agent's tokens only). This is what TRL's `SFTTrainer` optimises with
`assistant_only_loss` / `completion_only_loss` (labels -100 off the mask, the cross-entropy averaged over every
labelled token of the batch, and since transformers 4.46 over the whole accumulated batch,
`num_items_in_batch`). Every demonstrated token weighs the same, so long episodes weigh more than short ones,
as in plain language-model training; a per-sequence mean would instead up-weight the tokens of short answers.
`num_tokens` is the mask's sum over the whole minibatch, so micro-batches each add their share and gradient
accumulation is exact.
"""

from __future__ import annotations

from torch import Tensor


def sft_loss(logprobs: Tensor, loss_mask: Tensor, num_tokens: float) -> tuple[Tensor, dict[str, float]]:
    """Token-mean NLL of the masked tokens: logprobs (B, T) log pi of each token (0 off the mask), loss_mask (B, T)."""
    nll = -(logprobs * loss_mask).sum()  # (,) summed over the micro-batch's agent tokens
    loss = nll / max(float(num_tokens), 1.0)
    return loss, {"tokens": float(loss_mask.sum())}


SUPERVISED_LOSSES = {"sft": sft_loss}
