"""The evaluation config: one typed class for `longhorizon eval CONFIG.yaml --set ...` and the
training config's held-out `eval:` section.

    cfg = load_eval_config("recipes/eval/execution.yaml", ["episodes=8"])
    cfg = resolve(cfg)  # the horizon knob and horizons made concrete for cfg.env_id

In a training config, the keys the `eval:` section leaves out come from the
training config itself (model, env, context, token cap, ...) and from
held-out defaults (seed 1,000,000, 32 episodes, greedy, the training
horizon); see `train/config.py`. `every` is read by training only and
`run_dir` by `longhorizon eval` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from longhorizon.config_io import apply_overrides, read_yaml, set_key, validate
from longhorizon.context.settings import ContextSettings, context_field, context_options_field
from longhorizon.models.settings import SamplerName, VLLMSettings, kv_cache_field, sampler_field, vllm_field

AUTO = "auto"


class BestOfSettings(BaseModel):
    """Reward-guided best-of-N at every turn (`rollout/best_of_n.py`): N candidates, the scorer's favourite runs."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(4, ge=1, description="candidate actions sampled per episode and turn")
    scorer: Literal["judge", "trlm", "reward_model", "critic", "implicit"] = Field(description="judge (pointwise rubric judge), trlm (time-reversal score of the observation given the candidate), reward_model (a Bradley-Terry reward model's score of the episode with the candidate), critic (a DeepCritic step critic: the steps before the first wrong one), implicit (beta * (log pi_model - log pi_policy), e.g. a DPO-trained model)")
    model: str | None = Field(None, description="the scorer's model (a registered name or a model directory); None = the policy's own model (judge, trlm, critic); implicit and reward_model need one")
    beta: float = Field(1.0, gt=0, description="implicit: beta of the implicit reward")
    max_new_tokens: int = Field(256, ge=1, description="judge, critic: tokens the judge or critic may write")

    @model_validator(mode="after")
    def _implicit_needs_a_model(self) -> "BestOfSettings":
        if self.scorer == "implicit" and not self.model:
            raise ValueError("best_of.scorer implicit needs best_of.model (e.g. a DPO-trained model directory)")
        if self.scorer == "reward_model" and not self.model:
            raise ValueError("best_of.scorer reward_model needs best_of.model (a reward model directory: "
                             "`algorithm.name: reward_model`)")
        return self


class EvalConfig(ContextSettings):
    """Everything that defines a horizon evaluation (written to RUN_DIR/config.yaml)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m", description="smollm2-135m, tiny-random, oracle, noisy-oracle:p, or a local HF directory")
    env_id: str = Field("longhorizon/Execution-v0", description="registered env id")
    horizons: list[int] | None = Field([1, 2, 4, 8, 16, 32], description="values of the horizon knob to evaluate (None = its value in env_kwargs, else its default: in training, the training horizon)")
    horizon_knob: str | None = Field(AUTO, description="env knob the horizons set: auto = the env's own (HORIZON_KNOB, e.g. horizon, n_problems, days); None = run the env's own settings once")
    episodes: int = Field(16, ge=0, description="episodes per horizon (training: 0 = no held-out evaluation)")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="other env knobs, e.g. turn_complexity")
    wrappers: list[dict[str, Any]] = Field(default_factory=list, description='feedback wrappers, innermost first: [{"name": "try_again", "max_attempts": 3}]')
    context: str = context_field()
    context_options: dict[str, Any] = context_options_field()
    temperature: float = Field(0.0, ge=0, description="sampling temperature; 0 is greedy")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling threshold")
    max_new_tokens: int = Field(24, ge=1, description="token cap per model turn")
    stop: list[str] = Field(default_factory=list, description="extra stop strings (the env's own, e.g. </answer>, always apply)")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="model dtype: float32 or bfloat16 (float16 is refused: it is slow and overflows on CPU)")
    sampler: SamplerName = sampler_field()
    vllm: VLLMSettings = vllm_field()
    kv_cache_mb: int = kv_cache_field()
    prefill: bool = Field(True, description="pre-fill the env's response prefix (e.g. <answer>) in each model turn")
    s: float = Field(0.5, gt=0, lt=1, description="success threshold for the horizon length H_s")
    seed: int = Field(0, ge=0, description="episode i of every horizon uses env seed `seed + i`; also the sampling seed")
    best_of: BestOfSettings | None = Field(None, description="reward-guided best-of-N at every turn: {n, scorer, model} (None = one sample)")
    every: int = Field(0, ge=0, description="training only: evaluate every this many steps (0 = only before and after training)")
    run_dir: str = Field("runs/eval", description="longhorizon eval only: the run directory to write")

    @model_validator(mode="after")
    def _best_of_with_transformers(self) -> "EvalConfig":
        if self.best_of is not None and self.sampler != "transformers":
            raise ValueError("best_of scores candidates with transformers models: use sampler: transformers")
        return self

    @field_validator("horizons")
    @classmethod
    def _positive_horizons(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(h < 1 for h in v)):
            raise ValueError("horizons must be a non-empty list of positive integers")
        return None if v is None else sorted(set(v))


HorizonEvalConfig = EvalConfig  # the name it had before training shared it


def load_eval_config(path: str | Path | None, overrides: list[str] = (),
                     shorthands: dict[str, Any] | None = None) -> EvalConfig:
    """Defaults < the YAML file < the shorthand flags ({"env_kwargs.dict_size": 5, ...}) < `--set` overrides.

    A file's `context: {name: ..., k: ...}` is split into `context` and `context_options` first, so
    `--context-opt` / `--set context_options.X=...` add to the options it gives.
    """
    data = split_context(read_yaml(path) if path is not None else {})
    for key, value in (shorthands or {}).items():
        set_key(data, key, value)
    return validate(EvalConfig, apply_overrides(data, list(overrides)))


def split_context(data: dict[str, Any]) -> dict[str, Any]:
    """{context: {name: window, k: 4}} -> {context: window, context_options: {k: 4}} (else unchanged)."""
    context = data.get("context")
    if not isinstance(context, dict) or "name" not in context or data.get("context_options"):
        return data  # the config's own validation explains what is wrong, if anything
    options = dict(context)
    return {**data, "context": options.pop("name"), "context_options": options}


def resolve(cfg: EvalConfig) -> EvalConfig:
    """`horizon_knob: auto` and `horizons: None` made concrete for the env (an env without a knob runs once)."""
    knob = horizon_knob(cfg.env_id) if cfg.horizon_knob == AUTO else cfg.horizon_knob
    if knob is None:
        horizons = [1]
    elif cfg.horizons is None:
        horizons = [int(cfg.env_kwargs.get(knob, knob_default(cfg.env_id, knob)))]
    else:
        horizons = cfg.horizons
    return cfg.model_copy(update={"horizon_knob": knob, "horizons": horizons})


def horizon_knob(env_id: str) -> str | None:
    """The registered env's own horizon knob (None for envs that have none, or are not longhorizon's)."""
    from longhorizon.envs import env_class, list_envs

    return env_class(env_id).HORIZON_KNOB if env_id in list_envs() else None


def knob_default(env_id: str, knob: str) -> Any:
    from longhorizon.envs import knobs

    return knobs(env_id)[knob]["default"]
