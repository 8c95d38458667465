"""Checkpoint weights are safetensors; a checkpoint of the former torch.save format is refused clearly."""

import pytest
import torch
from safetensors.torch import load_file

from longhorizon.errors import UserError
from longhorizon.train.checkpoint import load_checkpoint, load_weights, save_weights


def test_weights_round_trip_through_safetensors(tmp_path):
    weights = {"policy": {"layer.lora_A.weight": torch.randn(4, 3), "layer.lora_B.weight": torch.randn(3, 4).t()},
               "value_head": {"weight": torch.randn(1, 8), "bias": torch.zeros(1)}}
    save_weights(tmp_path, weights)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.safetensors", "value_head.safetensors"]
    assert set(load_file(tmp_path / "policy.safetensors")) == set(weights["policy"])
    back = load_weights(tmp_path)
    for part in weights:
        for name, value in weights[part].items():
            assert torch.equal(back[part][name], value)


def test_empty_value_head_round_trips(tmp_path):
    save_weights(tmp_path, {"policy": {"w": torch.ones(2)}, "value_head": {}})
    assert load_weights(tmp_path)["value_head"] == {}


def test_a_checkpoint_of_the_old_format_is_refused(tmp_path):
    torch.save({"policy": {}, "value_head": {}}, tmp_path / "weights.pt")
    torch.save({"step": 1}, tmp_path / "state.pt")
    with pytest.raises(UserError, match="before checkpoints used safetensors"):
        load_checkpoint(tmp_path, state=None)
