"""Text environments, registered with Gymnasium under `longhorizon/<Name>-v0`.

`import longhorizon.envs` registers them all; then `gymnasium.make(id, horizon=...)`.
To add an env: write its module, then add one line to `ENTRY_POINTS`.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import gymnasium as gym

from longhorizon.envs.core.base import FreeText, TextEnv

ENTRY_POINTS: dict[str, str] = {
    "longhorizon/Discovery-v0": "longhorizon.envs.discovery.env:DiscoveryEnv",
    "longhorizon/Travel-v0": "longhorizon.envs.travel.env:TravelEnv",
    "longhorizon/Execution-v0": "longhorizon.envs.execution.env:ExecutionEnv",
    "longhorizon/Vending-v0": "longhorizon.envs.vending.env:VendingEnv",
    "longhorizon/Apps-v0": "longhorizon.envs.apps.env:AppsEnv",
    "longhorizon/Tabletop-v0": "longhorizon.envs.tabletop.env:TabletopEnv",
    "longhorizon/Compose-v0": "longhorizon.envs.compose.env:ComposeEnv",
    "longhorizon/HtmlToTsv-v0": "longhorizon.envs.longproc.html:HtmlToTsvEnv",
    "longhorizon/PathTraversal-v0": "longhorizon.envs.longproc.path:PathTraversalEnv",
    "longhorizon/TomTracking-v0": "longhorizon.envs.longproc.tom:TomTrackingEnv",
    "longhorizon/Countdown-v0": "longhorizon.envs.longproc.countdown:CountdownEnv",
    "longhorizon/Search-v0": "longhorizon.envs.search.env:SearchEnv",
    "longhorizon/LongWrite-v0": "longhorizon.envs.longwrite.env:LongWriteEnv",
    "longhorizon/JudgePairs-v0": "longhorizon.envs.judgepairs.env:JudgePairsEnv",
    "longhorizon/StepCritic-v0": "longhorizon.envs.stepcritic.env:StepCriticEnv",
}


def register_envs() -> None:
    """Register every longhorizon env with Gymnasium (safe to call twice)."""
    for env_id, entry_point in ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, disable_env_checker=True)


def list_envs() -> list[str]:
    """Ids of all registered longhorizon envs."""
    return sorted(ENTRY_POINTS)


def env_class(env_id: str) -> type[TextEnv]:
    """The class behind a registered id."""
    module, _, name = ENTRY_POINTS[env_id].partition(":")
    return getattr(importlib.import_module(module), name)


def knobs(env_id: str) -> dict[str, dict[str, Any]]:
    """Each knob of an env with its description and default value (from its knob model)."""
    return knob_table(env_class(env_id))


def knob_table(cls: type) -> dict[str, dict[str, Any]]:
    """A class's knobs: its `Knobs` model, else (envs defined outside longhorizon) `KNOBS` and the signature."""
    if getattr(cls, "Knobs", None) is not None:
        return cls.Knobs.table()
    params = inspect.signature(cls.__init__).parameters
    return {
        name: {"description": doc, "default": params[name].default if name in params else None}
        for name, doc in getattr(cls, "KNOBS", {}).items()
    }


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """`gymnasium.make` with a clear error for unknown ids."""
    if env_id not in ENTRY_POINTS and env_id not in gym.registry:
        raise KeyError(f"unknown env {env_id!r}; known: {', '.join(list_envs())}")
    return gym.make(env_id, **kwargs)


def knob_default(cls: type, name: str) -> Any:
    """The default value of one knob of an env class."""
    return knob_table(cls)[name]["default"]


register_envs()

__all__ = ["ENTRY_POINTS", "FreeText", "TextEnv", "env_class", "knob_default", "knob_table", "knobs", "list_envs", "make",
           "register_envs"]
