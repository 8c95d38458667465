"""Who says which of two samples is better: the env's verifier, a reward model, a preference model or a judge.

A labeller gives, for each candidate pair (the shared context, continuation A, continuation B, and their
returns), P(A ≻ B) in [0, 1] (`LABELLERS`, by name):

- "verifier": 1 if A's return is higher, 0 if lower, 1/2 on a tie;
- "reward_model": sigmoid(r(x, A) - r(x, B)) of a Bradley-Terry reward model (`algorithm.name: reward_model`);
- "preference_model": P(A ≻ B | x) of a pairwise preference model (`algorithm.name: preference_model`);
- "judge": Think-RM's strength s in -3..3 (negative when A is better) mapped to 1/2 - s/6, so -3 gives 1,
  3 gives 0, and an unusable verdict (s = 0) a tie. The strength is kept as `PreferencePair.strength`
  (the same convention).
- "judge_hindsight": RLHS's hindsight preference (`feedback/rlhs.py`): the judge reads both runs, each followed
  by what happened after it (`Candidate.outcome_a` / `outcome_b`: the env's final message and the verifier's
  result), and answers 1 or 2: P(A ≻ B) = 1 or 0, an unusable answer 1/2 (a tie).

Used by `longhorizon prefs build` (`label:`), and by the online preference and Nash trainers
(`algorithm.labeller`), where the verifier stays the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from longhorizon.feedback.preferences import Text


@dataclass(frozen=True)
class Candidate:
    """Two continuations of one context, with the returns the env gave them."""

    context: Text
    a: Text
    b: Text
    return_a: float = 0.0
    return_b: float = 0.0
    outcome_a: str = ""  # what happened after A (`rlhs.outcome_text`), for the hindsight judge
    outcome_b: str = ""


@dataclass(frozen=True)
class Label:
    prob: float  # P(A ≻ B)
    strength: int | None = None  # the judge's Think-RM strength, negative when A is better

    @property
    def preferred(self) -> str:
        return "a" if self.prob > 0.5 else "b" if self.prob < 0.5 else "tie"


Labeller = Callable[[Sequence[Candidate]], list[Label]]


def as_text(text: Text) -> str:
    """Messages as `role: content` lines (what a judge reads); plain text as it is."""
    return text if isinstance(text, str) else "\n\n".join(f"{m['role']}: {m['content']}" for m in text)


def verifier(candidates: Sequence[Candidate]) -> list[Label]:
    return [Label(1.0 if c.return_a > c.return_b else 0.0 if c.return_a < c.return_b else 0.5) for c in candidates]


def reward_model_labeller(model: Any) -> Labeller:
    def label(candidates: Sequence[Candidate]) -> list[Label]:
        scores = model.score([(c.context, side) for c in candidates for side in (c.a, c.b)])
        diff = torch.tensor(scores[0::2], dtype=torch.float64) - torch.tensor(scores[1::2], dtype=torch.float64)
        return [Label(p) for p in torch.sigmoid(diff).tolist()]  # Bradley-Terry

    return label


def preference_model_labeller(model: Any) -> Labeller:
    def label(candidates: Sequence[Candidate]) -> list[Label]:
        return [Label(p) for p in model.probs([(c.context, c.a, c.b) for c in candidates])]

    return label


def judge_labeller(judge: Any) -> Labeller:
    def label(candidates: Sequence[Candidate]) -> list[Label]:
        verdicts = judge.compare([(as_text(c.context), as_text(c.a), as_text(c.b)) for c in candidates])
        return [Label(0.5 - v.score / 6, strength=int(v.score) if v.parsed else None) for v in verdicts]  # Think-RM

    return label


def make_labeller(name: str, model: str | None = None, dtype: str = "float32", max_new_tokens: int = 512) -> Labeller:
    """The labeller `name`, loading its model (a reward or preference model directory, or a judge model)."""
    if name == "verifier":
        return verifier
    if not model:
        raise ValueError(f"the {name} labeller needs a model")
    if name == "reward_model":
        from longhorizon.feedback.reward_model import load_reward_model

        return reward_model_labeller(load_reward_model(model, dtype=dtype))
    if name == "preference_model":
        from longhorizon.feedback.reward_model import load_preference_model

        return preference_model_labeller(load_preference_model(model, dtype=dtype))
    from longhorizon.feedback.judges import Judge
    from longhorizon.models import SamplingParams, TransformersSampler, load_model

    lm = load_model(model, dtype)
    sampler = TransformersSampler(lm.model.eval(), lm.tokenizer, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens),
                                  kv_cache_bytes=0)
    if name == "judge_hindsight":
        from longhorizon.feedback.rlhs import hindsight_labeller

        return hindsight_labeller(Judge(sampler, name=model))
    return judge_labeller(Judge(sampler, name=model))


def episode_candidates(trajectories: Sequence[Any], pairs: Sequence[tuple[int, int]],
                       systems: Sequence[str | None] | None = None,
                       opponents: Sequence[Any] | None = None) -> list[Candidate]:
    """Candidates for whole episodes: pair (i, j) is episode i of `trajectories` against episode j of `opponents`
    (default: the same list), in the context they share (episode i's system prompt and first observation)."""
    from longhorizon.feedback.build import context_messages, continuation_messages
    from longhorizon.feedback.rlhs import outcome_text

    others = trajectories if opponents is None else opponents
    systems = systems or [None] * len(trajectories)
    return [Candidate(context_messages(trajectories[i], 0, systems[i]), continuation_messages(trajectories[i], 0),
                      continuation_messages(others[j], 0), trajectories[i].total_reward, others[j].total_reward,
                      outcome_text(trajectories[i]), outcome_text(others[j]))
            for i, j in pairs]


def training_labeller(algorithm: Any, dtype: str, env_kwargs: dict[str, Any], wrappers: list[dict[str, Any]],
                      ) -> tuple[Labeller, Callable[[Sequence[Any]], list[str | None] | None]]:
    """A trainer's labeller (`algorithm.labeller`, `labeller_model`) and how it finds each episode's system prompt
    (the verifier needs none; models read the episode as the pairs they were trained on did)."""
    labeller = make_labeller(algorithm.labeller, algorithm.labeller_model, dtype)
    if labeller is verifier:
        return labeller, lambda trajectories: None
    from longhorizon.feedback.reward_model import system_prompts

    return labeller, lambda trajectories: system_prompts(trajectories, env_kwargs, wrappers)


LABELLERS = ("verifier", "reward_model", "preference_model", "judge", "judge_hindsight")
SOURCES = {"verifier": "verifier", "reward_model": "model", "preference_model": "model", "judge": "judge",
           "judge_hindsight": "judge"}
