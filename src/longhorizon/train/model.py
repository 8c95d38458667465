"""The trainable policy, its reference, the optional value head, and the one forward pass they share.

- LoRA (peft): the reference policy is the same model with its adapters
  disabled (`with model.disable_adapter():`), not a second copy.
- Full fine-tune with a KL term: a frozen deep copy of the starting weights.
- PPO: a linear value head on the policy's last hidden state (shared trunk),
  initialised to zero so the first values are 0.
- `gradient_checkpointing`: each decoder layer's activations are recomputed
  in the backward pass (non-reentrant `torch.utils.checkpoint`), which gives
  the same gradients bit for bit on CPU.

`token_forward` computes log-probs of the sampled tokens under
softmax(logits / temperature), the distribution the sampler drew from, so
the PPO ratio is exactly 1 before the first update. Logits are computed only
at the positions that predict a sampled token (`logits_to_keep`), which
skips the vocabulary projection for every prompt token.
"""

from __future__ import annotations

import warnings

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from longhorizon.algorithms import entropy_from_logits
from longhorizon.models import load_model
from longhorizon.train.config import TrainConfig
from longhorizon.train.prefix import SharedPrefixModel, plan_prefixes


@dataclass
class Models:
    """What the loop trains and scores with."""

    model: Any  # the policy (a peft model with LoRA)
    tokenizer: Any
    ref_model: Any | None  # frozen copy (full fine-tune with KL), else None
    value_head: nn.Linear | None  # ppo only
    lora: bool

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]


@dataclass
class TokenOutputs:
    """Per-token results of one forward pass, each (B, T) and 0 off the mask."""

    logprobs: Tensor
    entropy: Tensor | None = None
    values: Tensor | None = None
    reg_entropy: Tensor | None = None  # `entropy_fn` of the logits, with gradient (entropy regularisers)


def build_models(cfg: TrainConfig, needs_ref: bool, value_head: bool) -> Models:
    """Load the policy; add LoRA, a reference copy and a value head as the config asks."""
    loaded = load_model(cfg.model, dtype=cfg.dtype, device=cfg.device)
    model, ref = loaded.model, None
    if cfg.gradient_checkpointing:  # in train mode only: sampling and scoring are unchanged
        _checkpoint_activations(model)
    torch.manual_seed(cfg.seed)  # LoRA's init draws from the global RNG
    if cfg.lora.enabled:
        model = _with_lora(model, cfg)
    elif needs_ref:
        ref = copy.deepcopy(model).eval().requires_grad_(False)
    head = _value_head(model, cfg.device) if value_head else None
    return Models(model=model, tokenizer=loaded.tokenizer, ref_model=ref, value_head=head, lora=cfg.lora.enabled)


def _with_lora(model: Any, cfg: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = cfg.lora
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules, task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft still asks for transformers' deprecated `is_gradient_checkpointing`
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def _checkpoint_activations(model: Any) -> None:
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.25 (the old name warns)
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _value_head(model: Any, device: str) -> nn.Linear:
    head = nn.Linear(model.config.hidden_size, 1, device=device, dtype=torch.float32)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


@contextlib.contextmanager
def reference(models: Models) -> Iterator[Any]:
    """The reference policy: the frozen copy, or the LoRA model with adapters off."""
    if models.ref_model is not None:
        yield models.ref_model
    elif models.lora:
        with models.model.disable_adapter():
            yield models.model
    else:
        raise RuntimeError("no reference model: full fine-tune built without a KL term")


def autocast(cfg: TrainConfig) -> contextlib.AbstractContextManager:
    device_type = torch.device(cfg.device).type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=cfg.autocast_bf16)


def token_forward(
    model: Any, input_ids: Tensor, attention_mask: Tensor, loss_mask: Tensor, temperature: float, *,
    entropy: bool = False, value_head: nn.Linear | None = None, share_prefix: bool = False,
    entropy_fn: Callable[[Tensor], Tensor] | None = None,
) -> TokenOutputs:
    """Log-prob of each sampled token t given tokens < t, under logits / temperature; (B, T) in, (B, T) out.

    With `share_prefix`, a token prefix that several rows share is computed once (`train/prefix.py`);
    the results equal the plain forward up to float rounding. `entropy_fn`
    maps the tempered logits (B, P, V) to a per-token value (B, P) kept with
    its gradient, returned as `reg_entropy`.
    """
    plan = plan_prefixes(input_ids, attention_mask, loss_mask) if share_prefix else None
    if plan is None:
        return _token_forward(model, input_ids, attention_mask, loss_mask, temperature, entropy, value_head, entropy_fn)
    out = _token_forward(SharedPrefixModel(model, plan), plan.suffix_ids, plan.suffix_mask, plan.suffix_loss_mask,
                         temperature, entropy, value_head, entropy_fn)
    return TokenOutputs(*(None if x is None else plan.to_rows(x)
                          for x in (out.logprobs, out.entropy, out.values, out.reg_entropy)))


def _token_forward(model: Any, input_ids: Tensor, attention_mask: Tensor, loss_mask: Tensor, temperature: float,
                   entropy: bool, value_head: nn.Linear | None,
                   entropy_fn: Callable[[Tensor], Tensor] | None = None) -> TokenOutputs:
    predicts = torch.zeros_like(loss_mask, dtype=torch.bool)
    predicts[:, :-1] = loss_mask[:, 1:].bool()  # position t-1 predicts sampled token t
    keep = predicts.any(0).nonzero().squeeze(1)  # (P,) positions any row needs
    out = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep,
                output_hidden_states=value_head is not None, use_cache=False)
    logits = out.logits.float() / temperature  # (B, P, V)
    targets = input_ids[:, keep + 1]  # (B, P)
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]
    result = TokenOutputs(logprobs=_place(logp, predicts, keep))
    if entropy:
        with torch.no_grad():
            result.entropy = _place(entropy_from_logits(logits), predicts, keep)
    if entropy_fn is not None:
        result.reg_entropy = _place(entropy_fn(logits), predicts, keep)
    if value_head is not None:
        hidden = out.hidden_states[-1][:, keep].float()  # (B, P, H)
        result.values = _place(value_head(hidden)[..., 0], predicts, keep)
    return result


def _place(x: Tensor, predicts: Tensor, keep: Tensor) -> Tensor:
    """Values at kept positions (B, P) → (B, T) aligned with the predicted token (shifted by one), 0 elsewhere."""
    full = x.new_zeros(predicts.shape)
    full[:, keep + 1] = torch.where(predicts[:, keep], x, torch.zeros_like(x))
    return full
