"""`longhorizon prefs build`: sample episodes from a model on an env, pair them, label each pair by the verifier.

    pairs, summary = build_pairs(PrefsBuildConfig(model="smollm2-135m", tasks=32, samples=4, out="runs/prefs"))

Episode level (`level: episode`): every task (env seed) is run `samples` times;
two samples of one task form a pair whose context is the shared first prompt
(system prompt and first observation) and whose continuations are the rest of
each episode as messages (the agent's actions, the env's observations between
them; the final observation is left out). The higher return wins; equal
returns are ties, dropped or kept (`ties`). `pairs: all` pairs every two
samples of a task, `pairs: best_worst` only its best and worst.

Turn level (`level: turn`): each task first runs one trunk episode; at every
turn k of it, `samples` branches replay the trunk's first k actions (the same
tokens, `PrefixReplay`) and then sample on. Branches of one k share the prefix
up to the observation of turn k: that prefix is the context, the branches'
turns from k on are the continuations, and their returns decide the label.

Samples whose continuations are identical are never paired. Writes into `out`:
`feedback/preferences.jsonl` (the pairs), `trajectories.jsonl` (every episode;
a pair's metadata names its two episodes by index), `config.yaml`, `summary.json`.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any, Callable, Literal

from pydantic import ConfigDict, Field

from longhorizon.context.settings import ContextSettings, context_field, context_options_field
from longhorizon.errors import UserError
from longhorizon.feedback.labellers import SOURCES, Candidate, Labeller, make_labeller, verifier
from longhorizon.feedback.preferences import PREFERENCES_FILE, PreferencePair, write_pairs
from longhorizon.feedback.rlhs import outcome_text
from longhorizon.rollout.runner import Action, EpisodeSpec, LiveEpisode, run_episodes
from longhorizon.types import Trajectory, Turn


class PrefsBuildConfig(ContextSettings):
    """Which model samples which env, how samples are paired and labelled (written to OUT/config.yaml)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m", description="smollm2-135m, tiny-random, noisy-oracle:p, or a local HF directory")
    env_id: str = Field("longhorizon/Execution-v0", description="registered env id")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="env knobs, e.g. {horizon: 2}")
    wrappers: list[dict[str, Any]] = Field(default_factory=list, description="feedback wrappers, innermost first")
    tasks: int = Field(16, ge=1, description="distinct tasks: env seeds seed, seed+1, ...")
    samples: int = Field(4, ge=2, description="episodes (or branches per turn) sampled per task")
    seed: int = Field(0, ge=0, description="first env seed; also the sampling seed")
    level: Literal["episode", "turn"] = Field("episode", description="pair whole episodes, or branches from a shared prefix at every turn")
    pairs: Literal["all", "best_worst"] = Field("all", description="every two samples of a task, or only its best and worst")
    ties: Literal["drop", "keep"] = Field("drop", description="pairs with equal returns: drop them, or keep them labelled as ties")
    label: Literal["verifier", "reward_model", "preference_model", "judge", "judge_hindsight"] = Field("verifier", description="who labels: the env's verifier (the higher return wins), a reward model, a preference model, a judge, or RLHS's hindsight judge, which sees what happened after each side (feedback/labellers.py)")
    label_model: str | None = Field(None, description="the labeller's model: a reward / preference model directory, or a judge model (a registered name or a directory)")
    context: str = context_field()
    context_options: dict[str, Any] = context_options_field()
    temperature: float = Field(1.0, ge=0, description="sampling temperature (> 0, or all samples of a task agree)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling threshold")
    max_new_tokens: int = Field(24, ge=1, description="token cap per model turn")
    dtype: str = Field("float32", description="model dtype: float32 or bfloat16")
    prefill: bool = Field(True, description="pre-fill the env's response prefix (e.g. <answer>) in each model turn")
    out: str = Field("runs/prefs", description="output directory")


# ------------------------------------------------------------------ episodes as messages


def system_prompt(cfg: PrefsBuildConfig, seed: int) -> str | None:
    """The system prompt the agent saw on this task (through its wrappers)."""
    from longhorizon.envs.core.base import agent_spec
    from longhorizon.rollout.runner import make_env

    env = make_env(cfg.env_id, cfg.env_kwargs, cfg.wrappers)
    env.reset(seed=seed)
    prompt = agent_spec(env).system_prompt
    env.close()
    return prompt


def context_messages(traj: Trajectory, k: int, system: str | None) -> list[dict[str, str]]:
    """System prompt, turns < k as (observation, action), then the observation of turn k."""
    msgs = [{"role": "system", "content": system}] if system else []
    for turn in traj.turns[:k]:
        msgs += [{"role": "user", "content": turn.observation}, {"role": "assistant", "content": turn.action}]
    return msgs + [{"role": "user", "content": traj.turns[k].observation}]


def continuation_messages(traj: Trajectory, k: int) -> list[dict[str, str]]:
    """Turns k.. as messages: the action of turn k, then (observation, action) of each later turn."""
    msgs = [{"role": "assistant", "content": traj.turns[k].action}]
    for turn in traj.turns[k + 1:]:
        msgs += [{"role": "user", "content": turn.observation}, {"role": "assistant", "content": turn.action}]
    return msgs


def returns_from(traj: Trajectory, k: int) -> float:
    return float(sum(t.reward for t in traj.turns[k:]))


# ------------------------------------------------------------------ pairing and labelling


def verifier_label(return_a: float, return_b: float) -> str:
    """The higher return wins; equal returns tie."""
    return "a" if return_a > return_b else "b" if return_b > return_a else "tie"


def candidate_pairs(returns: list[float], how: str) -> list[tuple[int, int]]:
    """Index pairs (i, j), i < j, among one task's samples: all of them, or (best, worst)."""
    if how == "best_worst":
        best = max(range(len(returns)), key=lambda i: returns[i])
        worst = min(range(len(returns)), key=lambda i: returns[i])
        return [tuple(sorted((best, worst)))] if best != worst else []
    return list(itertools.combinations(range(len(returns)), 2))


def group_pairs(cfg: PrefsBuildConfig, trajs: list[Trajectory], ids: list[int], k: int,
                system: str | None, labeller: Labeller = verifier) -> tuple[list[PreferencePair], dict[str, int]]:
    """Labelled pairs among the samples `trajs` (episode indices `ids`) of one task, branching at turn k."""
    returns = [returns_from(t, k) for t in trajs]
    conts = [continuation_messages(t, k) for t in trajs]
    context = context_messages(trajs[0], k, system)
    counts = {"identical": 0, "ties_dropped": 0}
    distinct = []
    for i, j in candidate_pairs(returns, cfg.pairs):
        if conts[i] == conts[j]:
            counts["identical"] += 1
        else:
            distinct.append((i, j))
    outcomes = [outcome_text(t) for t in trajs]  # what happened after each side (the hindsight judge reads it)
    labels = labeller([Candidate(context, conts[i], conts[j], returns[i], returns[j], outcomes[i], outcomes[j])
                       for i, j in distinct])
    kept = []
    for (i, j), label in zip(distinct, labels):
        if label.preferred == "tie" and cfg.ties == "drop":
            counts["ties_dropped"] += 1
            continue
        meta = {"env_id": cfg.env_id, "seed": trajs[i].seed, "turn": k, "episodes": [ids[i], ids[j]],
                "returns": [returns[i], returns[j]], "prob_a": label.prob}
        kept.append(PreferencePair(context=context, a=conts[i], b=conts[j], preferred=label.preferred,
                                   strength=label.strength, source=SOURCES[cfg.label], metadata=meta))
    return kept, counts


# ------------------------------------------------------------------ sampling


class PrefixReplay:
    """Replays each episode's recorded prefix (its group's trunk turns) token for token, then lets `inner` act."""

    def __init__(self, inner: Any, prefixes: dict[int, list[Turn]]):
        self.inner, self.prefixes = inner, prefixes

    def act(self, episodes: list[LiveEpisode]) -> list[Action]:
        replay = {i for i, e in enumerate(episodes) if len(e.trajectory.turns) < len(self.prefixes[e.spec.group_id])}
        live = [e for i, e in enumerate(episodes) if i not in replay]
        sampled = iter(self.inner.act(live) if live else [])
        return [self._recorded(e) if i in replay else next(sampled) for i, e in enumerate(episodes)]

    def _recorded(self, episode: LiveEpisode) -> Action:
        turn = self.prefixes[episode.spec.group_id][len(episode.trajectory.turns)]
        return Action(text=turn.action, prompt_ids=turn.prompt_ids, token_ids=turn.action_ids,
                      logprobs=turn.action_logprobs)

    def end_episode(self, trajectory: Trajectory) -> None:
        if hasattr(self.inner, "end_episode"):
            self.inner.end_episode(trajectory)

    def end_rollout(self) -> None:
        if hasattr(self.inner, "end_rollout"):
            self.inner.end_rollout()


def make_policies(cfg: PrefsBuildConfig) -> list[Any]:
    """The model behind the context strategy (one policy: its samples differ by the sampler's draws), or one
    scripted policy per sample, seeded seed + j (a noisy oracle draws from the env seed and the turn only, so
    the samples of one task would otherwise all be the same)."""
    from longhorizon.context import make_strategy
    from longhorizon.models import SamplingParams
    from longhorizon.rollout import model_policy, scripted_policy

    if scripted_policy(cfg.model, cfg.seed) is not None:
        return [scripted_policy(cfg.model, cfg.seed + j) for j in range(cfg.samples)]
    params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                            seed=cfg.seed)
    return [model_policy(cfg.model, make_strategy(cfg.context, **cfg.context_options), params, dtype=cfg.dtype,
                         prefill=cfg.prefill)]


def run_samples(specs: list[EpisodeSpec], samples: int, policies: list[Any],
                wrap: Callable[[Any], Any] = lambda p: p) -> list[Trajectory]:
    """Run `specs` (`samples` consecutive specs per group): with one policy in one batch; else spec i with
    policy i % samples, one batch per policy, results back in spec order."""
    if len(policies) == 1:
        return run_episodes(specs, wrap(policies[0]))
    out: list[Trajectory | None] = [None] * len(specs)
    for j, policy in enumerate(policies):
        idx = list(range(j, len(specs), samples))
        for i, traj in zip(idx, run_episodes([specs[i] for i in idx], wrap(policy))):
            out[i] = traj
    return out


def _spec(cfg: PrefsBuildConfig, task: int, group: int) -> EpisodeSpec:
    return EpisodeSpec(cfg.env_id, seed=cfg.seed + task, env_kwargs=cfg.env_kwargs, group_id=group,
                       wrappers=cfg.wrappers)


def sample_episode_groups(cfg: PrefsBuildConfig, policies: list[Any]) -> tuple[list[Trajectory], list[tuple[list[int], int]]]:
    """All episodes, and each group's (episode indices, branch turn k = 0)."""
    specs = [_spec(cfg, task, task) for task in range(cfg.tasks) for _ in range(cfg.samples)]
    trajs = run_samples(specs, cfg.samples, policies)
    return trajs, [(list(range(g * cfg.samples, (g + 1) * cfg.samples)), 0) for g in range(cfg.tasks)]


def sample_turn_groups(cfg: PrefsBuildConfig, policies: list[Any]) -> tuple[list[Trajectory], list[tuple[list[int], int]]]:
    """Trunks first, then `samples` branches at every turn k of each trunk (group id = its index in `branches`)."""
    trunks = run_episodes([_spec(cfg, task, task) for task in range(cfg.tasks)], policies[0])
    branches = [(task, k) for task, trunk in enumerate(trunks) for k in range(len(trunk.turns))]
    prefixes = {g: trunks[task].turns[:k] for g, (task, k) in enumerate(branches)}
    specs = [_spec(cfg, task, g) for g, (task, _) in enumerate(branches) for _ in range(cfg.samples)]
    trajs = run_samples(specs, cfg.samples, policies, wrap=lambda policy: PrefixReplay(policy, prefixes))
    groups = [(list(range(g * cfg.samples, (g + 1) * cfg.samples)), k) for g, (_, k) in enumerate(branches)]
    return trunks + trajs, [([len(trunks) + i for i in ids], k) for ids, k in groups]


SAMPLERS = {"episode": sample_episode_groups, "turn": sample_turn_groups}


def build_pairs(cfg: PrefsBuildConfig) -> tuple[list[PreferencePair], dict[str, Any]]:
    """Sample, pair and label; write the run directory; return the pairs and a summary."""
    from longhorizon.rollout.runner import make_env
    from longhorizon.store import RunDir

    make_env(cfg.env_id, cfg.env_kwargs, cfg.wrappers).close()  # bad env or knobs fail before any model loads
    if cfg.label != "verifier" and not cfg.label_model:
        raise UserError(f"label {cfg.label} needs label_model: a {cfg.label.replace('_', ' ')} "
                        f"{'model (e.g. smollm2-135m)' if cfg.label.startswith('judge') else 'directory'}")
    labeller = make_labeller(cfg.label, cfg.label_model, cfg.dtype)  # a bad model fails before any sampling
    run_dir = RunDir(cfg.out)
    trajs, groups = SAMPLERS[cfg.level](cfg, make_policies(cfg))
    pairs, counts = [], defaultdict(int)
    systems = {seed: system_prompt(cfg, seed) for seed in {t.seed for t in trajs}}
    for ids, k in groups:
        group = [trajs[i] for i in ids]
        kept, dropped = group_pairs(cfg, group, ids, k, systems[group[0].seed], labeller)
        pairs += kept
        for key, n in dropped.items():
            counts[key] += n
    run_dir.write_config(cfg.model_dump())
    run_dir.write_trajectories(trajs)
    write_pairs(run_dir.path / PREFERENCES_FILE, pairs)
    summary = _summary(trajs, pairs, counts)
    run_dir.write_metrics(summary, "summary.json")
    return pairs, summary


def _summary(trajs: list[Trajectory], pairs: list[PreferencePair], counts: dict[str, int]) -> dict[str, Any]:
    if not trajs:
        raise UserError("no episodes were sampled")
    return {"episodes": len(trajs), "pairs": len(pairs), "ties_kept": sum(p.preferred == "tie" for p in pairs),
            "mean_return": sum(t.total_reward for t in trajs) / len(trajs), **counts}
