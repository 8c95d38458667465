"""Reward components that need a model or a whole group: judges and reward models, by name in `algorithm.rewards`.

    algorithm:
      rewards:
        components:
          - {name: env}
          - {name: checklist, weight: 0.5}                            # a turn function (segment_rewards.py)
          - {name: judge, model: smollm2-135m, weight: 0.5}           # pointwise judge, 0..1 on the last turn
          - {name: judge_pairwise, model: runs/judge/model, weight: 1}  # Think-RM over each task's group
          - {name: reward_model, model: runs/rm/model, per: episode}  # a Bradley-Terry reward model
          - {name: judge_hindsight, model: smollm2-135m, per: turn}   # RLHS: rates after seeing what happened next
          - {name: reaction, model: runs/reaction/model, weight: 0.2}  # RLUF: P[positive user reaction]

Each source returns per-turn scores for every episode (the judgement sits on the
episode's last turn), so it mixes, gates (G-RA) and logs (`rewards/return_NAME`)
like every other component:

- "judge": the pointwise rubric judge's score in [0, 1] (`feedback/judges.py`).
- "judge_pairwise": Think-RM's pairwise RLHF reward over a group (methods-2.md
  §1): for every two episodes i < j of a task (same group id) the judge gives
  s_ij (A = y_i, B = y_j, negative when A is better); d_ij = -s_ij, d_ji = s_ij,
  and episode i's score is (1/(G-1)) sum_{j != i} d_ij / 3, in [-1, 1]. With
  GRPO on this component alone, the group-normalised advantage is Think-RM's up
  to its denominator (`algorithms.PAIRWISE_ADVANTAGES["think_rm"]` is the exact
  form); mixing it with other components is ours. G(G-1)/2 judge calls per task.
- "critic": a DeepCritic-style step critic (`feedback/critic.py`) finds the
  first wrong step; the episode scores the fraction of its steps before it
  ((k - 1) / n, 1 when none is wrong).
- "reward_model": a Bradley-Terry reward model (`longhorizon train` with
  `algorithm.name: reward_model`, `feedback/reward_model.py`) scores the whole
  episode on its last turn (`per: episode`), or each turn with the increment
  r_k - r_{k-1} of the scores of the episode's prefixes up to turn k (`per:
  turn`; they sum to the episode's score, so per-turn credit sees where the
  reward model's opinion rose or fell). It reads each episode as the pairs it
  was trained on (the env's system prompt, the first observation, the turns).
- "judge_hindsight": RLHS's hindsight judge (`feedback/rlhs.py`, methods-2.md
  §7a): the paper's 1-5 satisfaction rubric, rated after the judge has seen the
  env's continuation (the final message and the verifier's result; per turn,
  everything after that turn), mapped to (s - 1) / 4 in [0, 1]; `per: episode`
  rates the whole episode on its last turn, `per: turn` each action on its turn.
  "judge_foresight" is the same prompt without the outcome (RLHS's baseline), for
  comparison with it and with "judge".
- "reaction": RLUF's user-reaction model (`feedback/reaction.py`, `longhorizon
  train` with `algorithm.name: reaction_model`): P[positive reaction] of each
  turn's action (`per: turn`) or of the whole episode on its last turn (`per:
  episode`). Also logs `rewards/reaction_prob_mean` and the hacking probe
  `rewards/reaction_seeking_frac` (the share of actions that end by fishing for
  a reaction; RLUF saw such hacking when the reaction weight was pushed up).

The judge model is loaded once (a registered name or a model directory), frozen,
in the training dtype; it judges greedily by default. Its outputs are cached in
RUN_DIR/judge_cache.sqlite by content hash, so a resumed run does not pay twice.
Metrics: `rewards/judge_parsed_frac` (the step's judge outputs that held a
usable verdict) and `rewards/judge_cache_hits` (the step's verdicts read from the cache).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from longhorizon.feedback.judges import Judge, JudgeCache, Verdict, episode_text
from longhorizon.feedback.rlhs import foresight_scores, hindsight_scores
from longhorizon.models import SamplingParams, TransformersSampler, load_model
from longhorizon.types import Trajectory

Metrics = dict[str, float]


def last_turn(traj: Trajectory, value: float) -> list[float]:
    scores = [0.0] * len(traj.turns)
    if scores:
        scores[-1] = value
    return scores


def pointwise_scores(judge: Judge, trajectories: list[Trajectory]) -> tuple[list[list[float]], list[Verdict]]:
    verdicts = judge.rate([episode_text(t) for t in trajectories])
    return [last_turn(t, v.score) for t, v in zip(trajectories, verdicts)], verdicts


def pairwise_scores(judge: Judge, trajectories: list[Trajectory]) -> tuple[list[list[float]], list[Verdict]]:
    """Think-RM over each group: score_i = (1/(G-1)) sum_j d_ij / 3 with d_ij = -s(A = y_i, B = y_j)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, t in enumerate(trajectories):
        groups[t.group_id].append(i)
    pairs = [(i, j) for ids in groups.values() for a, i in enumerate(ids) for j in ids[a + 1:]]
    texts = [episode_text(t) for t in trajectories]
    verdicts = judge.compare([(texts[i][0], texts[i][1], texts[j][1]) for i, j in pairs])
    d = defaultdict(float)
    for (i, j), v in zip(pairs, verdicts):
        d[i] -= v.score  # Hong et al. 2025, batch_pref.py: d_ij = -s_ij, d_ji = +s_ij
        d[j] += v.score
    size = {i: len(ids) for ids in groups.values() for i in ids}
    return [last_turn(t, d[i] / max(size[i] - 1, 1) / 3) for i, t in enumerate(trajectories)], verdicts


def critic_scores(judge: Judge, trajectories: list[Trajectory]) -> tuple[list[list[float]], list[Verdict]]:
    """DeepCritic as a reward: the fraction of the steps before the critic's first wrong step, on the last turn."""
    from longhorizon.feedback.critic import solution_steps, steps_before_error

    items = [(episode_text(t)[0], solution_steps(t)) for t in trajectories]
    critiques = judge.critique(items)
    scores = [last_turn(t, steps_before_error(c.first_error, len(steps)))
              for t, c, (_, steps) in zip(trajectories, critiques, items)]
    return scores, [Verdict(float(c.first_error or 0), c.first_error is not None, c.reason, "") for c in critiques]


BATCH_REWARDS: dict[str, Callable[[Judge, list[Trajectory]], tuple[list[list[float]], list[Verdict]]]] = {
    "judge": pointwise_scores,
    "judge_pairwise": pairwise_scores,
    "critic": critic_scores,
    "judge_hindsight": hindsight_scores,  # RLHS (feedback/rlhs.py); these two take the component's `per`
    "judge_foresight": foresight_scores,
}
PER_JUDGES = ("judge_hindsight", "judge_foresight")


def reward_model_scores(model: Any, per: str, systems: Callable[[list[Trajectory]], list[str | None]],
                        trajectories: list[Trajectory]) -> list[list[float]]:
    """A Bradley-Terry reward model's scores: the episode's on its last turn, or per turn the increments
    r_k - r_{k-1} of the scores of the episode's prefixes (they sum to the whole episode's score)."""
    prompts = systems(trajectories)
    if per == "episode":
        return [last_turn(t, r) for t, r in zip(trajectories, model.score_episodes(trajectories, prompts))]
    return [[r - prev for r, prev in zip(rs, [0.0, *rs[:-1]])] for rs in model.score_turns(trajectories, prompts)]


@dataclass
class RewardSources:
    """The model-scored components of a run (judges, reward models), built once; judges share one cache."""

    scorers: dict[str, Callable[[list[Trajectory]], list[list[float]]]] = field(default_factory=dict)
    judges: dict[str, Judge] = field(default_factory=dict)
    cache: JudgeCache | None = None
    last: dict[str, list[Verdict]] = field(default_factory=dict)
    probes: Metrics = field(default_factory=dict)  # the last step's reaction metrics

    @classmethod
    def build(cls, components: list[Any], run_dir: Path | None, dtype: str = "float32",
              env_kwargs: dict[str, Any] | None = None, wrappers: list[dict[str, Any]] | None = None) -> "RewardSources":
        out = cls()
        loaded: dict[str, Any] = {}
        for c in components:
            if c.name in BATCH_REWARDS:
                out.cache = out.cache or (JudgeCache(Path(run_dir) / "judge_cache.sqlite") if run_dir is not None else None)
                lm = loaded.setdefault(c.model, load_model(c.model, dtype))
                lm.model.eval().requires_grad_(False)
                params = SamplingParams(temperature=c.temperature, max_new_tokens=c.max_new_tokens, seed=0)
                sampler = TransformersSampler(lm.model, lm.tokenizer, params, kv_cache_bytes=0)
                out.judges[c.name] = Judge(sampler, name=f"{c.model}", cache=out.cache, max_chars=c.max_chars)
                options = {"per": c.per} if c.name in PER_JUDGES else {}  # RLHS's judges take the component's `per`
                out.scorers[c.name] = functools.partial(out._judged, c.name, options)
            elif c.name == "reward_model":
                from longhorizon.feedback.reward_model import load_reward_model, system_prompts

                model = load_reward_model(c.model, dtype=dtype)
                model.model.requires_grad_(False)
                systems = functools.partial(system_prompts, env_kwargs=env_kwargs, wrappers=wrappers)
                out.scorers[c.name] = functools.partial(reward_model_scores, model, c.per, systems)
            elif c.name == "reaction":
                from longhorizon.feedback.reaction import load_reaction_model

                model = load_reaction_model(c.model, dtype=dtype)
                model.model.requires_grad_(False)
                out.scorers[c.name] = functools.partial(out._reacted, model, c.per)
        return out

    def handles(self, name: str) -> bool:
        return name in self.scorers

    def scores(self, name: str, trajectories: list[Trajectory]) -> list[list[float]]:
        return self.scorers[name](trajectories)

    def _judged(self, name: str, options: dict[str, Any], trajectories: list[Trajectory]) -> list[list[float]]:
        out, self.last[name] = BATCH_REWARDS[name](self.judges[name], trajectories, **options)
        return out

    def _reacted(self, model: Any, per: str, trajectories: list[Trajectory]) -> list[list[float]]:
        from longhorizon.feedback.reaction import reaction_scores

        out, self.probes = reaction_scores(model, per, trajectories)
        return out

    def metrics(self) -> Metrics:
        probes, self.probes = self.probes, {}
        verdicts = [v for vs in self.last.values() for v in vs]
        if not verdicts:
            return probes
        hits = float(self.cache.hits if self.cache else 0)
        if self.cache:
            self.cache.hits = self.cache.misses = 0  # per step
        self.last = {}
        return {**probes, "judge_parsed_frac": sum(v.parsed for v in verdicts) / len(verdicts), "judge_cache_hits": hits}

    def close(self) -> None:
        if self.cache:
            self.cache.close()
