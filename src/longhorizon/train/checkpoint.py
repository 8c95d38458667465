"""Crash-safe checkpoints: RUN_DIR/checkpoints/step_000012/ plus an atomic `latest` pointer.

A checkpoint holds the trainable weights (every weight, or only the LoRA
adapters), the value head, the optimizer and scheduler, the reward
normaliser, every RNG state (python, numpy, torch CPU and CUDA, the
sampler's call counter), the context strategy's state across episodes
(the memory strategy's lessons), the credit methods' running state (EPO's
entropy history, SIREN's anchor, the ARPO replay buffer and task filter),
the step and the data position.

Weights (the policy's trainable tensors, so only the adapters with LoRA, and
the value head) are safetensors files: `policy.safetensors`, `value_head.safetensors`.
The optimizer, scheduler, RNG and strategy states stay `torch.save` pickles:
they are nested dicts of tensors *and* Python objects (param-group settings,
the Mersenne-Twister tuple, lessons), which safetensors (flat name -> tensor)
cannot hold. Checkpoints from before safetensors (`weights.pt`) are refused
with an error that says so.

Writing is atomic at each level (`longhorizon.io`): files go into a temporary
directory, which is fsync'ed and renamed to `step_NNNNNN`; then `latest` is
rewritten through a temporary file and `os.replace`. Older checkpoints are deleted only after
that, so a SIGKILL at any moment leaves `latest` naming a complete
checkpoint (or no checkpoint at all), never a half-written one.

Debug hook: `LONGHORIZON_DEBUG_CHECKPOINT_SLEEP=STEP:SECONDS` sleeps halfway
through writing the checkpoint of step STEP, after creating the marker file
`SLEEPING` in the temporary directory, so a test can kill the process there.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from longhorizon.errors import UserError
from longhorizon.io import atomic_dir, atomic_write

SLEEP_ENV = "LONGHORIZON_DEBUG_CHECKPOINT_SLEEP"
STEP_RE = re.compile(r"^step_(\d{6,})$")


@dataclass
class Resumable:
    """Everything a checkpoint saves and restores, by reference."""

    models: Any  # train.model.Models
    optimizer: torch.optim.Optimizer
    scheduler: Any
    normalizer: Any  # train.rewards.RewardNormalizer
    sampler: Any  # models.TransformersSampler
    strategy: Any  # context.ContextStrategy (its state_dict: e.g. memory's lessons)
    credit: Any = None  # train.exploration.CreditState (EPO history, SIREN anchor, ARPO replay buffer)


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The directory `latest` names, or None if there is no complete checkpoint."""
    pointer = checkpoints_dir(run_dir) / "latest"
    if not pointer.exists():
        return None
    target = checkpoints_dir(run_dir) / pointer.read_text(encoding="utf-8").strip()
    return target if (target / "state.pt").exists() else None


def checkpoint_step(run_dir: Path) -> int | None:
    """The step of the latest complete checkpoint (None if there is none)."""
    latest = latest_checkpoint(run_dir)
    match = STEP_RE.match(latest.name) if latest is not None else None
    return int(match.group(1)) if match else None


def save_checkpoint(run_dir: Path, state: Resumable, step: int, data_position: int, keep: int) -> Path:
    """Write checkpoint `step` atomically, point `latest` at it, then prune old ones."""
    root = checkpoints_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)

    def write(tmp: Path) -> None:
        save_weights(tmp, trainable_state(state.models))
        _debug_sleep(tmp, step)
        torch.save(state.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save({"step": step, "data_position": data_position, "scheduler": state.scheduler.state_dict(),
                    "normalizer": state.normalizer.state_dict(), "rng": rng_state(state.sampler),
                    "context": state.strategy.state_dict(),
                    "credit": state.credit.state_dict() if state.credit is not None else {}}, tmp / "state.pt")

    atomic_dir(final, write, tmp=tmp)  # replaces a complete but unreferenced leftover of a killed run
    atomic_write(root / "latest", final.name + "\n")
    _prune(root, keep)
    return final


def load_checkpoint(path: Path, state: Resumable) -> dict[str, int]:
    """Restore everything from `path` in place; return {"step", "data_position"}."""
    weights = load_weights(path)
    params = dict(state.models.model.named_parameters())
    unknown = [n for n in weights["policy"] if n not in params]
    missing = [n for n, p in params.items() if p.requires_grad and n not in weights["policy"]]
    if unknown or missing:
        name = (unknown or missing)[0]
        raise UserError(f"checkpoint {path} does not match this model and config (tensor {name}); "
                        "was the model, lora or algorithm changed?")
    load_trainable_state(state.models, weights)
    state.optimizer.load_state_dict(_load(path / "optimizer.pt"))
    meta = _load(path / "state.pt")
    state.scheduler.load_state_dict(meta["scheduler"])
    state.normalizer.load_state_dict(meta["normalizer"])
    set_rng_state(meta["rng"], state.sampler)
    state.strategy.load_state_dict(meta.get("context", {}))  # {} in checkpoints from before it was saved
    if state.credit is not None:
        state.credit.load_state_dict(meta.get("credit", {}))
    return {"step": int(meta["step"]), "data_position": int(meta["data_position"])}


def clean_partial(run_dir: Path) -> None:
    """Remove temporary directories a killed run left behind."""
    for tmp in checkpoints_dir(run_dir).glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    for tmp in checkpoints_dir(run_dir).glob(".latest.*.tmp"):  # atomic_write's, for the `latest` pointer
        tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------ what is saved


def trainable_state(models: Any) -> dict[str, dict[str, torch.Tensor]]:
    """Trainable policy tensors (all weights, or only adapters) and the value head."""
    policy = {n: p.detach().cpu() for n, p in models.model.named_parameters() if p.requires_grad}
    head = models.value_head.state_dict() if models.value_head is not None else {}
    return {"policy": policy, "value_head": {k: v.cpu() for k, v in head.items()}}


def save_weights(directory: Path, weights: dict[str, dict[str, torch.Tensor]]) -> None:
    """One safetensors file per part: policy.safetensors, value_head.safetensors."""
    for part, tensors in weights.items():
        save_file({n: t.contiguous() for n, t in tensors.items()}, directory / f"{part}.safetensors")


def load_weights(directory: Path) -> dict[str, dict[str, torch.Tensor]]:
    if not (directory / "policy.safetensors").exists():
        raise UserError(f"checkpoint {directory} has no policy.safetensors: it was written before checkpoints "
                        "used safetensors (weights.pt) and cannot be resumed by this version; start a new run")
    return {part: load_file(directory / f"{part}.safetensors") for part in ("policy", "value_head")}


def load_trainable_state(models: Any, weights: dict[str, dict[str, torch.Tensor]]) -> None:
    """Copy what `trainable_state` saved into the live tensors."""
    params = dict(models.model.named_parameters())
    with torch.no_grad():
        for name, value in weights["policy"].items():
            params[name].copy_(value)
    if models.value_head is not None:
        models.value_head.load_state_dict(weights["value_head"])


def rng_state(sampler: Any) -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
             "sampler_calls": sampler.calls}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], sampler: Any) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    sampler.calls = int(state["sampler_calls"])


# ------------------------------------------------------------------ file helpers


def _load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=False)  # our own files: RNG states are pickled


def _prune(root: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (never the one `latest` names) and stale temporaries."""
    latest = (root / "latest").read_text(encoding="utf-8").strip()
    steps = sorted((p for p in root.iterdir() if STEP_RE.match(p.name)), key=lambda p: int(STEP_RE.match(p.name)[1]))
    for old in steps[:-keep]:
        if old.name != latest:
            shutil.rmtree(old, ignore_errors=True)


def _debug_sleep(tmp: Path, step: int) -> None:
    spec = os.environ.get(SLEEP_ENV, "")
    at, _, seconds = spec.partition(":")
    if spec and int(at) == step:
        (tmp / "SLEEPING").touch()
        time.sleep(float(seconds))
