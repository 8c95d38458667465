"""Model loading: tiny-random from a config, a local directory by path, the bundled GGUF conversion."""

import pytest
import torch

from longhorizon.errors import UserError
from longhorizon.models import bundled, load_model


def test_tiny_random_is_small_deterministic_and_uses_the_bundled_template(tiny):
    again = load_model("tiny-random")
    for (name, a), (_, b) in zip(tiny.model.named_parameters(), again.model.named_parameters()):
        assert torch.equal(a, b), name
    assert sum(p.numel() for p in tiny.model.parameters()) < 5_000_000
    assert "<|im_start|>" in tiny.tokenizer.chat_template
    assert tiny.model.config.vocab_size == len(tiny.tokenizer)


def test_local_directory_loads_by_path(tiny, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(loaded.model(ids).logits, tiny.model(ids).logits)


def test_unknown_model_and_dtype_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown model"):
        load_model(str(tmp_path / "missing"))
    with pytest.raises(UserError, match="dtype"):
        load_model("tiny-random", dtype="int3")


@pytest.mark.slow
def test_bundled_conversion_matches_the_gguf_model():
    from transformers import AutoModelForCausalLM

    path = bundled.model_dir()
    assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()
    converted = load_model("smollm2-135m")
    gguf = bundled.gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    ids = converted.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(converted.model(ids).logits, reference(ids).logits, atol=1e-4, rtol=0)
    assert converted.model.config.num_hidden_layers == 30 and converted.tokenizer.eos_token == "<|im_end|>"
