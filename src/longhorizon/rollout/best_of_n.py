"""Reward-guided best-of-N at every turn: sample N candidate actions, execute the one a scorer prefers.

DeformPAM's reward-guided action selection (Chen, Xue et al., ICRA 2025, methods-2.md §10),
mapped to text agents: at each turn the policy samples N candidate actions for every live
episode (N batched calls of the wrapped `ModelPolicy`), a scorer rates them, and the episode
executes the best; it works with every env and context strategy because it only wraps `act`.
The turn's `info["policy"]` records `best_of`, every candidate's score and the chosen index.

Scorers (`SCORERS`, picked by name in the eval config's `best_of: {n, scorer, model}`):
- "judge": the pointwise rubric judge (`feedback/judges.py`) on (the episode so far and the
  current observation, the candidate);
- "trlm": Time-Reversal scoring, TRLM-Fo (Yerram et al., NeurIPS 2024, methods-2.md §6): the
  mean log-prob of the current observation (the query) given the candidate under a forward
  model asked to work backwards, `TRLM_INSTRUCTION` (the paper's wording is UNVERIFIED; ours).
  Length-normalised (mean over the query's tokens), so queries of any length compare;
- "reward_model": a Bradley-Terry reward model (`algorithm.name: reward_model`, `best_of.model` its
  directory) scores the episode so far with the candidate as its last turn, r(first prompt, every turn), as
  it scores whole episodes (`RewardModel.score_episodes`, with the env's system prompt);
- "critic": the DeepCritic step critic (`feedback/critic.py`, e.g. a model trained on StepCritic-v0) reads
  the episode so far with the candidate as its last step and names the first wrong step k; the score is
  the steps before it, (k - 1) / n (1 when none is wrong, 0 when its answer cannot be read), so a candidate
  it blames scores below one it passes;
- "implicit": DeformPAM's implicit reward, beta (log pi_theta(a|s) - log pi_ref(a|s)) summed over
  the candidate's tokens, with pi_theta the scorer model (e.g. DPO-trained from the policy) and
  pi_ref the policy that sampled, both teacher-forced at temperature 1.
Ties keep the first candidate; a candidate that did not fit the context scores -inf.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from longhorizon.context.base import encode, render
from longhorizon.feedback.judges import Judge
from longhorizon.rollout.runner import Action, LiveEpisode
from longhorizon.types import Trajectory, Turn

Scorer = Callable[[list[LiveEpisode], list[Action]], list[float]]  # one score per (episode, its candidate)
TRLM_INSTRUCTION = ("Below is a response written by an assistant. Write the message from the user that this "
                    "response answers.")


class BestOfNPolicy:
    """Wraps a model policy: N candidates per episode and turn, the scorer's favourite is executed."""

    def __init__(self, policy: Any, n: int, scorer: Scorer):
        if n < 1:
            raise ValueError(f"best-of-N needs n >= 1, got {n}")
        self.policy, self.n, self.scorer = policy, n, scorer
        self.sampler, self.strategy = policy.sampler, policy.strategy

    def act(self, episodes: list[LiveEpisode]) -> list[Action]:
        candidates = [self.policy.act(episodes) for _ in range(self.n)]  # (n, E)
        scores = [self.scorer(episodes, cands) for cands in candidates]  # (n, E)
        chosen = []
        for e in range(len(episodes)):
            column = [-float("inf") if candidates[k][e].overflow else scores[k][e] for k in range(self.n)]
            best = max(range(self.n), key=lambda k: (column[k], -k))  # ties: the first
            action = candidates[best][e]
            action.info = {**action.info, "best_of": self.n, "scores": column, "chosen": best}
            chosen.append(action)
        return chosen

    def end_episode(self, trajectory: Any) -> None:
        self.policy.end_episode(trajectory)

    def end_rollout(self) -> None:
        self.policy.end_rollout()


# ------------------------------------------------------------------ scorers


def transcript(episode: LiveEpisode) -> tuple[str, str]:
    """(the first observation, the turns so far then the current observation) of a live episode."""
    turns = episode.trajectory.turns
    first = turns[0].observation if turns else episode.observation
    parts = [f"[Agent]\n{t.action}\n\n[Environment]\n{nxt}" for t, nxt in
             zip(turns, [t.observation for t in turns[1:]] + [episode.observation])]
    return first, "\n\n".join(parts)


def judge_scorer(judge: Judge) -> Scorer:
    def score(episodes: list[LiveEpisode], actions: list[Action]) -> list[float]:
        items = []
        for e, a in zip(episodes, actions):
            task, so_far = transcript(e)
            items.append((task, f"{so_far}\n\n[Agent]\n{a.text}" if so_far else a.text))
        return [v.score for v in judge.rate(items)]

    return score


def with_candidate(episode: LiveEpisode, action: Action) -> Trajectory:
    """The episode so far with the candidate as its last turn (a copy; the live episode is untouched)."""
    t = episode.trajectory
    return Trajectory(env_id=t.env_id, seed=t.seed, group_id=t.group_id, horizon=t.horizon, metadata=t.metadata,
                      turns=[*t.turns, Turn(observation=episode.observation, action=action.text)])


def reward_model_scorer(model: Any) -> Scorer:
    """r(first prompt, every turn so far and the candidate) of a Bradley-Terry reward model."""
    def score(episodes: list[LiveEpisode], actions: list[Action]) -> list[float]:
        return model.score_episodes([with_candidate(e, a) for e, a in zip(episodes, actions)],
                                    [e.agent_spec.system_prompt for e in episodes])

    return score


def critic_scorer(judge: Judge) -> Scorer:
    """The steps before the first one the step critic finds wrong, (k - 1) / n, with the candidate as step n."""
    from longhorizon.feedback.critic import solution_steps, steps_before_error

    def score(episodes: list[LiveEpisode], actions: list[Action]) -> list[float]:
        trajs = [with_candidate(e, a) for e, a in zip(episodes, actions)]
        items = [(t.turns[0].observation, solution_steps(t)) for t in trajs]
        return [steps_before_error(c.first_error, len(steps)) for c, (_, steps) in zip(judge.critique(items), items)]

    return score


@torch.no_grad()
def continuation_logprobs(model: Any, prompt: list[int], continuation: list[int]) -> torch.Tensor:
    """(len(continuation),) log-probs of `continuation` after `prompt` under `model` (temperature 1)."""
    ids = torch.tensor([prompt + continuation], device=model.device)
    logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    return torch.log_softmax(logits, -1).gather(-1, ids[0, len(prompt):, None])[:, 0].cpu()


def trlm_ids(tokenizer: Any, query: str, response: str) -> tuple[list[int], list[int]]:
    """TRLM-Fo's teacher-forced sequence: (prompt ids asking for the query behind `response`, the query's ids)."""
    messages = [{"role": "user", "content": f"{TRLM_INSTRUCTION}\n\n{response}"}]
    prompt = encode(tokenizer, render(tokenizer, messages, None, True))
    return prompt, encode(tokenizer, query)


def trlm_scorer(model: Any, tokenizer: Any) -> Scorer:
    """Mean log P(query | candidate, backwards instruction): the query is the observation the agent answers."""
    def score(episodes: list[LiveEpisode], actions: list[Action]) -> list[float]:
        out = []
        for e, a in zip(episodes, actions):
            prompt, query = trlm_ids(tokenizer, e.observation, a.text)
            out.append(continuation_logprobs(model, prompt, query).mean().item() if query else 0.0)
        return out

    return score


def implicit_scorer(model: Any, ref_model: Any, beta: float = 1.0) -> Scorer:
    """beta * sum_t (log pi_theta - log pi_ref) over the candidate's tokens, both teacher-forced at temperature 1."""
    def score(episodes: list[LiveEpisode], actions: list[Action]) -> list[float]:
        out = []
        for a in actions:
            if not a.token_ids:
                out.append(0.0)
                continue
            theta = continuation_logprobs(model, a.prompt_ids, a.token_ids).sum().item()
            ref = continuation_logprobs(ref_model, a.prompt_ids, a.token_ids).sum().item()
            out.append(beta * (theta - ref))  # DeformPAM RAS: r(a) = beta (log pi_theta(a|s) - log pi_ref(a|s))
        return out

    return score


SCORERS = ("judge", "trlm", "reward_model", "critic", "implicit")


def best_of(policy: Any, settings: Any, dtype: str = "float32") -> BestOfNPolicy:
    """Wrap a model policy with the eval config's `best_of` settings (`eval/config.BestOfSettings`)."""
    from longhorizon.feedback.judges import Judge
    from longhorizon.models import SamplingParams, TransformersSampler, load_model

    if settings.scorer == "reward_model":
        from longhorizon.feedback.reward_model import load_reward_model

        return BestOfNPolicy(policy, settings.n, reward_model_scorer(load_reward_model(settings.model, dtype=dtype)))
    own = policy.sampler.model, policy.sampler.tokenizer
    model, tokenizer = own if settings.model is None else (lambda lm: (lm.model, lm.tokenizer))(load_model(settings.model, dtype))
    model.eval()
    if settings.scorer in ("judge", "critic"):
        params = SamplingParams(temperature=0.0, max_new_tokens=settings.max_new_tokens)
        judge = Judge(TransformersSampler(model, tokenizer, params, kv_cache_bytes=0), settings.model or "policy")
        scorer = judge_scorer(judge) if settings.scorer == "judge" else critic_scorer(judge)
    elif settings.scorer == "trlm":
        scorer = trlm_scorer(model, tokenizer)
    else:
        scorer = implicit_scorer(model, own[0], settings.beta)
    return BestOfNPolicy(policy, settings.n, scorer)
