"""Config sections for long-horizon credit and exploration: `algorithm.entropy`, `algorithm.rewards`, `algorithm.replay`.

Everything is off by default, so a config that leaves them out runs exactly as before.

    algorithm:
      entropy: {method: empg, empg_zeta: 0.1}
      rewards: {components: [{name: success}, {name: correct, weight: 0.1}], gates: [1.0]}
      replay: {enabled: true, task_pool: 64, filter_threshold: 0.0}
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from longhorizon.train.segment_rewards import SEGMENT_REWARDS, SPAN_REWARDS

EntropyMethodName = Literal["none", "empg", "epo", "siren", "steer"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntropyConfig(_Section):
    """One entropy-aware method on top of the algorithm (defaults from each paper's code or pseudocode)."""

    method: EntropyMethodName = Field("none", description="none, empg (advantage modulation), epo (entropy regulariser with smoothing), siren (selective anchored entropy), steer (token reweighting)")
    empg_k: float = Field(1.0, ge=0, description="empg: k of the self-calibrated scaling g(H) = exp(-k H_norm) / mean")
    empg_k_f: float = Field(1.0, ge=0, description="empg: k_f of the future-clarity bonus f(H) = exp(-k_f H_norm)")
    empg_zeta: float = Field(0.1, ge=0, description="empg: weight zeta of the future-clarity bonus (0 = off)")
    empg_normalize: bool = Field(False, description="empg: whiten the modulated advantages over the batch's sampled tokens ([UNVERIFIED] in the paper)")
    epo_coef: float = Field(0.001, ge=0, description="epo: entropy coefficient c_H")
    epo_smooth_coef: float = Field(1.0, ge=0, description="epo: smoothing coefficient c_s")
    epo_r_min: float = Field(0.0, ge=0, description="epo: lower band ratio (README 0; code defaults 0.5 / 0.8)")
    epo_r_max: float = Field(2.0, gt=0, description="epo: upper band ratio (README 2.0)")
    epo_out_penalty: float = Field(0.1, ge=0, description="epo: penalty beta_out of a token outside the band (0.1 ALFWorld, 0.05 ScienceWorld)")
    epo_smooth_from_turn: int = Field(25, ge=0, description="epo: smoothing is on in a micro-batch holding a turn index >= this (code: max_step // 2 = 25)")
    epo_phase_weights: bool = Field(False, description="epo: multiply the smoothing penalty by the phase weight w(step) (enable_smooth_weights)")
    epo_max_epochs: int = Field(150, ge=1, description="epo: E of the phase weight, in training steps (hard-coded 150 in the code)")
    siren_coef: float = Field(0.005, ge=0, description="siren: alpha of alpha (Hsel - H_anchor)^2")
    siren_top_p: float = Field(0.8, gt=0, le=1, description="siren: nucleus p of the top-p entropy")
    siren_top_k: int = Field(10000, ge=1, description="siren: tokens ranked before the nucleus cut")
    siren_quantile: float = Field(0.8, ge=0, le=1, description="siren: per-response quantile; tokens above it are regularised")
    steer_lambda_min: float = Field(0.8, gt=0, le=1, description="steer: smallest token weight lambda_min")


JUDGES = ("judge", "judge_pairwise", "critic",  # components scored by a generative judge (train/reward_sources.py)
          "judge_hindsight", "judge_foresight")  # RLHS (feedback/rlhs.py)
MODEL_SCORED = (*JUDGES, "reward_model", "reaction")  # components that need a `model`


class RewardComponent(_Section):
    """One named reward function (per turn, per span, or a judge) and its weight in the mix."""

    name: str = Field(description="a per-turn reward function (env, success, correct, format, checklist, length, think_format), a span reward function (repeated_sentence, repeated_line), a judge (judge: pointwise 0..1; judge_pairwise: Think-RM over each task's group; critic: DeepCritic's first wrong step, the fraction of steps before it; judge_hindsight: RLHS's 1-5 satisfaction after seeing what happened next, (s - 1) / 4; judge_foresight: the same without the outcome), reward_model (a trained Bradley-Terry reward model) or reaction (RLUF: P[positive user reaction] of a trained reaction_model)")
    weight: float = Field(1.0, description="its weight in the dense per-turn reward")
    model: str | None = Field(None, description="judges: the judge model (a registered name such as smollm2-135m, or a model directory); reward_model, reaction: the trained model's directory; frozen")
    per: Literal["episode", "turn"] = Field("episode", description="reward_model: score the whole episode (on its last turn), or each turn (the increase of the score of the episode's prefix); judge_hindsight, judge_foresight, reaction: rate the whole episode (on its last turn), or each turn's action on its turn")
    max_new_tokens: int = Field(512, ge=1, description="judges: tokens the judge may write (its reasoning and verdict)")
    temperature: float = Field(0.0, ge=0, description="judges: sampling temperature (0 = greedy, deterministic)")
    max_chars: int = Field(4000, ge=100, description="judges: longer contexts and answers are cut in the middle to this many characters")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in SEGMENT_REWARDS and v not in SPAN_REWARDS and v not in MODEL_SCORED:
            raise ValueError(f"unknown segment reward {v!r}: use one of {', '.join([*SEGMENT_REWARDS, *SPAN_REWARDS, *MODEL_SCORED])}")
        return v

    @model_validator(mode="after")
    def _judges_need_a_model(self) -> "RewardComponent":
        if self.name in MODEL_SCORED and not self.model:
            example = {"reward_model": "RUN_DIR/model of a reward_model run", "reaction": "RUN_DIR/model of a "
                       "reaction_model run"}.get(self.name, "smollm2-135m (or a model directory)")
            raise ValueError(f"{self.name} needs a model: add model: {example}")
        if self.name not in MODEL_SCORED and self.model:
            raise ValueError(f"{self.name} takes no model (only {', '.join(MODEL_SCORED)} do)")
        return self


class RewardsConfig(_Section):
    """Fine-grained per-turn rewards mixed from named functions, optionally gated by priority (G-RA)."""

    components: list[RewardComponent] = Field(default_factory=list, description="per-turn reward functions, highest priority first; empty = the env's turn rewards as they are")
    gates: list[float] | None = Field(None, description="G-RA: component c counts only if every component j < c has an episode total >= gates[j] (one gate per component but the last); None = no gating")
    normalize: Literal["none", "group"] = Field("none", description="group: LongWriter-Zero's advantage averaging: each component's episode total is standardised within its task's group ((R - mean) / std, as GRPO) and put on the episode's last turn before the weighted mix; with weights 1/C, credit outcome and algorithm.scale_by_std false the advantage is the mean of the components' own GRPO advantages; none = mix the raw scores")

    @property
    def has_spans(self) -> bool:
        return any(c.name in SPAN_REWARDS for c in self.components)

    @model_validator(mode="after")
    def _normalised_components_are_per_turn(self) -> "RewardsConfig":
        if self.normalize != "none" and self.has_spans:
            raise ValueError("normalize: group standardises episode totals; span components sit on tokens: "
                             "drop them or set normalize: none")
        return self

    @model_validator(mode="after")
    def _one_gate_per_level(self) -> "RewardsConfig":
        if self.gates is not None and len(self.gates) != len(self.components) - 1:
            raise ValueError(f"gates needs one value per component but the last: {len(self.components)} components, "
                             f"{len(self.gates)} gates")
        return self


class CurriculumConfig(_Section):
    """Curricula: the env's difficulty knob follows the rolling success rate; the oracle's action as a hint."""

    knob: str | None = Field(None, description="progressive difficulty: the env knob to raise (e.g. horizon, n_problems); None = off")
    start: float | None = Field(None, description="the knob's first value (None = its env_kwargs value, else the env's default)")
    step: float = Field(1.0, gt=0, description="how much the knob moves at a time")
    max: float | None = Field(None, description="never above this (and never outside the knob's own range)")
    min: float | None = Field(None, description="never below this (None = the start value)")
    raise_at: float = Field(0.8, ge=0, le=1, description="raise the knob when the rolling success rate reaches this")
    lower_at: float = Field(0.2, ge=0, le=1, description="lower it when the rolling success rate falls to this")
    window: int = Field(32, ge=1, description="episodes in the rolling success rate (cleared at every move)")
    hint_prob: float = Field(0.0, ge=0, le=1, description="privileged hints: at step 1, the probability that an observation shows the oracle's next action (prompt, never loss; the held-out eval never shows hints)")
    hint_steps: int = Field(0, ge=0, description="the hint probability falls linearly to 0 over this many steps (0 = it stays at hint_prob)")

    @model_validator(mode="after")
    def _ordered(self) -> "CurriculumConfig":
        if self.lower_at >= self.raise_at:
            raise ValueError(f"lower_at ({self.lower_at}) must be below raise_at ({self.raise_at})")
        return self

    @property
    def on(self) -> bool:
        return self.knob is not None or self.hint_prob > 0


class ReplayConfig(_Section):
    """ARPO: replay a stored success into all-negative groups; optionally filter always/never-solved tasks."""

    enabled: bool = Field(False, description="replace the first slot of an all-negative group with a stored success of its task")
    buffer_size: int = Field(8, ge=1, description="successes kept per task (FIFO)")
    success_threshold: float = Field(0.1, description="an episode is a success if its outcome (success 1/0, else the return) exceeds this")
    fail_std: float = Field(0.05, ge=0, description="a group is all-negative if the std of its outcomes is below this ...")
    fail_mean: float = Field(0.2, description="... and their mean is below this")
    task_pool: int | None = Field(None, ge=1, description="cycle over this many tasks (env seeds seed .. seed + pool - 1) so tasks recur; None = every task is new")
    filter_threshold: float | None = Field(None, ge=0, lt=0.5, description="skip tasks whose success rate is <= this or >= 1 - this (None = no filter)")
    filter_min_attempts: int = Field(4, ge=1, description="episodes of a task recorded before the filter judges it")


class CritiqueConfig(_Section):
    """Critique-GRPO (`algorithm.name: critique_grpo`, `train/critique.py`): critiques, refinements, policy shaping."""

    source: Literal["simple", "simple_gt", "feedback", "model", "critic"] = Field("simple_gt", description="who writes each critique: simple (correct or incorrect), simple_gt (and the ground truth: the oracle's answers; the paper's script), feedback (FeedbackLoop's rule generator on the first wrong turn), model (a model writes it, seeing the ground truth) or critic (a DeepCritic step critic's per-step critique)")
    model: str | None = Field(None, description="sources model and critic: the critique model (a registered name such as smollm2-135m, or a model directory); frozen, greedy")
    max_new_tokens: int = Field(256, ge=1, description="sources model and critic: tokens the critique model may write")
    gamma: float = Field(0.1, gt=0, description="policy shaping f(p) = p / (p + gamma) on the refinement's tokens (the code's p_div_p_0.1)")
    max_chars: int = Field(2000, ge=100, description="the previous attempt and the ground truth are cut in the middle to this many characters in the refinement prompt")

    @model_validator(mode="after")
    def _model_source_has_a_model(self) -> "CritiqueConfig":
        if self.source in ("model", "critic") and not self.model:
            raise ValueError(f"critique source {self.source} needs critique.model (a registered name or a model directory)")
        if self.source not in ("model", "critic") and self.model:
            raise ValueError(f"critique.model is used only with the sources model and critic, not {self.source}")
        return self
