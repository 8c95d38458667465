"""Shared prompt compute equals the plain forward: log-probs, entropies, values and gradients within 1e-5
in fp32 on the tiny random model, for hand-built rows (groups with different prefix and suffix lengths,
right padding, a row that shares nothing) and for a minibatch the training loop collects.
"""

from __future__ import annotations

import pytest
import torch

from longhorizon.models import load_model
from longhorizon.train import ALGORITHMS
from longhorizon.train import model as model_module
from longhorizon.train.loop import score
from longhorizon.train.model import reference, token_forward
from longhorizon.train.optim import trainable
from longhorizon.train.prefix import SharedPrefixModel, _runs, plan_prefixes, prefix_order
from longhorizon.train.update import minibatch_backward
from test_train import collect, tiny_cfg

# (group, prompt tokens, tokens before the first sampled one, sampled tokens): group -1 shares nothing
ROWS = [(0, 40, 5, 3), (1, 24, 2, 6), (0, 40, 9, 2), (2, 30, 0, 4), (1, 24, 4, 1), (-1, 35, 3, 2),
        (0, 40, 1, 7), (2, 30, 0, 4)]


def make_rows(vocab: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids, attention_mask (B, T) right-padded, loss_mask (B, T): 1 on each row's sampled tokens."""
    gen = torch.Generator().manual_seed(seed)
    prompts = {g: torch.randint(0, vocab, (40,), generator=gen) for g in (-1, 0, 1, 2)}
    seqs, firsts = [], []
    for group, prompt, extra, sampled in ROWS:
        seqs.append(torch.cat([prompts[group][:prompt], torch.randint(0, vocab, (extra + sampled,), generator=gen)]))
        firsts.append(prompt + extra)
    width = max(len(s) for s in seqs) + 2
    ids, mask, loss_mask = (torch.zeros(len(seqs), width, dtype=torch.long) for _ in range(3))
    for r, (seq, first) in enumerate(zip(seqs, firsts)):
        ids[r, : len(seq)], mask[r, : len(seq)], loss_mask[r, first: len(seq)] = seq, 1, 1
    return ids, mask, loss_mask.float()


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return load_model("tiny-random").model


def value_head(hidden: int) -> torch.nn.Linear:
    torch.manual_seed(1)
    head = torch.nn.Linear(hidden, 1)
    torch.nn.init.normal_(head.weight, std=0.2)  # not zero, so the values test something
    return head


def test_plan_groups_rows_by_their_token_prefix():
    ids, mask, loss_mask = make_rows(1000)
    plan = plan_prefixes(ids, mask, loss_mask)
    groups = [g for g, *_ in ROWS]
    for a in range(len(ROWS)):
        for b in range(len(ROWS)):
            assert (plan.source[a] == plan.source[b]) == (a == b or groups[a] == groups[b] != -1)
    first = loss_mask.argmax(1)
    assert (plan.start <= first - 1).all()  # the prefix never holds a position that predicts a sampled token
    assert plan.start.tolist() == [40, 24, 40, 29, 24, 37, 40, 29]  # group 2's sampled tokens start at 30
    assert plan.suffix_loss_mask.sum() == loss_mask.sum()
    for r, (start, length) in enumerate(zip(plan.start.tolist(), mask.sum(1).tolist())):  # prefix + suffix = row
        assert plan.prefix_mask[plan.source[r]].sum() == start
        assert torch.equal(plan.prefix_ids[plan.source[r], :start], ids[r, :start])
        assert torch.equal(plan.suffix_ids[r, : length - start], ids[r, start:length])
        assert plan.suffix_mask[r].sum() == length - start


def test_runs_maximise_the_shared_tokens():
    # rows 0-2 share 100 tokens, rows 2-3 only 20: sharing 100 among three beats 20 among four
    assert _runs([100, 100, 20], min_prefix=16) == [(0, 3, 100), (3, 4, 0)]
    assert _runs([100, 5, 100], min_prefix=16) == [(0, 2, 100), (2, 4, 100)]
    assert _runs([10, 10], min_prefix=16) == [(0, 1, 0), (1, 2, 0), (2, 3, 0)]


def test_no_plan_when_nothing_is_shared():
    ids, mask, loss_mask = make_rows(1000)
    assert plan_prefixes(ids[[0, 1, 3, 5]], mask[[0, 1, 3, 5]], loss_mask[[0, 1, 3, 5]]) is None


def test_prefix_order_puts_groups_together():
    ids, mask, loss_mask = make_rows(1000)
    groups = [ROWS[r][0] for r in prefix_order(ids, mask, loss_mask).tolist()]
    for g in set(groups):
        at = [i for i, x in enumerate(groups) if x == g]
        assert at == list(range(at[0], at[0] + len(at))), groups


def outputs(model, ids, mask, loss_mask, share: bool, head=None):
    return token_forward(model, ids, mask, loss_mask, 0.7, entropy=True, value_head=head, share_prefix=share)


def test_shared_forward_equals_the_plain_forward(tiny_model, monkeypatch):
    calls = spy_shared_calls(monkeypatch)
    ids, mask, loss_mask = make_rows(tiny_model.config.vocab_size)
    head = value_head(tiny_model.config.hidden_size)
    with torch.no_grad():
        plain, shared = (outputs(tiny_model, ids, mask, loss_mask, share, head) for share in (False, True))
    assert calls == [len(ROWS)]
    assert plain.logprobs[loss_mask.bool()].abs().min() > 0 and plain.values.abs().max() > 0.1
    torch.testing.assert_close(shared.logprobs, plain.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(shared.values, plain.values, atol=1e-5, rtol=0)
    # entropy sums 49k terms to ~log(49152) = 10.8: fp32 rounding alone is ~1e-6 of that
    torch.testing.assert_close(shared.entropy, plain.entropy, atol=1e-5, rtol=1e-6)
    assert (shared.logprobs[~loss_mask.bool()] == 0).all()


def spy_shared_calls(monkeypatch) -> list[int]:
    """Records the batch size of every shared-prefix forward (so a test knows sharing really ran)."""
    calls = []

    class Spy(SharedPrefixModel):
        def __call__(self, input_ids, *args, **kwargs):
            calls.append(input_ids.shape[0])
            return super().__call__(input_ids, *args, **kwargs)

    monkeypatch.setattr(model_module, "SharedPrefixModel", Spy)
    return calls


def weighted_loss_grads(model, head, ids, mask, loss_mask, share: bool) -> list[torch.Tensor]:
    weights = torch.linspace(0.5, 1.5, ids.numel()).reshape(ids.shape) * loss_mask
    weights = weights / weights.sum()  # normalised like the training loss, so gradients are O(1)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    for p in params:
        p.grad = None
    out = outputs(model, ids, mask, loss_mask, share, head)
    ((out.logprobs + 0.3 * out.values) * weights).sum().backward()
    return [p.grad.clone() for p in params]


@pytest.mark.parametrize("lora", [False, True])
def test_gradients_equal_the_plain_forward(tiny_model, lora):
    model = tiny_model
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    ids, mask, loss_mask = make_rows(model.config.vocab_size, seed=1)
    head = value_head(model.config.hidden_size)
    plain, shared = (weighted_loss_grads(model, head, ids, mask, loss_mask, share) for share in (False, True))
    assert len(plain) > 4 and all(g.abs().max() > 0 for g in plain)
    for name, p, s in zip([n for n, q in model.named_parameters() if q.requires_grad] + ["head.w", "head.b"],
                          plain, shared):
        torch.testing.assert_close(s, p, atol=1e-5, rtol=0, msg=name)


def test_lora_reference_with_adapters_off_shares_the_prefix(tmp_path, monkeypatch):
    from longhorizon.train.model import build_models

    calls = spy_shared_calls(monkeypatch)
    models = build_models(tiny_cfg(tmp_path, "lora.enabled=true", "algorithm.kl_coef=0.1"), True, False)
    with torch.no_grad():
        for name, p in models.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)
    ids, mask, loss_mask = make_rows(models.model.config.vocab_size)
    with torch.no_grad(), reference(models) as ref:
        plain, shared = (outputs(ref, ids, mask, loss_mask, share).logprobs for share in (False, True))
        base = outputs(load_model("tiny-random").model, ids, mask, loss_mask, False).logprobs
    assert calls == [len(ROWS)]
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(shared, base, atol=1e-5, rtol=0)


def test_bf16_autocast_stays_finite_and_close(tiny_model):
    ids, mask, loss_mask = make_rows(tiny_model.config.vocab_size)
    with torch.no_grad():
        exact = outputs(tiny_model, ids, mask, loss_mask, False).logprobs
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain, shared = (outputs(tiny_model, ids, mask, loss_mask, share).logprobs for share in (False, True))
    assert torch.isfinite(shared).all()
    bf16_error = (plain - exact).abs().max()
    assert (shared - exact).abs().max() <= 2 * bf16_error + 1e-3  # no worse than bf16 rounding of the plain pass


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_minibatch_backward_and_score_equal_with_sharing_on_and_off(tmp_path, monkeypatch, algo):
    """The loop's own rows (chat-templated prompts, 3 groups of 3): score and one minibatch update."""
    calls = spy_shared_calls(monkeypatch)
    cfg = tiny_cfg(tmp_path, f"algorithm.name={algo}", "algorithm.kl_coef=0.1", "tasks_per_step=3",
                   "algorithm.group_size=3", "micro_batch_size=4", "share_prefix=false")
    models, batch = collect(cfg)
    models.model.train()
    grads, scored, shared_calls = {}, {}, []
    for share in (False, True):
        run_cfg = cfg.model_copy(update={"share_prefix": share})
        scored[share], _ = score(models, batch, run_cfg, ALGORITHMS[algo])
        shared_calls.append(len(calls))
        for p in trainable(models):
            p.grad = None
        torch.manual_seed(0)
        minibatch_backward(models, batch, torch.randperm(batch.rows), run_cfg, ALGORITHMS[algo])
        grads[share] = [p.grad.clone() for p in trainable(models)]
        shared_calls.append(len(calls))
    # off: no shared forward at all; on: scoring and the update both shared (the random row order was regrouped)
    assert shared_calls[:2] == [0, 0] and shared_calls[2] > 0 and shared_calls[3] > shared_calls[2]
    for field in ("ref_logprobs", "old_values"):
        if getattr(scored[False], field) is not None:
            torch.testing.assert_close(getattr(scored[True], field), getattr(scored[False], field), atol=1e-5, rtol=0)
    assert any(g.abs().max() > 0 for g in grads[False])
    for on, off in zip(grads[True], grads[False]):
        torch.testing.assert_close(on, off, atol=1e-5, rtol=0)
