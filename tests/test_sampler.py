"""The sampler's log-probs must be the behaviour log-probs a teacher-forced pass gives."""

import weakref

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


# ------------------------------------------------------------------ the lean log-prob gathering


class StackingSampler(TransformersSampler):
    """The former implementation: every step's scores kept and stacked to (B, T, V), then gathered (no KV reuse)."""

    def _generate_batch(self, prompts, params):
        from longhorizon.models.sampler import StopOnText, left_pad, trim

        input_ids, attention_mask = left_pad(prompts, self.tokenizer.pad_token_id)
        stopper = StopOnText(self.tokenizer, params.stop, input_ids.shape[1])
        from transformers import GenerationConfig

        greedy = params.temperature == 0
        config = GenerationConfig(  # the former config: transformers' warpers, every step's scores returned
            do_sample=not greedy, temperature=None if greedy else params.temperature,
            top_p=None if greedy else params.top_p, top_k=None if greedy else 0,
            max_new_tokens=params.max_new_tokens, output_scores=True, return_dict_in_generate=True,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params.seed)
            result = self.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                         generation_config=config, stopping_criteria=[stopper])
        new_ids = result.sequences[:, input_ids.shape[1]:]
        logprobs = torch.stack([torch.log_softmax(s.float(), dim=-1) for s in result.scores], dim=1)
        gens = []
        for i, p in enumerate(prompts):
            gen = trim(self.tokenizer, p, new_ids[i].tolist(), [0.0] * new_ids.shape[1], stopper.ends.get(i))
            gen.logprobs = logprobs[i, torch.arange(len(gen.token_ids)), torch.tensor(gen.token_ids)].tolist()
            gens.append(gen)
        return gens


class EosAs:
    """The tokenizer with another end-of-sequence id, so tiny-random's rows end at different lengths."""

    def __init__(self, tokenizer, eos_id):
        self._tok, self.eos_token_id = tokenizer, eos_id

    def __getattr__(self, name):
        return getattr(self._tok, name)


def ending_some_rows_early(gens):
    """A token that, taken as EOS, ends at least one row early and leaves the rows of different lengths."""
    def lengths(tok):
        return {g.token_ids.index(tok) + 1 if tok in g.token_ids else len(g.token_ids) for g in gens}
    candidates = sorted({t for g in gens for t in g.token_ids})
    return next(t for t in candidates if len(lengths(t)) > 1)


@pytest.mark.parametrize("temperature,top_p", [(0.0, 1.0), (1.0, 1.0), (0.8, 0.9), (1.3, 0.7)])
def test_logprobs_equal_the_stacking_implementation(tiny, temperature, top_p):
    tok = tiny.tokenizer
    prompts = [chat_ids(tok, "hi")] + [tok.encode(t) for t in ("a longer prompt " * 4, "third", "x y z")]
    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=16, seed=5)
    free = TransformersSampler(tiny.model, tok, params).generate(prompts)
    eos_tok = EosAs(tok, ending_some_rows_early(free))
    new = TransformersSampler(tiny.model, eos_tok, params).generate(prompts)
    old = StackingSampler(tiny.model, eos_tok, params).generate(prompts)
    assert "eos" in {g.finish_reason for g in new} and len({len(g.token_ids) for g in new}) > 1
    for a, b in zip(new, old):
        assert a.token_ids == b.token_ids and a.finish_reason == b.finish_reason
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-6, rtol=0)


class LiveBytes(torch.utils._python_dispatch.TorchDispatchMode):
    """Peak bytes held by tensors created inside the mode (storages counted once, freed when unreferenced)."""

    def __init__(self):
        super().__init__()
        self.live, self.peak, self.refs = 0, 0, {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                self._track(t)
        return out

    def _track(self, t):
        key = t.untyped_storage().data_ptr()
        if key not in self.refs:
            self.refs[key] = [t.untyped_storage().nbytes(), 0]
            self.live += self.refs[key][0]
            self.peak = max(self.peak, self.live)
        self.refs[key][1] += 1
        weakref.finalize(t, self._release, key)

    def _release(self, key):
        entry = self.refs[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self.refs[key]


def peak_bytes(sampler_class, tiny, new_tokens):
    params = SamplingParams(temperature=1.0, max_new_tokens=new_tokens, seed=1)
    sampler = sampler_class(tiny.model, EosAs(tiny.tokenizer, -1), params)  # no row ever ends early
    prompts = [chat_ids(tiny.tokenizer, "p")] * 4
    with LiveBytes() as mode:
        gens = sampler.generate(prompts)
    assert all(len(g.token_ids) == new_tokens for g in gens)
    return mode.peak


@pytest.mark.parametrize("sampler_class,scales", [(TransformersSampler, False), (StackingSampler, True)])
def test_peak_memory_does_not_grow_with_tokens_times_vocab(tiny, sampler_class, scales):
    """32 more tokens of 4 rows cost 2 x 4 x 32 x V x 4 bytes when scores are kept and stacked; none when gathered."""
    growth = peak_bytes(sampler_class, tiny, 40) - peak_bytes(sampler_class, tiny, 8)
    step_scores = 4 * 32 * tiny.model.config.vocab_size * 4  # (B, 32, V) float32
    assert (growth > step_scores) == scales, (growth, step_scores)
