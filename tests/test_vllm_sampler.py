"""The vLLM sampler against the transformers model it stands in for (bundled SmolLM2-135M, fp32).

Runs where vllm is installed (`.venv-vllm`, `python -m pytest -m vllm`; scripts/test.sh does it);
skipped elsewhere. One engine for the module.

Tolerance: both sides are fp32 but run different kernels (vLLM's pre-packed oneDNN GEMMs and
paged attention vs torch's matmul and SDPA), so sums are reduced in another order through 30
layers: the reference measured a max |diff| of 4.3e-5 per token. ATOL = 1e-3 leaves 20x room for
that and is still 30x below the errors these tests exist to catch: bf16 (0.03 per token), a
stale prefix cache after a weight update (0.09), a stale tied lm_head (0.44).
"""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch

pytest.importorskip("vllm")

from longhorizon.models import SamplingParams, TransformersSampler, load_model  # noqa: E402
from longhorizon.models.vllm_sampler import VLLMSampler, export_weights  # noqa: E402

pytestmark = pytest.mark.vllm
ATOL = 1e-3
PREAMBLE = "You are a helpful assistant. Answer in plain words, and keep to what is asked of you. " * 2
QUESTIONS = ["What is 2+2?", "Write a long story about a dragon who loves tea.", "List three colors."]
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=32)


def rng_states() -> tuple:
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


@pytest.fixture(scope="module")
def hf():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # much faster than 2 on a busy 2-core machine (transformers and vLLM alike)
    yield load_model("smollm2-135m", dtype="float32")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def engine(hf):
    """The engine, plus the global RNG states around its start-up (which seeds them all inside)."""
    before = rng_states()
    sampler = VLLMSampler.from_spec("smollm2-135m", GREEDY, dtype="float32", seed=123, tokenizer=hf.tokenizer)
    return sampler, before, rng_states()


@pytest.fixture(scope="module")
def prompts(hf):
    """Chat prompts longer than two KV blocks of 32 tokens, so the prefix cache holds full blocks."""
    def ids(question):
        out = hf.tokenizer.apply_chat_template([{"role": "user", "content": PREAMBLE + question}],
                                               add_generation_prompt=True, tokenize=True, return_dict=True)
        return list(out["input_ids"])
    return [ids(q) for q in QUESTIONS]


def teacher_forced(model, prompt, token_ids, params: SamplingParams) -> torch.Tensor:
    """log p(token_ids | prompt) from one forward pass, under temperature and top-p (greedy: temperature 1)."""
    from transformers import TopPLogitsWarper

    ids = torch.tensor([prompt + token_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()  # (T, V): each predicts the next id
    if params.temperature > 0:
        logits = logits / params.temperature
        if params.top_p < 1:
            logits = TopPLogitsWarper(params.top_p)(ids, logits)
    return torch.log_softmax(logits, -1).gather(1, torch.tensor(token_ids)[:, None])[:, 0]


def max_logprob_error(model, prompts, gens, params) -> float:
    return max((teacher_forced(model, p, g.token_ids, params) - torch.tensor(g.logprobs)).abs().max().item()
               for p, g in zip(prompts, gens))


def test_engine_start_leaves_the_global_rngs_alone(engine):
    _, before, after = engine
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]


@pytest.mark.parametrize("temperature,top_p", [(0.0, 1.0), (0.8, 1.0), (1.2, 0.8)])
def test_logprobs_match_a_teacher_forced_pass(hf, engine, prompts, temperature, top_p):
    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=24, seed=5)
    gens = engine[0].generate(prompts, params)
    assert sum(len(g.token_ids) for g in gens) >= 3 * 4 and all(len(g.logprobs) == len(g.token_ids) for g in gens)
    assert max_logprob_error(hf.model, prompts, gens, params) < ATOL


def test_calls_repeat_by_seed_and_leave_the_torch_rng_alone(engine, prompts):
    params = SamplingParams(temperature=1.0, max_new_tokens=16, seed=7)
    calls = engine[0].calls
    first, second = engine[0].with_params(params), engine[0].with_params(params)
    state = torch.get_rng_state()
    a0, a1 = first.generate(prompts), first.generate(prompts)
    b0 = second.generate(prompts)
    assert torch.equal(state, torch.get_rng_state())
    assert [g.token_ids for g in a0] == [g.token_ids for g in b0]  # call 0 of either: seed 7
    assert [g.token_ids for g in a0] != [g.token_ids for g in a1]  # call 1: seed 8
    assert first.calls == 2 and second.calls == 1 and engine[0].calls == calls


def test_ends_and_stop_strings_equal_the_transformers_sampler(hf, engine, prompts):
    """One row ends with EOS, one at the token cap, one at a stop string taken from its own greedy text."""
    reference = TransformersSampler(hf.model, hf.tokenizer, GREEDY)
    free = reference.generate(prompts)
    others = free[0].text + free[1].text
    words = [w for w in free[2].text.split() if len(w) >= 4 and w not in others]
    stop = words[len(words) // 2][1:]  # ends where a word ends, starts inside it
    params = SamplingParams(temperature=0.0, max_new_tokens=32, stop=(stop, "QQQ"))
    expected, got = reference.generate(prompts, params), engine[0].generate(prompts, params)
    assert sorted(g.finish_reason for g in expected) == ["eos", "length", "stop"]
    for e, g, p in zip(expected, got, prompts):
        assert (g.token_ids, g.text, g.finish_reason, g.prompt_ids) == (e.token_ids, e.text, e.finish_reason, p)
        assert max(abs(x - y) for x, y in zip(g.logprobs, e.logprobs)) < ATOL
    assert all(g.token_ids[-1] == hf.tokenizer.eos_token_id for g in got if g.finish_reason == "eos")
    assert all(stop in g.text for g in got if g.finish_reason == "stop")


def test_a_stop_string_in_the_prompt_only_does_not_stop(hf, engine, prompts):
    marker = "Zq#"
    prompt = hf.tokenizer.encode(f"The code is {marker}. Now write a poem about the sea.")
    params = SamplingParams(temperature=0.0, max_new_tokens=8, stop=(marker,))
    (gen,) = engine[0].generate([prompt], params)
    (ref,) = TransformersSampler(hf.model, hf.tokenizer).generate([prompt], params)
    assert gen.finish_reason == ref.finish_reason != "stop" and gen.token_ids == ref.token_ids


def perturbed(model, seed: int):
    """A copy with a new embedding (tied to the lm_head in SmolLM2) and one rescaled MLP."""
    new = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        embed = new.get_input_embeddings().weight
        embed.add_(0.02 * torch.randn(embed.shape, generator=gen))
        new.model.layers[3].mlp.down_proj.weight.mul_(1.5)
    return new


def test_after_a_weight_sync_outputs_follow_the_new_weights(hf, engine, prompts):
    """Catches a missing prefix-cache reset (the prompts' blocks are cached) and a stale tied lm_head."""
    sampler = engine[0]
    before = sampler.generate(prompts)  # also caches the prompts' KV under the old weights
    new = perturbed(hf.model, seed=1)
    try:
        seconds = sampler.sync_weights(new)
        after = sampler.generate(prompts)
        print(f"\nsync_weights: {seconds:.2f} s; max |diff| after sync "
              f"{max_logprob_error(new, prompts, after, GREEDY):.2e}")
        assert [g.token_ids for g in before] != [g.token_ids for g in after]
        assert max_logprob_error(new, prompts, after, GREEDY) < ATOL
    finally:
        sampler.sync_weights(hf.model)
    assert max_logprob_error(hf.model, prompts, sampler.generate(prompts), GREEDY) < ATOL


def test_a_lora_model_syncs_its_merged_weights(hf, engine, prompts):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(3)
    lora = get_peft_model(copy.deepcopy(hf.model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # B = 0 at init: make the adapters do something
    names = dict(export_weights(lora)).keys()
    assert names == hf.model.state_dict().keys()
    try:
        engine[0].sync_weights(lora)
        gens = engine[0].generate(prompts)
        assert max_logprob_error(lora, prompts, gens, GREEDY) < ATOL
        assert max_logprob_error(hf.model, prompts, gens, GREEDY) > 10 * ATOL  # the adapters count
    finally:
        engine[0].sync_weights(hf.model)
