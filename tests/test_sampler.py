"""The sampler's log-probs must be the behaviour log-probs a teacher-forced pass gives."""

import pytest
import torch

from longhorizon.models import SamplingParams, TransformersSampler


def chat_ids(tok, text):
    return tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                   tokenize=True, return_dict=False)


def teacher_forced(model, prompt, ids, temperature, top_p=1.0):
    """Log-prob of each id under softmax(logits / T), restricted to the top-p nucleus when top_p < 1."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt + ids])).logits[0, len(prompt) - 1 : -1].float() / temperature
    logp = torch.log_softmax(logits, -1)
    if top_p < 1:
        sorted_lp, order = logp.sort(-1, descending=True)
        drop_sorted = sorted_lp.exp().cumsum(-1) - sorted_lp.exp() >= top_p  # tokens after the nucleus is full
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logp = torch.log_softmax(logits.masked_fill(drop, float("-inf")), -1)
    return logp.gather(-1, torch.tensor(ids)[:, None])[:, 0]


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 1.0), (1.3, 0.9)])
def test_logprobs_match_teacher_forcing(tiny, temperature, top_p):
    tok = tiny.tokenizer
    prompts = [chat_ids(tok, "hello there"), chat_ids(tok, "a much longer prompt " * 5)]  # different lengths: left padding
    sampler = TransformersSampler(tiny.model, tok, SamplingParams(temperature=temperature, top_p=top_p,
                                                                   max_new_tokens=12, seed=3))
    for gen, prompt in zip(sampler.generate(prompts), prompts):
        assert gen.prompt_ids == prompt and len(gen.token_ids) == len(gen.logprobs) > 0
        expected = teacher_forced(tiny.model, prompt, gen.token_ids, temperature, top_p)
        torch.testing.assert_close(torch.tensor(gen.logprobs), expected, atol=1e-4, rtol=0)


def test_greedy_returns_model_logprobs_and_argmax(tiny):
    tok = tiny.tokenizer
    prompt = chat_ids(tok, "count")
    gen = TransformersSampler(tiny.model, tok, SamplingParams(temperature=0, max_new_tokens=6)).generate([prompt])[0]
    with torch.no_grad():
        logits = tiny.model(torch.tensor([prompt + gen.token_ids])).logits[0, len(prompt) - 1 : -1]
    assert gen.token_ids == logits.argmax(-1).tolist()
    torch.testing.assert_close(torch.tensor(gen.logprobs), teacher_forced(tiny.model, prompt, gen.token_ids, 1.0),
                               atol=1e-4, rtol=0)


def test_seed_makes_calls_repeatable_and_calls_differ(tiny):
    tok, params = tiny.tokenizer, SamplingParams(temperature=1.0, max_new_tokens=8, seed=11)
    prompts = [chat_ids(tok, "x")] * 3
    first = TransformersSampler(tiny.model, tok, params).generate(prompts)
    again = TransformersSampler(tiny.model, tok, params)
    assert [g.token_ids for g in again.generate(prompts)] == [g.token_ids for g in first]
    assert [g.token_ids for g in again.generate(prompts)] != [g.token_ids for g in first]  # call 2 uses seed + 1


def test_max_new_tokens_and_stop_strings(tiny):
    tok = tiny.tokenizer
    prompt = chat_ids(tok, "go")
    free = TransformersSampler(tiny.model, tok, SamplingParams(temperature=0, max_new_tokens=10)).generate([prompt])[0]
    assert len(free.token_ids) == 10 and free.finish_reason == "length"
    stop = tok.decode(free.token_ids[3:5])  # a string the greedy run will produce at tokens 3-4
    params = SamplingParams(temperature=0, max_new_tokens=10, stop=(stop,))
    gen = TransformersSampler(tiny.model, tok, params).generate([prompt])[0]
    assert gen.finish_reason == "stop" and stop in gen.text
    assert gen.token_ids == free.token_ids[: len(gen.token_ids)] and len(gen.token_ids) <= 5
    assert stop not in tok.decode(gen.token_ids[:-1])


def test_batch_size_chunks_give_same_shapes(tiny):
    tok = tiny.tokenizer
    prompts = [chat_ids(tok, f"p{i}") for i in range(5)]
    sampler = TransformersSampler(tiny.model, tok, SamplingParams(max_new_tokens=4), batch_size=2)
    assert len(sampler.generate(prompts)) == 5


def test_bad_sampling_params_are_rejected():
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)
