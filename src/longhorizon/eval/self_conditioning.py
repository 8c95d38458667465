"""Self-conditioning: does a history with wrong answers make the next answer wrong?

After "The Illusion of Diminishing Returns" (Sinha et al., ICLR 2026, arXiv
2509.09677; `../shared/reference/methods.md` (a)): the same tasks are run with
the agent's earlier answers replaced by scripted ones, a chosen fraction of
them wrong, and the accuracy of the next (model-written) turn is measured
against that error rate and against the turn index.

    rows = self_conditioning(cfg, policy_factory, error_rates=[0, 0.25, 0.5, 0.75, 1.0])

How (`InjectedHistory`, a wrapper over any policy the runner drives):
- to measure turn t, the env runs with its horizon knob set to t; turns 1..t-1
  are scripted: the env's `wrong_action` at exactly rate * (t-1) of them (rounded half up)
  (positions drawn per episode; a higher rate's wrong turns include a lower
  rate's, so rates are paired), its `oracle_action` at the others; turn t is
  the wrapped policy's, judged by the env;
- accuracy is the env's step verdict at turn t (`step_correct`, else
  `correct`): on Execution, the correct update of the previous total *as the
  history shows it* (the paper's step accuracy), so a wrong history does not
  make a right update count as wrong;
- an env's `stop_on_error` knob, if it has one, is set to False (an injected
  error would otherwise end the episode before the measured turn);
- every rate runs the same tasks (env seeds `seed + i`), in one batched rollout per rate;
- for model policies, each scripted turn gets the prompt ids the context
  strategy builds and the tokenised answer, so every strategy (also `full`,
  which extends the previous prompt token by token) renders it as the model's own.

Choices where the paper gives no code detail we know of (`env_follows`):
"history" (default) gives the env the same scripted answers the history shows,
so history and env agree and the step verdict is well defined; "truth" gives the
env the oracle's answers while the history shows the wrong ones (the env's
state follows the correct totals; the next turn is then judged against the true
total, which the history no longer shows). For a noisy oracle both give an
accuracy of p at every rate and turn: the known-answer test.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

from longhorizon.context.base import encode
from longhorizon.eval.config import EvalConfig
from longhorizon.eval.horizon import _step_correct
from longhorizon.rollout.policies import oracle_action
from longhorizon.rollout.runner import Action, EpisodeSpec, LiveEpisode, Policy, run_episodes
from longhorizon.types import Trajectory

EnvFollows = Literal["history", "truth"]
ERROR_RATES = (0.0, 0.25, 0.5, 0.75, 1.0)


class InjectedHistory:
    """The first `knob - 1` turns of each episode are scripted (a fraction `error_rate` wrong); the rest are `inner`'s."""

    def __init__(self, inner: Policy, error_rate: float, knob: str, seed: int = 0, env_follows: EnvFollows = "history"):
        self.inner, self.error_rate, self.knob, self.seed, self.env_follows = inner, error_rate, knob, seed, env_follows

    def act(self, episodes: list[LiveEpisode]) -> list[Action]:
        scripted = [e for e in episodes if len(e.trajectory.turns) < self.history(e)]
        own = [e for e in episodes if len(e.trajectory.turns) >= self.history(e)]
        actions = dict(zip(map(id, own), self.inner.act(own) if own else []))
        actions |= {id(e): self.injected(e) for e in scripted}
        return [actions[id(e)] for e in episodes]

    def history(self, episode: LiveEpisode) -> int:
        return int(episode.spec.env_kwargs[self.knob]) - 1

    def wrong_turns(self, episode: LiveEpisode) -> set[int]:
        """Exactly n_wrong(rate, k) of the k history turns, the first of one permutation per episode (nested in rate)."""
        k = self.history(episode)
        order = np.random.default_rng([self.seed, episode.spec.seed, k]).permutation(k)
        return set(order[: n_wrong(self.error_rate, k)].tolist())

    def injected(self, episode: LiveEpisode) -> Action:
        t = len(episode.trajectory.turns)
        right = oracle_action(episode.env)
        wrong = t in self.wrong_turns(episode)
        rng = np.random.default_rng([self.seed, episode.spec.seed, t, 1])
        shown = episode.env.get_wrapper_attr("wrong_action")(rng) if wrong else right
        env_text = right if self.env_follows == "truth" else None
        return with_tokens(self.inner, episode, Action(text=shown, env_text=env_text,
                                                        info={"injected": "wrong" if wrong else "right"}))

    def end_episode(self, trajectory: Trajectory) -> None:
        if hasattr(self.inner, "end_episode"):
            self.inner.end_episode(trajectory)

    def end_rollout(self) -> None:
        if hasattr(self.inner, "end_rollout"):
            self.inner.end_rollout()


def n_wrong(rate: float, k: int) -> int:
    """Wrong answers among k history turns at this error rate: rate * k rounded half up."""
    return math.floor(rate * k + 0.5)


def with_tokens(policy: Any, episode: LiveEpisode, action: Action) -> Action:
    """For a model policy, the prompt its strategy builds and the answer's ids, as if the model had written it."""
    if not (hasattr(policy, "sampler") and hasattr(policy, "strategy")):
        return action  # a scripted policy keeps no tokens
    tok = policy.sampler.tokenizer
    prefix = policy.strategy.response_prefix(episode.agent_spec.response_prefix) if policy.prefill else ""
    prefix = prefix if action.text.startswith(prefix) else ""
    action.prompt_ids = policy.strategy.build_prompt(episode.view(), tok) + encode(tok, prefix)
    action.token_ids = encode(tok, action.text[len(prefix):])
    action.logprobs = [0.0] * len(action.token_ids)
    return action


# ------------------------------------------------------------------ the measurement


def specs(cfg: EvalConfig, turns: list[int]) -> list[EpisodeSpec]:
    """Episode i of every measured turn t runs env seed `cfg.seed + i` with the horizon knob at t."""
    kwargs = {**cfg.env_kwargs, **run_on(cfg.env_id)}
    return [EpisodeSpec(cfg.env_id, seed=cfg.seed + i, env_kwargs={**kwargs, cfg.horizon_knob: t},
                        group_id=i, wrappers=cfg.wrappers)
            for t in turns for i in range(cfg.episodes)]


def run_on(env_id: str) -> dict[str, Any]:
    """`stop_on_error: False` where the env has that knob: an injected wrong answer must not end the episode."""
    from longhorizon.envs import knobs

    return {"stop_on_error": False} if "stop_on_error" in knobs(env_id) else {}


def measured(trajectory: Trajectory, turn: int) -> bool | None:
    """The step verdict of the measured turn (None if the episode ended before it or the env judged nothing)."""
    return _step_correct(trajectory.turns[turn - 1]) if len(trajectory.turns) >= turn else None


def accuracy_row(rate: float, turn: int, trajectories: list[Trajectory]) -> dict[str, Any]:
    verdicts = [v for v in (measured(t, turn) for t in trajectories) if v is not None]
    n = len(verdicts)
    acc = float(np.mean(verdicts)) if n else float("nan")
    return {"error_rate": rate, "turn": turn, "wrong_in_history": n_wrong(rate, turn - 1), "episodes": n,
            "accuracy": acc, "se": math.sqrt(acc * (1 - acc) / n) if n else float("nan")}


def self_conditioning(cfg: EvalConfig, make_policy: Callable[[], Policy], error_rates: list[float] = ERROR_RATES,
                      env_follows: EnvFollows = "history") -> tuple[list[dict[str, Any]], list[Trajectory]]:
    """One row per (error rate, measured turn): the next-turn accuracy and its SE; and every episode run.

    `cfg.horizons` are the measured turn indices; `cfg.horizon_knob` must be concrete (see `eval.config.resolve`).
    """
    turns, rows, everything = list(cfg.horizons), [], []
    policy = make_policy()
    for rate in error_rates:
        wrapped = InjectedHistory(policy, rate, cfg.horizon_knob, cfg.seed, env_follows)
        trajectories = run_episodes(specs(cfg, turns), wrapped)
        for t in trajectories:
            t.metadata["error_rate"] = rate
        rows += [accuracy_row(rate, turn, trajectories[k * cfg.episodes:(k + 1) * cfg.episodes])
                 for k, turn in enumerate(turns)]
        everything += trajectories
    return rows, everything


def plot_self_conditioning(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Two panels: next-turn accuracy vs injected error rate (a line per turn), and vs turn (a line per rate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, other, ax in (("turn", "error_rate", ax1), ("error_rate", "turn", ax2)):
        for value in sorted({r[key] for r in rows}):
            line = sorted((r for r in rows if r[key] == value), key=lambda r: r[other])
            ax.errorbar([r[other] for r in line], [r["accuracy"] for r in line], yerr=[r["se"] for r in line],
                        marker="o", capsize=3, label=f"{'turn' if key == 'turn' else 'error rate'} {value:g}")
        ax.set(ylim=(-0.02, 1.02), ylabel="next-turn step accuracy")
        ax.legend(fontsize=7, ncol=2)
    ax1.set(xlabel="error rate injected in the history", title=f"self-conditioning {title}".strip())
    turns = sorted({r["turn"] for r in rows})
    ax2.set(xlabel="measured turn (history = turn - 1 turns)", xscale="log", title="by turn index")
    ax2.minorticks_off()
    ax2.set_xticks(turns, [str(t) for t in turns])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
