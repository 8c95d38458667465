"""`longhorizon rm-eval`: how well a reward model, preference model or judge ranks answers as the context grows.

Long-RewardBench-style items (LongRM, Tang et al., arXiv 2510.06915, methods-2.md §3), built from our envs'
long episodes, whose better and worse answers are known exactly: the env's oracle plays an episode; at the
first turn whose context (the chat so far, in the scorer's tokenizer) reaches L tokens, the item's context is
that chat, the better answer is the oracle's action and the worse ones are the env's well-formed wrong actions
(`wrong_action`: the right format, a wrong value). Two kinds of item:

- pairwise: (better, worse), shown in a random order; right when the labeller's P(better ≻ worse) > 1/2
  (a tie counts 1/2); a reward model's pair is judged from its best-of-N scores, r(better) > r(worse), the
  same verdict as its Bradley-Terry labeller's without scoring the two answers twice;
- best-of-N: the better answer among N - 1 worse ones; right when the scorer ranks it first. A reward model
  ranks by its score; a preference model or a judge by its summed P(option ≻ other) against the others. A
  tie at the top counts 1/(tied options) when the better answer is among them (a random pick's chance).

Accuracy ± its standard error per context length, so a scorer's context boundary shows: a model whose window
is shorter than L sees the left-truncated context (the last `max_tokens` tokens; the answer is never cut).
Each item's episode uses env seed `seed + i`; the wrong actions are drawn from a generator seeded per item.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from longhorizon.feedback.labellers import Candidate, Labeller


@dataclass
class Item:
    """One context of about `length` tokens, its better answer and the worse ones."""

    length: int
    context: list[dict[str, str]]
    better: str
    worse: list[str]
    tokens: int = 0  # the context's actual length in tokens


@dataclass
class LengthResult:
    length: int
    pairwise: list[float] = field(default_factory=list)  # 1, 1/2 or 0 per item
    best_of_n: list[float] = field(default_factory=list)

    def row(self) -> dict[str, float]:
        def mean_se(x: list[float]) -> tuple[float, float]:
            a = np.array(x, dtype=float)
            return (float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0) if len(a) else (0.0, 0.0)

        (p, p_se), (b, b_se) = mean_se(self.pairwise), mean_se(self.best_of_n)
        return {"length": self.length, "items": len(self.pairwise), "pairwise_acc": p, "pairwise_se": p_se,
                "best_of_n_acc": b, "best_of_n_se": b_se}


def oracle_turns(env_id: str, knobs: dict[str, Any], seed: int, worse: int, max_turns: int) -> list[tuple[str, str, list[str]]]:
    """(observation, oracle action, `worse` wrong actions) of each turn of one oracle episode."""
    from longhorizon.rollout.runner import make_env

    env = make_env(env_id, knobs)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    turns = []
    for _ in range(max_turns):
        inner = env.unwrapped
        wrong = [inner.wrong_action(rng) for _ in range(worse)]
        action = inner.oracle_action()
        turns.append((obs, action, wrong))
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    env.close()
    return turns


def build_items(env_id: str, knobs: dict[str, Any], lengths: list[int], items: int, n: int, count_tokens: Callable[[list[dict[str, str]]], int],
                seed: int = 0, max_turns: int = 4096) -> list[Item]:
    """`items` items per context length, from oracle episodes of seeds seed, seed + 1, ...: for each length, the
    first turn whose context (the transcript before it and its observation) holds at least that many tokens.

    A context's token count grows with the turn, so that turn is found by bisection: O(log T) counts of whole
    contexts per length, where counting at every turn was quadratic (about an hour of tokenising for eight
    16k-token episodes of one-line turns)."""
    out = []
    for i in range(items):
        turns = oracle_turns(env_id, knobs, seed + i, n - 1, max_turns)
        counted: dict[int, int] = {}

        def context(k: int) -> list[dict[str, str]]:
            history = [m for obs, action, _ in turns[:k] for m in ({"role": "user", "content": obs},
                                                                  {"role": "assistant", "content": action})]
            return history + [{"role": "user", "content": turns[k][0]}]

        def tokens(k: int) -> int:
            if k not in counted:
                counted[k] = count_tokens(context(k))
            return counted[k]

        for target in sorted(lengths):
            if tokens(len(turns) - 1) < target:
                raise ValueError(f"{env_id} with {knobs} reached only {tokens(len(turns) - 1)} tokens of context, "
                                 f"short of {target}: raise its horizon knob")
            lo, hi = 0, len(turns) - 1  # the first k with tokens(k) >= target lies in [lo, hi]
            while lo < hi:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if tokens(mid) >= target else (mid + 1, hi)
            obs, action, wrong = turns[lo]
            out.append(Item(target, context(lo), action, wrong, tokens(lo)))
    return out


def truncate(context: list[dict[str, str]], count_tokens: Callable[[list[dict[str, str]]], int],
             max_tokens: int | None) -> list[dict[str, str]]:
    """Drop the oldest messages (keeping the last user turn) until the context fits `max_tokens`.

    The count falls as the start moves right, so the fewest messages to drop are found by bisection: O(log M)
    counts, where dropping one message at a time re-tokenised a 32k-token context thousands of times."""
    if max_tokens is None or count_tokens(context) <= max_tokens:
        return context
    lo, hi = 1, len(context) - 1  # the first start s with a context[s:] that fits (or the last turn alone) is in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if count_tokens(context[mid:]) <= max_tokens else (mid + 1, hi)
    return context[lo:]


def answer(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def score_item(item: Item, labeller: Labeller, rank: Callable[[Item], list[float]] | None, rng: random.Random,
               context: list[dict[str, str]]) -> tuple[float, float]:
    """(pairwise score, best-of-N score) of one item: 1 right, 1/2 tie (pairwise), 0 wrong.

    With a ranking (a reward model), the pair is judged from the same scores, r(better) against r(worse[0]):
    its labeller's sigmoid(r_a - r_b) > 1/2 exactly when r_a > r_b, and the N forward passes serve both."""
    swap = rng.random() < 0.5
    options = [item.better, *item.worse]
    if rank is not None:
        scores = rank(Item(item.length, context, item.better, item.worse))
        pairwise = 1.0 if scores[0] > scores[1] else 0.5 if scores[0] == scores[1] else 0.0
    else:
        a, b = (item.worse[0], item.better) if swap else (item.better, item.worse[0])
        (label,) = labeller([Candidate(context, answer(a), answer(b))])
        p_better = 1 - label.prob if swap else label.prob
        pairwise = 1.0 if p_better > 0.5 else 0.5 if p_better == 0.5 else 0.0
        # best-of-N: the pairwise wins of each option against every other
        pairs = [(i, j) for i in range(len(options)) for j in range(len(options)) if i != j]
        probs = labeller([Candidate(context, answer(options[i]), answer(options[j])) for i, j in pairs])
        scores = [0.0] * len(options)
        for (i, _), lab in zip(pairs, probs):
            scores[i] += lab.prob
    top = [k for k, v in enumerate(scores) if v == max(scores)]
    return pairwise, (1.0 / len(top) if 0 in top else 0.0)  # a tie at the top: the chance a random pick is right


def run_rm_eval(items: list[Item], labeller: Labeller, rank: Callable[[Item], list[float]] | None = None,
                count_tokens: Callable[[list[dict[str, str]]], int] | None = None, max_tokens: int | None = None,
                seed: int = 0) -> list[dict[str, float]]:
    """Accuracy per context length (pairwise and best-of-N, with standard errors)."""
    rng = random.Random(seed)
    results: dict[int, LengthResult] = {}
    for item in progress(items, "rm-eval items"):
        context = truncate(item.context, count_tokens, max_tokens) if count_tokens else item.context
        pairwise, best = score_item(item, labeller, rank, rng, context)
        res = results.setdefault(item.length, LengthResult(item.length))
        res.pairwise.append(pairwise)
        res.best_of_n.append(best)
    return [results[k].row() for k in sorted(results)]


def progress(items: list[Item], description: str):
    """Iterate with a bar on stderr (a judge at 32k tokens takes minutes per item)."""
    from rich.console import Console
    from rich.progress import track

    return track(items, description=description, console=Console(stderr=True), transient=False)


def reward_model_rank(model: Any) -> Callable[[Item], list[float]]:
    """A reward model ranks the options by r(context, option)."""
    return lambda item: model.score([(item.context, answer(o)) for o in [item.better, *item.worse]])


def scorer_for(kind: str, model: str, dtype: str = "float32", max_new_tokens: int = 512
               ) -> tuple[Labeller, Any, Any, int | None]:
    """(labeller, best-of-N ranking or None, tokenizer, context window less room for the answer) of a reward
    model, preference model or judge."""
    from longhorizon.feedback.labellers import make_labeller, preference_model_labeller, reward_model_labeller

    rank = None
    if kind == "reward_model":
        from longhorizon.feedback.reward_model import load_reward_model

        scorer = load_reward_model(model, dtype=dtype)
        labeller, rank = reward_model_labeller(scorer), reward_model_rank(scorer)
    elif kind == "preference_model":
        from longhorizon.feedback.reward_model import load_preference_model

        scorer = load_preference_model(model, dtype=dtype)
        labeller = preference_model_labeller(scorer)
    else:
        labeller = make_labeller(kind, model, dtype, max_new_tokens)
        from longhorizon.models import load_model

        scorer = load_model(model, dtype)
    limit = getattr(scorer.model.config, "max_position_embeddings", None)
    reserve = 256 if kind == "reward_model" else 256 + max_new_tokens  # the answers; a judge's verdict too
    return labeller, rank, scorer.tokenizer, (limit - reserve if isinstance(limit, int) and limit > reserve else None)


def token_counter(tokenizer: Any) -> Callable[[list[dict[str, str]]], int]:
    from longhorizon.context.base import encode, render

    return lambda messages: len(encode(tokenizer, render(tokenizer, messages, None, True)))


def plot_rm_eval(rows: list[dict[str, float]], path: Any, title: str, n: int | None = None) -> Any:
    """Accuracy against context length, with chance (1/2 pairwise; 1/n best-of-n when n is given) dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = [r["length"] for r in rows]
    for key, label in (("pairwise", "pairwise"), ("best_of_n", "best-of-N")):
        ax.errorbar(x, [r[f"{key}_acc"] for r in rows], yerr=[r[f"{key}_se"] for r in rows], marker="o", capsize=3,
                    label=label)
    for i, (level, label) in enumerate([(0.5, "chance, pairwise")] + ([(1 / n, f"chance, best-of-{n}")] if n else [])):
        ax.axhline(level, color=f"C{i}", linestyle="--", linewidth=0.8, label=label)
    ax.set(xscale="log", xlabel="context length (tokens)", ylabel="accuracy", ylim=(-0.05, 1.05), title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
