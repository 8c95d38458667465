"""`longhorizon eval ... --diagnose NAME`: the horizon diagnostics, written into the run directory.

    json_path, png_path = diagnose("self-conditioning", cfg, DiagnoseOptions(error_rates=[0, 0.5, 1]))

- `self-conditioning` (`eval/self_conditioning.py`): RUN_DIR/self_conditioning.json
  (`rows`: error_rate, turn, wrong_in_history, episodes, accuracy, se),
  self_conditioning.png and self_conditioning.jsonl (every episode, with
  `metadata.error_rate`). The eval config's `horizons` are the measured turns.
- `drift` (`eval/drift.py`): RUN_DIR/drift.json (`curves`: label -> rows of
  turn, episodes, drift, se) and drift.png; the policy runs at the config's
  longest horizon without and with `reminder_every`, every episode to its
  last turn (an env's `stop_on_error` knob is set to False, as for
  self-conditioning, so later turns are not only the survivors').

The eval config gives the model, env, context, episodes and seed as for
`longhorizon eval`; RUN_DIR/config.yaml is written if the directory has none.
The diagnostics do not touch an evaluation's own files in the same directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from longhorizon.errors import UserError
from longhorizon.eval.config import EvalConfig, resolve
from longhorizon.io import atomic_write
from longhorizon.store import RunDir
from longhorizon.types import jsonable


class DiagnoseOptions(BaseModel):
    """The diagnostics' own settings (the CLI's --error-rates, --reference, --reminder-every, --env-follows)."""

    model_config = ConfigDict(extra="forbid")

    error_rates: list[float] = Field([0.0, 0.25, 0.5, 0.75, 1.0], description="self-conditioning: fractions of the history's answers made wrong")
    env_follows: str = Field("history", pattern="^(history|truth)$", description="self-conditioning: the env is given the answers the history shows (history) or the correct ones (truth)")
    reference: str | None = Field(None, description="drift: the reference model (name, HF directory, earlier checkpoint, or tiny-random:SEED)")
    reminder_every: int = Field(4, ge=1, description="drift: the reminder intervention's period, in turns")


def diagnose(name: str, cfg: EvalConfig, options: DiagnoseOptions) -> tuple[Path, Path]:
    """Run diagnostic `name`; return its JSON and PNG paths in cfg.run_dir."""
    if name not in DIAGNOSTICS:
        raise UserError(f"unknown diagnostic {name!r}; choose from {', '.join(DIAGNOSTICS)}")
    cfg = resolve(cfg)
    run_dir = RunDir(Path(cfg.run_dir))
    if not (run_dir.path / "config.yaml").is_file():
        run_dir.write_config(cfg.model_dump())
    return DIAGNOSTICS[name](cfg, options, run_dir.path)


def run_self_conditioning(cfg: EvalConfig, options: DiagnoseOptions, out: Path) -> tuple[Path, Path]:
    from longhorizon.eval.evaluate import check, make_policy
    from longhorizon.eval.self_conditioning import plot_self_conditioning, self_conditioning

    if cfg.horizon_knob is None:
        raise UserError(f"{cfg.env_id} has no horizon knob: self-conditioning needs one to set the measured turn")
    if any(not 0 <= r <= 1 for r in options.error_rates):
        raise UserError(f"--error-rates must lie in [0, 1], got {options.error_rates}")
    check(cfg)
    rows, trajectories = self_conditioning(cfg, lambda: make_policy(cfg), options.error_rates,
                                           options.env_follows)  # type: ignore[arg-type]
    atomic_write(out / "self_conditioning.jsonl", "".join(json.dumps(t.to_dict()) + "\n" for t in trajectories))
    result = {"diagnostic": "self-conditioning", **header(cfg), "error_rates": options.error_rates,
              "turns": cfg.horizons, "env_follows": options.env_follows, "rows": rows}
    return write(out, "self_conditioning", result,
                 lambda p: plot_self_conditioning(rows, p, f"{cfg.model} on {cfg.env_id}"))


def run_drift(cfg: EvalConfig, options: DiagnoseOptions, out: Path) -> tuple[Path, Path]:
    from longhorizon.eval.drift import drift_by_turn, load_reference, plot_drift, turn_drift
    from longhorizon.eval.evaluate import check, make_policy
    from longhorizon.eval.self_conditioning import run_on
    from longhorizon.eval.sweep import episode_specs
    from longhorizon.rollout import run_episodes, scripted_policy

    if scripted_policy(cfg.model) is not None or cfg.sampler != "transformers":
        raise UserError("drift needs a model policy on the transformers sampler (it scores the sampled tokens)")
    if options.reference is None:
        raise UserError("drift needs --reference MODEL (a name, a HF directory or an earlier checkpoint)")
    check(cfg)
    reference = load_reference(options.reference, cfg.dtype)
    base = {k: v for k, v in cfg.context_options.items() if k != "reminder_every"}
    curves = {}
    for label, opts in (("no reminder", base), (f"reminder every {options.reminder_every}",
                                                {**base, "reminder_every": options.reminder_every})):
        run_cfg = cfg.model_copy(update={"context_options": opts, "horizons": [max(cfg.horizons)],
                                         "env_kwargs": {**cfg.env_kwargs, **run_on(cfg.env_id)}})
        policy = make_policy(run_cfg)
        trajectories = run_episodes(episode_specs(run_cfg), policy)
        curves[label] = drift_by_turn([turn_drift(policy.sampler.model, reference, t) for t in trajectories])
    result = {"diagnostic": "drift", **header(cfg), "reference": options.reference, "horizon": max(cfg.horizons),
              "reminder_every": options.reminder_every, "curves": curves}
    return write(out, "drift", result, lambda p: plot_drift(curves, p, f"{cfg.model} vs {options.reference}"))


def header(cfg: EvalConfig) -> dict[str, Any]:
    return {"model": cfg.model, "env_id": cfg.env_id, "horizon_knob": cfg.horizon_knob, "episodes": cfg.episodes,
            "seed": cfg.seed, "context": cfg.context, "context_options": jsonable(cfg.context_options)}


def write(out: Path, stem: str, result: dict[str, Any], plot: Callable[[Path], Path]) -> tuple[Path, Path]:
    path = out / f"{stem}.json"
    atomic_write(path, json.dumps(jsonable(result), indent=2))
    return path, plot(out / f"{stem}.png")


DIAGNOSTICS: dict[str, Callable[[EvalConfig, DiagnoseOptions, Path], tuple[Path, Path]]] = {
    "self-conditioning": run_self_conditioning,
    "drift": run_drift,
}
