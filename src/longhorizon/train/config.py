"""The training config: one typed class with four small sections, loaded from YAML.

    cfg = load_config("recipes/quickstart.yaml", ["algorithm.kl_coef=0.02", "steps=10"])

Unknown keys and bad values raise pydantic's `ValidationError` (the CLI prints
it as one line naming the key and exits with code 2); a missing file or a
malformed `--set` raises `UserError`.

Defaults that depend on the algorithm or the context (clip range, KL
estimator, loss aggregation) are left as None in the fields and resolved
when the config is validated (`resolved_clip_eps`, `resolved_kl_estimator`,
`resolved_aggregation`, called only by the validators), so a validated
config, and the RUN_DIR/config.yaml written from it, holds the values that
ran. Resolution happens after `--set` overrides are applied, so
`--set context=markovian` on a config that leaves `aggregation` out still
gets trace-length. A written config.yaml holds the resolved values as if
set by hand: `--resume` (which reloads it) continues with exactly the maths
that ran, even if a default changes in a later version or the context is
overridden; to get a new default, edit the original recipe, not the
run's record.

The held-out `eval:` section is the eval config of `longhorizon eval`
(`eval/config.py`'s `EvalConfig`); the keys it leaves out are filled from
this config (`_eval_inherits`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from longhorizon.config_io import apply_overrides, load, read_yaml  # noqa: F401  (read_yaml, apply_overrides: re-exported)
from longhorizon.context.settings import ContextSettings, context_field, context_options_field
from longhorizon.errors import UserError
from longhorizon.eval.config import EvalConfig
from longhorizon.models.settings import SamplerName, VLLMSettings, kv_cache_field, sampler_field, vllm_field
from longhorizon.train.credit_config import (CritiqueConfig, CurriculumConfig, EntropyConfig, ReplayConfig,
                                             RewardsConfig)

AlgorithmName = Literal["grpo", "rloo", "loop", "reinforce++", "ppo", "dpo", "ipo", "online_dpo", "dno", "inpo",
                        "p3o_v1", "p3o_v2", "nash_md", "nash_mp", "sft",
                        "reward_model", "preference_model", "reaction_model", "critique_grpo"]
Aggregation = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "trace-length"]

# Per-algorithm defaults for the fields left as None (see `resolved_*`).
DEFAULT_CLIP_EPS = {"loop": 0.1}  # LOOP, apple/ml-loop ppo_epsilon; 0.2 for the others (PPO)
# LOOP averages per trajectory; RLOO weighs each sequence 1/B (Ahmadian et al. 2024, seq-mean-token-sum)
DEFAULT_AGGREGATION = {"loop": "seq-mean-token-mean", "rloo": "seq-mean-token-sum"}  # token-mean otherwise
# The KL estimator: k1 where the KL is folded into the reward (RLOO, REINFORCE++, PPO-max), k3 in the loss (GRPO).
KL_IN_REWARD = ("rloo", "reinforce++", "ppo")
# On-policy REINFORCE: one gradient step per batch of samples (no ratio, no clipping).
ON_POLICY = ("rloo",)
# Models that learn from preference pairs (a Bradley-Terry reward model, a pairwise preference model), trained by
# `train/scorers.py` on `preferences` and evaluated on held-out pairs (`pairs_heldout`), not on env episodes.
PREFERENCE_MODELS = ("reward_model", "preference_model")
# RLUF's user-reaction model P[positive reaction] (`feedback/reaction.py`), trained by `train/scorers.py` on
# `reactions` (binary labels) and evaluated on held-out labels, not on env episodes.
REACTION_MODELS = ("reaction_model",)
# Offline training on a fixed set of pairs (`preferences`), by `train/offline.py` (which hands PREFERENCE_MODELS on).
OFFLINE_PREFERENCE = ("dpo", "ipo", *PREFERENCE_MODELS)
# Online preference optimisation on verifier-labelled pairs of the policy's own episodes (`train/online.py`):
# algorithm name -> its loss in `algorithms.PREFERENCE_LOSSES`.
ONLINE_PREFERENCE = {"online_dpo": "dpo", "dno": "dno", "inpo": "inpo", "p3o_v1": "p3o_v1", "p3o_v2": "p3o_v2"}
# The Nash games, policy episodes against opponent episodes (`train/nash.py`): Nash-MD's opponents come from the
# geometric mixture of policy and reference, Nash-MP's from the policy before and after a mirror-prox half-step.
NASH = ("nash_md", "nash_mp")
# Supervised fine-tuning on a fixed set of demonstrations (`demonstrations`), trained by `train/sft.py`.
SUPERVISED = ("sft",)
# Contexts whose episodes split into several rows (chunks / turns) that the paper normalises per trace
# (Delethink, seq-mean-token-norm-trace-length); they default to "trace-length" whatever the algorithm.
TRACE_CONTEXTS = ("markovian",)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AlgorithmConfig(Section):
    """Which RL algorithm, its credit assignment and its regularisers."""

    name: AlgorithmName = Field("grpo", description="grpo, rloo, loop, reinforce++ or ppo (RL on the env); critique_grpo (grpo with critiques and refinements, `algorithm.critique`); dpo or ipo (offline, on `preferences`); reward_model or preference_model (a Bradley-Terry reward model or a pairwise preference model, on `preferences`); online_dpo, dno, inpo, p3o_v1 or p3o_v2 (on verifier-labelled pairs of the policy's episodes); nash_md or nash_mp (the policy's episodes against opponents'); sft (supervised, on `demonstrations`)")
    group_size: int = Field(4, ge=1, description="G: episodes sampled per task (group methods compare them)")
    scale_by_std: bool = Field(True, description="grpo: divide by the group std (false = Dr.GRPO)")
    clip_eps: float | None = Field(None, gt=0, description="PPO clip epsilon; None = 0.1 for loop, 0.2 otherwise (resolved at validation)")
    clip_eps_high: float | None = Field(None, gt=0, description="upper clip (DAPO clip-higher); None = clip_eps (resolved at validation)")
    kl_coef: float = Field(0.0, ge=0, description="KL(pi || pi_ref) weight: in the loss (grpo) or in the reward (rloo, reinforce++, ppo)")
    kl_estimator: Literal["k1", "k2", "k3"] | None = Field(None, description="KL estimator (Schulman 2020): k1, k2 or k3; None = k1 when the KL is in the reward (rloo, reinforce++, ppo), k3 in the loss (grpo) (resolved at validation)")
    aggregation: Aggregation | None = Field(None, description="token-loss reduction; None = trace-length with the markovian context, else seq-mean-token-mean for loop, seq-mean-token-sum for rloo, token-mean otherwise (resolved at validation with the context)")
    credit: Literal["outcome", "per_turn", "eapo"] = Field("outcome", description="outcome: the episode return goes to every turn; per_turn: discounted return-to-go of turn rewards; eapo: round t of T gets turn_gamma^(T-1-t) * the episode return, group methods normalising over all rounds of a task's episodes (EAPO)")
    turn_gamma: float = Field(1.0, ge=0, le=1, description="per_turn and eapo credit: discount per turn")
    loop_abs_threshold: float = Field(0.01, ge=0, description="loop: drop rollouts with |A| below this")
    loop_normalize_std: bool = Field(False, description="loop: divide the LOO advantage by the group std")
    gae_gamma: float = Field(1.0, ge=0, le=1, description="ppo: GAE discount per token")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="ppo: GAE lambda")
    whiten_advantages: bool = Field(True, description="ppo: whiten GAE advantages over the batch (PPO-max)")
    value_coef: float = Field(0.5, ge=0, description="ppo: weight of the value loss")
    value_clip: float | None = Field(0.2, gt=0, description="ppo: value clipping range (None = off)")
    reward_norm: Literal["none", "scale", "normalize"] = Field("none", description="turn rewards divided by the running std (scale) or standardised (normalize)")
    reward_clip: float | None = Field(None, gt=0, description="clip turn rewards to [-c, c] after normalisation (None = off)")
    beta: float = Field(0.1, gt=0, description="dpo, ipo, online_dpo, dno: beta of the preference loss (strength of the implicit KL to the reference); nash_md, nash_mp: the KL-to-reference coefficient")
    pairing: Literal["best_worst", "all"] = Field("best_worst", description="online preference methods: pair each task's best and worst episode, or every two")
    min_margin: float = Field(0.0, ge=0, description="online preference methods: drop pairs whose return gap is below this (DNO's large-margin filter)")
    center_rewards_coef: float = Field(0.0, ge=0, description="reward_model: adds coef * mean((r_chosen + r_rejected)^2), TRL's center_rewards_coefficient (0 = off); preference_model: coef * mean((f(x,a,b) + f(x,b,a))^2), a penalty on position bias")
    eta: float = Field(10.0, gt=0, description="inpo: the no-regret step size eta (target eta/2)")
    tau: float = Field(0.01, ge=0, description="inpo: the KL-to-reference weight tau (eta * tau <= 1)")
    labeller: Literal["verifier", "reward_model", "preference_model", "judge", "judge_hindsight"] = Field("verifier", description="online preference and Nash methods: who says which episode of a pair is better: the env's verifier (higher return), a reward model, a preference model, a judge or a hindsight judge that sees both outcomes (feedback/labellers.py)")
    labeller_model: str | None = Field(None, description="the labeller's model: a reward / preference model directory, or a judge model")
    mixture_coef: float = Field(0.5, ge=0, le=1, description="nash_md: m of the opponents' geometric mixture pi^(1-m) pi_ref^m (TRL's default 0.5)")
    prox_eta: float = Field(1.0, gt=0, description="nash_mp: the mirror-prox step size eta (the proximal term is KL(pi || pi_k) / eta)")
    decoupled: bool = Field(False, description="decoupled PPO (AReaL, with rollout.max_staleness): clip the ratio to the proximal policy (the trainer's weights before this step's updates) and weight each token by pi_prox / pi_behaviour, dropped above behaviour_weight_cap")
    behaviour_weight_cap: float = Field(5.0, gt=0, description="decoupled PPO: tokens whose pi_prox / pi_behaviour exceeds this are left out (AReaL's behav_imp_weight_cap)")
    entropy: EntropyConfig = Field(default_factory=EntropyConfig, description="entropy-aware method: empg, epo, siren or steer (none = off)")
    rewards: RewardsConfig = Field(default_factory=RewardsConfig, description="fine-grained per-turn reward functions and G-RA gates (empty = the env's rewards)")
    replay: ReplayConfig = Field(default_factory=ReplayConfig, description="ARPO replay of successes into all-negative groups, task pool and task filter (off by default)")
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig, description="progressive difficulty on an env knob, and annealed privileged hints (off by default)")
    critique: CritiqueConfig = Field(default_factory=CritiqueConfig, description="critique_grpo: where the critiques come from and the policy-shaping gamma")

    @model_validator(mode="after")
    def _critique_only_for_critique_grpo(self) -> "AlgorithmConfig":
        if self.critique != CritiqueConfig() and self.name != "critique_grpo":
            raise ValueError(f"algorithm.critique is read by critique_grpo only, not {self.name}: remove it or set "
                             "algorithm.name: critique_grpo")
        if self.name == "critique_grpo" and self.group_size < 2:
            raise ValueError("critique_grpo needs group_size >= 2: G - 1 initial episodes and 1 refinement per task")
        return self

    @model_validator(mode="after")
    def _loop_has_no_kl(self) -> "AlgorithmConfig":
        if self.name == "loop" and self.kl_coef > 0:
            raise ValueError("kl_coef must be 0 for loop (LOOP uses no KL)")
        return self

    @model_validator(mode="after")
    def _span_rewards_unnormalised(self) -> "AlgorithmConfig":
        if self.rewards.has_spans and self.reward_norm != "none":
            raise ValueError("span rewards (rewards.components) sit on tokens and are not normalised: "
                             "set reward_norm: none, or use turn components only")
        return self

    @model_validator(mode="after")
    def _labeller_has_a_model(self) -> "AlgorithmConfig":
        if self.labeller != "verifier" and not self.labeller_model:
            raise ValueError(f"labeller {self.labeller} needs labeller_model (its model directory or name)")
        if self.labeller != "verifier" and self.pairing == "best_worst" and self.name in ONLINE_PREFERENCE:
            raise ValueError("best_worst pairing picks episodes by their returns (the verifier's); with labeller "
                             f"{self.labeller} use pairing: all")
        return self

    @model_validator(mode="after")
    def _inpo_mixture(self) -> "AlgorithmConfig":
        if self.name == "inpo" and self.eta * self.tau > 1:
            raise ValueError(f"inpo needs eta * tau <= 1, got {self.eta * self.tau:g}")
        return self

    @model_validator(mode="after")
    def _resolve(self) -> "AlgorithmConfig":
        """Fill the algorithm's defaults (the aggregation needs the context: `TrainConfig` fills it)."""
        self.clip_eps, self.clip_eps_high = resolved_clip_eps(self)
        self.kl_estimator = resolved_kl_estimator(self)
        return self


class OptimConfig(Section):
    """AdamW with linear warmup, then a constant or cosine learning rate."""

    lr: float = Field(1e-5, gt=0, description="peak learning rate of the policy")
    value_lr: float | None = Field(None, gt=0, description="ppo: learning rate of the value head (None = lr)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas")
    warmup_updates: int = Field(0, ge=0, description="optimizer updates of linear warmup")
    schedule: Literal["constant", "cosine"] = Field("constant", description="after warmup: constant, or cosine decay to min_lr_ratio * lr")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine: final learning rate as a fraction of lr")
    max_grad_norm: float | None = Field(1.0, gt=0, description="clip the global gradient norm (None = off)")


class LoraSettings(Section):
    """LoRA adapters via peft; with LoRA the reference model is the base with adapters disabled."""

    enabled: bool = Field(False, description="train LoRA adapters instead of every weight")
    r: int = Field(16, ge=1, description="LoRA rank")
    alpha: float = Field(32.0, gt=0, description="LoRA alpha (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout (0 keeps the first PPO ratio exactly 1)")
    target_modules: str | list[str] = Field("all-linear", description="modules that get adapters (peft's target_modules)")


class RolloutSettings(Section):
    """Where training episodes are sampled: in the training process (workers 0), or on Ray rollout workers
    (`rollout/ray_workers.py`: units of whole groups, each with its own sampling seed; re-run if a worker dies)."""

    workers: int = Field(0, ge=0, description="Ray rollout workers; 0 = sample in the training process, every episode of a step in one batch")
    address: str | None = Field(None, description="Ray cluster address (ray://host:10001 or host:6379); None = start a local Ray on this machine")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs Ray reserves for each worker (the local Ray gets workers * this)")
    gpus_per_worker: float = Field(0.0, ge=0, description="GPUs Ray reserves for each worker (0 on CPU)")
    torch_threads: int = Field(1, ge=1, description="torch CPU threads inside each worker")
    groups_per_unit: int = Field(1, ge=1, description="groups (tasks) a worker runs together as one batched rollout; a unit is recorded whole or re-run whole")
    max_attempts: int = Field(3, ge=1, description="times a unit may lose its worker before the step fails")
    max_staleness: int | None = Field(None, ge=0, description="asynchronous training (ASearcher): workers keep sampling the coming steps' units while the trainer updates, and no trained trajectory is more than this many weight versions old (rollout/asynchronous.py); 0 = synchronous on the workers, exactly; None = synchronous (each step waits for all its units)")


# Contexts that carry state from episode to episode (a memory store): workers would each keep their own.
STATEFUL_CONTEXTS = ("memory",)

# The held-out `eval:` section is an `EvalConfig`. Keys it leaves out come from the training config
# (EVAL_INHERITS) and from these held-out defaults; EVAL_POLICY keys must equal the training ones
# (the held-out eval runs the policy being trained, with the training sampler: with vllm, the same engine).
EVAL_DEFAULTS = {"seed": 1_000_000, "episodes": 32, "temperature": 0.0, "horizons": None}
EVAL_INHERITS = ("model", "dtype", "sampler", "vllm", "kv_cache_mb", "env_id", "env_kwargs", "wrappers", "context",
                 "context_options", "prefill", "stop", "max_new_tokens")
EVAL_POLICY = ("model", "dtype", "sampler", "vllm", "kv_cache_mb", "context", "context_options")


class TrainConfig(Section, ContextSettings):
    """Everything that defines a training run (written to RUN_DIR/config.yaml)."""

    model: str = Field("smollm2-135m", description="smollm2-135m, tiny-random, or a local HF model directory")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="dtype of the weights")
    autocast_bf16: bool = Field(False, description="run every forward pass under bf16 autocast (CPU or CUDA)")
    sampler: SamplerName = sampler_field()
    vllm: VLLMSettings = vllm_field()
    kv_cache_mb: int = kv_cache_field()
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:1, ...")
    torch_threads: int | None = Field(None, ge=1, description="CPU threads for torch (None = torch's default; 1 is fastest on a busy machine)")
    env_id: str = Field("longhorizon/Execution-v0", description="registered Gymnasium env id")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="env knobs, e.g. horizon, dict_size")
    task_mix: dict[str, list[Any]] = Field(default_factory=dict, description="knobs that vary from task to task, over env_kwargs: task k takes values[k % len(values)] of each, e.g. {horizon: [2, 4, 8, 16, 32]} mixes horizons in every batch (training tasks only; the held-out eval keeps eval.env_kwargs)")
    wrappers: list[dict[str, Any]] = Field(default_factory=list, description='feedback wrappers, innermost first: [{"name": "try_again", "max_attempts": 3}]')
    context: str = context_field()
    context_options: dict[str, Any] = context_options_field()
    prefill: bool = Field(True, description="pre-fill the env's response prefix (e.g. <answer>) as prompt tokens")
    stop: list[str] = Field(default_factory=list, description="extra stop strings (the env's own, e.g. </answer>, always apply)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of training rollouts (the loss uses the same)")
    max_new_tokens: int = Field(16, ge=1, description="token cap per model turn")
    seed: int = Field(0, ge=0, description="seed of everything; training task k uses env seed seed + k")
    steps: int = Field(10, ge=1, description="training steps (collect, credit, update)")
    tasks_per_step: int = Field(8, ge=1, description="distinct tasks per step; each is sampled group_size times (dpo, ipo, reward_model, preference_model: preference pairs per step)")
    epochs: int = Field(1, ge=1, description="K: passes over each step's episodes")
    num_minibatches: int = Field(1, ge=1, description="optimizer updates per epoch (the episodes are split evenly)")
    micro_batch_size: int = Field(4, ge=1, description="rows per forward/backward; a minibatch accumulates gradients over micro-batches")
    share_prefix: bool = Field(True, description="compute a token prefix that rows share (a group's prompt) once per forward pass, with rows that share one put in the same micro-batch; same results up to float rounding (false = every row computes its whole sequence)")
    gradient_checkpointing: bool = Field(False, description="recompute each layer's activations in the backward pass instead of keeping them: same gradients, about 1/3 more update compute, a fraction of the activation memory")
    checkpoint_every: int = Field(5, ge=0, description="save a checkpoint every this many steps and at the end (0 = never: no resume)")
    keep_checkpoints: int = Field(1, ge=1, description="checkpoints kept on disk (older ones are deleted); a full fine-tune of the bundled model's is ~1.6 GB (weights + AdamW state)")
    save_trajectories: bool = Field(True, description="write each step's training episodes to RUN_DIR/trajectories/")
    save_final_model: bool = Field(True, description="at the end, write a loadable HF model directory to RUN_DIR/model (LoRA merged; in bf16 when trained with dtype bfloat16 or autocast_bf16)")
    run_dir: str = Field("runs/train", description="the run directory")
    preferences: str | None = Field(None, description="dpo, ipo, reward_model, preference_model: the preference pairs: a JSONL file, a `longhorizon prefs build` directory, or a datasets directory in TRL's format (save_to_disk)")
    demonstrations: str | None = Field(None, description="sft: the demonstrations: a trajectories JSONL file (`longhorizon demos`), or a JSONL file / datasets directory (save_to_disk) of conversations in TRL's `messages` format")
    reactions: str | None = Field(None, description="reaction_model: the reaction labels: a JSONL file of prompt/completion/label rows (TRL's unpaired-preference format) or a datasets directory (save_to_disk), e.g. from `longhorizon feedback simulate-reactions` or OUT/critiques of `longhorizon feedback export` (feedback/reaction.py)")
    pairs_heldout: float = Field(0.2, ge=0, lt=1, description="reward_model, preference_model, reaction_model: fraction of the pairs (reaction labels) held out for eval/ pair accuracy and calibration, whole contexts (tasks) at a time (0 = no held-out eval)")
    pairs_heldout_seed: int = Field(0, ge=0, description="reward_model, preference_model: seed of the held-out split (not `seed`: runs with different training seeds keep the same held-out pairs)")
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig, description="algorithm and credit assignment")
    optim: OptimConfig = Field(default_factory=OptimConfig, description="optimizer and learning-rate schedule")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA adapters (off = full fine-tune)")
    rollout: RolloutSettings = Field(default_factory=RolloutSettings, description="where rollouts run: in process (workers 0) or on Ray workers")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="held-out evaluation (an eval config: keys left out come from this config; seed 1000000, 32 episodes, greedy, the training horizon)")

    @model_validator(mode="before")
    @classmethod
    def _eval_inherits(cls, data: Any) -> Any:
        """Fill the eval section's missing keys from the training config and the held-out defaults."""
        section = data.get("eval") or {} if isinstance(data, dict) else None
        if not isinstance(section, dict):
            return data
        inherited = {k: data[k] if k in data else cls.model_fields[k].get_default(call_default_factory=True)
                     for k in EVAL_INHERITS}
        defaults = {**EVAL_DEFAULTS, "episodes": 0} if _algorithm_name(data) in (*PREFERENCE_MODELS, *REACTION_MODELS) else EVAL_DEFAULTS
        return {**data, "eval": {**defaults, **inherited, **section}}

    @model_validator(mode="after")
    def _eval_runs_the_trained_policy(self) -> "TrainConfig":
        for key in EVAL_POLICY:
            if getattr(self.eval, key) != getattr(self, key):
                raise ValueError(f"eval.{key} must be the training {key} (the held-out eval runs the trained "
                                 f"policy); drop eval.{key}")
        return self

    @field_validator("eval")
    @classmethod
    def _held_out(cls, v: EvalConfig, info: ValidationInfo) -> EvalConfig:
        """Training task k uses env seed seed + k; the eval seeds must not be among them."""
        if not {"seed", "steps", "tasks_per_step"} <= info.data.keys():
            return v  # an earlier field failed; pydantic reports that one
        start = info.data["seed"]
        stop = start + info.data["steps"] * info.data["tasks_per_step"]
        if v.episodes and max(start, v.seed) < min(stop, v.seed + v.episodes):
            raise ValueError(f"held-out seeds {v.seed}..{v.seed + v.episodes - 1} overlap the training seeds {start}..{stop - 1}")
        return v

    @model_validator(mode="after")
    def _resolve_aggregation(self) -> "TrainConfig":
        """The loss aggregation depends on the context (trace-length for markovian); filled here."""
        self.algorithm.aggregation = resolved_aggregation(self.algorithm, self.context)
        return self

    @model_validator(mode="after")
    def _on_policy(self) -> "TrainConfig":
        """RLOO is on-policy REINFORCE (no ratio): one gradient step per batch of samples."""
        if self.algorithm.name in ON_POLICY:
            for key in ("epochs", "num_minibatches"):
                if getattr(self, key) != 1:
                    raise ValueError(f"{key} must be 1 for {self.algorithm.name} (on-policy REINFORCE: "
                                     "one update per batch of samples)")
        return self

    @model_validator(mode="after")
    def _offline_needs_pairs(self) -> "TrainConfig":
        if self.algorithm.name in OFFLINE_PREFERENCE and not self.preferences:
            raise ValueError(f"{self.algorithm.name} trains on preference pairs: set preferences to a pairs file "
                             "or directory (e.g. the output of `longhorizon prefs build`)")
        return self

    @model_validator(mode="after")
    def _reaction_model_needs_reactions(self) -> "TrainConfig":
        if self.algorithm.name in REACTION_MODELS and not self.reactions:
            raise ValueError(f"{self.algorithm.name} trains on reaction labels: set reactions to a JSONL file of "
                             "prompt/completion/label rows or a datasets directory (`longhorizon feedback "
                             "simulate-reactions`, or OUT/critiques of `longhorizon feedback export`)")
        return self

    @model_validator(mode="after")
    def _sft_needs_demonstrations(self) -> "TrainConfig":
        if self.algorithm.name in SUPERVISED and not self.demonstrations:
            raise ValueError("sft trains on demonstrations: set demonstrations to a trajectories file "
                             "(e.g. `longhorizon demos ENV --episodes N --out FILE`) or a `messages` dataset")
        if self.algorithm.name in SUPERVISED and self.algorithm.kl_coef > 0:
            raise ValueError("sft does not use algorithm.kl_coef (an RL option): remove it")
        return self

    @model_validator(mode="after")
    def _preference_models_eval_on_pairs(self) -> "TrainConfig":
        """A reward or preference model has no policy to run in the env: its eval is on held-out pairs."""
        if self.algorithm.name in (*PREFERENCE_MODELS, *REACTION_MODELS) and self.eval.episodes:
            held = "labels" if self.algorithm.name in REACTION_MODELS else "pairs"
            raise ValueError(f"{self.algorithm.name} is evaluated on held-out {held} (pairs_heldout), not on env "
                             "episodes: set eval.episodes to 0 or drop it")
        return self

    @model_validator(mode="after")
    def _preference_loops_take_no_rl_options(self) -> "TrainConfig":
        """The preference loops (train/offline.py, train/online.py) have no Ray workers, entropy methods, reward
        shaping or replay: refuse those options rather than ignore them."""
        if self.algorithm.name not in (*OFFLINE_PREFERENCE, *ONLINE_PREFERENCE, *NASH, *SUPERVISED, *REACTION_MODELS):
            return self
        ignored = {"rollout.workers": self.rollout.workers != 0,
                   "algorithm.entropy.method": self.algorithm.entropy.method != "none",
                   "algorithm.rewards.components": bool(self.algorithm.rewards.components),
                   "algorithm.replay.enabled": self.algorithm.replay.enabled,
                   "algorithm.curriculum": self.algorithm.curriculum.on}
        if used := [key for key, on in ignored.items() if on]:
            raise ValueError(f"{self.algorithm.name} does not use {', '.join(used)} (RL options): remove them")
        return self

    @model_validator(mode="after")
    def _checkpointing_without_shared_prefix(self) -> "TrainConfig":
        """transformers turns the cache off under gradient checkpointing, and a shared prefix runs on a cache."""
        if self.gradient_checkpointing and self.share_prefix:
            raise ValueError("gradient_checkpointing needs share_prefix=false (transformers drops the KV cache "
                             "that a shared prefix runs on while checkpointing); set one of them to false")
        return self

    @model_validator(mode="after")
    def _workers_sample_with_transformers(self) -> "TrainConfig":
        """Ray workers each hold a transformers sampler and no state shared between episodes."""
        if self.rollout.workers and self.sampler != "transformers":
            raise ValueError("rollout.workers runs transformers samplers; with sampler: vllm set rollout.workers: 0")
        if self.rollout.workers and self.context in STATEFUL_CONTEXTS:
            raise ValueError(f"rollout.workers needs a context without cross-episode state; {self.context!r} keeps "
                             "one (each worker would keep its own): set rollout.workers: 0")
        return self

    @model_validator(mode="after")
    def _critique_grpo_replays(self) -> "TrainConfig":
        """critique_grpo samples twice per step and replays the kept refinement through the policy's prompts."""
        if self.algorithm.name != "critique_grpo":
            return self
        if self.rollout.max_staleness is not None:
            raise ValueError("critique_grpo samples its refinements after its critiques, in the step: set "
                             "rollout.max_staleness: null (synchronous)")
        if self.context in (*STATEFUL_CONTEXTS, *TRACE_CONTEXTS):
            raise ValueError(f"critique_grpo replays each refinement turn by turn, which the {self.context!r} context "
                             "cannot (cross-episode state or chunked turns): use full, window or workspace")
        return self

    @field_validator("task_mix")
    @classmethod
    def _task_mix_lists(cls, mix: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if empty := [key for key, values in mix.items() if not values]:
            raise ValueError(f"task_mix: {', '.join(empty)} has no values")
        return mix

    @model_validator(mode="after")
    def _asynchronous_rollouts(self) -> "TrainConfig":
        """Asynchronous training samples the coming steps' tasks ahead, on Ray workers: nothing may choose a
        step's tasks from what the last step learned."""
        if self.algorithm.decoupled and self.algorithm.name not in ("grpo", "reinforce++", "ppo"):
            raise ValueError(f"algorithm.decoupled needs a clipped-ratio loss (grpo, reinforce++, ppo), not "
                             f"{self.algorithm.name}")
        if self.rollout.max_staleness is None:
            if self.algorithm.decoupled:
                raise ValueError("algorithm.decoupled (decoupled PPO) is for stale rollouts: set "
                                 "rollout.max_staleness, or drop algorithm.decoupled")
            return self
        if not self.rollout.workers:
            raise ValueError("rollout.max_staleness needs Ray rollout workers: set rollout.workers >= 1")
        ahead = {"algorithm.replay.filter_threshold (the task filter)": self.algorithm.replay.filter_threshold is not None,
                 "algorithm.curriculum": self.algorithm.curriculum.on}
        if used := [key for key, on in ahead.items() if on]:
            raise ValueError(f"rollout.max_staleness samples tasks ahead of training; {', '.join(used)} picks "
                             "them from the last step's results: drop it or rollout.max_staleness")
        return self

    @property
    def episodes_per_step(self) -> int:
        return self.tasks_per_step * self.algorithm.group_size

    @property
    def total_updates(self) -> int:
        return self.steps * self.epochs * self.num_minibatches


def _algorithm_name(data: dict[str, Any]) -> Any:
    """algorithm.name of a raw config dict (before validation), or None."""
    section = data.get("algorithm")
    return section.get("name") if isinstance(section, dict) else None


def resolved_clip_eps(cfg: AlgorithmConfig) -> tuple[float, float]:
    """(clip_low, clip_high) after algorithm defaults."""
    low = cfg.clip_eps if cfg.clip_eps is not None else DEFAULT_CLIP_EPS.get(cfg.name, 0.2)
    return low, cfg.clip_eps_high if cfg.clip_eps_high is not None else low


def resolved_kl_estimator(cfg: AlgorithmConfig) -> str:
    """As set; else k1 for a KL folded into the reward, k3 for a KL in the loss."""
    if cfg.kl_estimator:
        return cfg.kl_estimator
    return "k1" if cfg.name in KL_IN_REWARD else "k3"


def resolved_aggregation(cfg: AlgorithmConfig, context: str = "full") -> str:
    """The loss aggregation: as set; else per trace for Markovian (Delethink) contexts; else the algorithm's."""
    if cfg.aggregation:
        return cfg.aggregation
    if context in TRACE_CONTEXTS:
        return "trace-length"
    return DEFAULT_AGGREGATION.get(cfg.name, "token-mean")


# ------------------------------------------------------------------ loading


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """A validated config from a YAML file (or the defaults) plus `--set` overrides."""
    return load(TrainConfig, path, overrides)


def run_config(config: str | Path | None, overrides: list[str], resume: str | Path | None,
               out: str | Path | None) -> TrainConfig:
    """The config of `longhorizon train [CONFIG] [--set ...] [--resume RUN_DIR] [--out RUN_DIR]`.

    With --resume it is RUN_DIR/config.yaml (plus any --set); otherwise CONFIG.
    """
    if resume is not None:
        if config is not None or out is not None:
            raise UserError("--resume RUN_DIR continues that run with its own config; drop CONFIG and --out")
        saved = Path(resume) / "config.yaml"
        if not saved.exists():
            raise UserError(f"{resume} holds no training run (no config.yaml)")
        return load_config(saved, overrides).model_copy(update={"run_dir": str(resume)})
    if config is None:
        raise UserError("give a config file, e.g. longhorizon train recipes/quickstart.yaml, or --resume RUN_DIR")
    cfg = load_config(config, overrides)
    return cfg if out is None else cfg.model_copy(update={"run_dir": str(out)})
