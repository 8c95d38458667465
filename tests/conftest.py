"""Shared fixtures: the tiny random model (built from a config, never downloaded)."""

from __future__ import annotations

import pytest

from longhorizon.models import LoadedModel, load_model


@pytest.fixture(scope="session")
def tiny() -> LoadedModel:
    """A 2-layer llama with the bundled tokenizer and chat template."""
    return load_model("tiny-random")
