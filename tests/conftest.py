"""Shared fixtures: the tiny random model (built from a config, never downloaded)."""

from __future__ import annotations

import pytest

from longhorizon.models import LoadedModel, load_model


@pytest.fixture(scope="session")
def tiny() -> LoadedModel:
    """A 2-layer llama with the bundled tokenizer and chat template."""
    return load_model("tiny-random")


@pytest.fixture(scope="module")
def reward_model_dir(tiny, tmp_path_factory):
    """A reward model directory: the tiny model with a seeded scalar head (`algorithm.name: reward_model`)."""
    import torch

    from longhorizon.feedback.reward_model import attach_score_head

    path = tmp_path_factory.mktemp("rm")
    torch.manual_seed(0)
    attach_score_head(tiny.model, tiny.tokenizer, "reward_model").save_pretrained(path)
    tiny.tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def local_ray():
    """A private local Ray (6 CPUs, no dashboard) for one test module's Ray workers."""
    import os
    import signal

    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    ray.init(address="local", num_cpus=6, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield
    ray.shutdown()
    for sig, handler in handlers.items():  # ray.init installs a SIGTERM handler that shutdown leaves behind
        signal.signal(sig, handler)
