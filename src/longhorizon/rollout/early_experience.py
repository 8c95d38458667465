"""Early Experience (Zhang et al., arXiv 2510.08558): implicit world modelling from branches off expert states.

    demos = oracle_demonstrations("longhorizon/Execution-v0", 64, knobs)          # the expert trajectories
    transitions = branch_transitions(demos, policy, k=4)    # K alternatives per expert state, executed
    write_conversations("iwm.jsonl", world_model_rows(transitions))   # then algorithm: sft on it

    longhorizon early-experience ENV --episodes N --k K --model M --out iwm.jsonl [--set KNOB=V]

What the paper's code does (methods-2.md §17, OSU-NLP-Group/EarlyExperience @ 3810f05): for each expert state
s_i, K alternative actions a_i^j != a_i are executed from s_i (a re-cloned env) and the next states s_i^j
recorded; the expert action is executed too (s_{i+1}). Implicit world modelling (IWM) trains
-log p(s_i^j | s_i, a_i^j) as SFT examples user = s_i + a_i^j, assistant = s_i^j, for about one epoch, then
imitation (-log pi(a_i | s_i) on the expert data). Invalid-action error messages stay as targets.

How it maps here:
- Expert states come from the env's oracle (`longhorizon demos`). A state is re-created by replaying the
  episode from its seed with the oracle's actions (the envs are seeded and deterministic), which the
  replay checks: every observation up to s_i must equal the recorded one.
- The K alternatives are sampled from the current policy (`policy.act` on K copies of the state: a model
  at temperature 1, as the paper proposes them with the policy LM); those equal to the expert action or to
  each other (after stripping whitespace) are dropped, so a state gives at most K alternatives.
- After the branch the episode is finished by the oracle without a model (cheap env steps), and s_i^j is
  the observation after the branch action (the env's final message if it ended the episode).
- Each IWM example is one user message (the task's transcript up to s_i, the action, and the question) and
  one assistant message (the next observation), so the SFT mask covers the prediction only. The expert's
  own transition is included too (`expert: true` in the metadata), as the paper executes it.
- Two-stage training is two `longhorizon train` runs: `algorithm: sft` on this file, then `algorithm: sft`
  on the demonstrations with `model:` the first run's `RUN_DIR/model` (and GRPO from there, if wanted).
Not built: self-reflection (SR) data, whose rationale precedes the action and so needs `prefill: false`
and a rationale writer; the summarisation of long states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from longhorizon.errors import UserError
from longhorizon.rollout.policies import oracle_action
from longhorizon.rollout.runner import Action, EpisodeSpec, LiveEpisode, run_episodes
from longhorizon.types import Trajectory


@dataclass(frozen=True)
class Transition:
    """An action taken in an expert state and the observation it led to."""

    env_id: str
    seed: int
    turn: int
    history: tuple[tuple[str, str], ...]  # (observation, action) of the expert turns before this one
    observation: str  # s_i
    action: str  # a_i (expert) or a_i^j
    next_observation: str  # s_{i+1} or s_i^j
    expert: bool


@dataclass(frozen=True)
class _Branch:
    demo: int
    turn: int


class BranchPolicy:
    """The oracle before and after each episode's branch turn; `policy` at the branch turn (one batched call)."""

    def __init__(self, policy: Any, demos: list[Trajectory], branches: list[_Branch]):
        self.policy, self.demos, self.branches = policy, demos, branches

    def act(self, episodes: list[LiveEpisode]) -> list[Action]:
        out: list[Action | None] = [None] * len(episodes)
        at_branch = []
        for i, episode in enumerate(episodes):
            branch, t = self.branches[episode.spec.group_id], len(episode.trajectory.turns)
            demo = self.demos[branch.demo]
            if t <= branch.turn and demo.turns[t].observation != episode.observation:
                raise UserError(f"expert episode {branch.demo} ({demo.env_id}, seed {demo.seed}) does not replay: "
                                f"turn {t}'s observation differs (other knobs, wrappers or env version?)")
            if t == branch.turn:
                at_branch.append(i)
            else:
                out[i] = Action(text=oracle_action(episode.env))
        if at_branch:
            for i, action in zip(at_branch, self.policy.act([episodes[i] for i in at_branch])):
                out[i] = action
        return out  # type: ignore[return-value]

    def end_episode(self, trajectory: Trajectory) -> None:
        if hasattr(self.policy, "end_episode"):
            self.policy.end_episode(trajectory)

    def end_rollout(self) -> None:
        if hasattr(self.policy, "end_rollout"):
            self.policy.end_rollout()


def _next_observation(trajectory: Trajectory, turn: int) -> str:
    turns = trajectory.turns
    return turns[turn + 1].observation if turn + 1 < len(turns) else str(trajectory.metadata.get("final_observation", ""))


def branch_transitions(demos: list[Trajectory], policy: Any, k: int,
                       wrappers: list[dict[str, Any]] | None = None) -> tuple[list[Transition], dict[str, int]]:
    """The expert transition and up to `k` distinct non-expert alternatives (from `policy`) at every expert state
    of every demonstration; and counts (states, alternatives kept, dropped as duplicates)."""
    if k < 1:
        raise UserError("early experience needs k >= 1 alternatives per expert state")
    branches = [_Branch(d, t) for d, demo in enumerate(demos) for t in range(len(demo.turns)) for _ in range(k)]
    specs = [EpisodeSpec(demos[b.demo].env_id, seed=demos[b.demo].seed,
                         env_kwargs=dict(demos[b.demo].metadata.get("env_kwargs", {})), group_id=g,
                         wrappers=list(wrappers if wrappers is not None else demos[b.demo].metadata.get("wrappers", [])))
             for g, b in enumerate(branches)]
    runs = run_episodes(specs, BranchPolicy(policy, demos, branches)) if specs else []
    transitions, seen, counts = [], set(), {"states": 0, "kept": 0, "dropped": 0}
    for d, demo in enumerate(demos):
        for t, turn in enumerate(demo.turns):
            history = tuple((x.observation, x.action) for x in demo.turns[:t])
            transitions.append(Transition(demo.env_id, demo.seed, t, history, turn.observation, turn.action,
                                          _next_observation(demo, t), expert=True))
            counts["states"] += 1
    for branch, run in zip(branches, runs):
        demo = demos[branch.demo]
        action = run.turns[branch.turn].action
        key = (branch.demo, branch.turn, action.strip())
        if action.strip() == demo.turns[branch.turn].action.strip() or key in seen:
            counts["dropped"] += 1
            continue
        seen.add(key)
        history = tuple((x.observation, x.action) for x in demo.turns[: branch.turn])
        transitions.append(Transition(demo.env_id, demo.seed, branch.turn, history,
                                      demo.turns[branch.turn].observation, action,
                                      _next_observation(run, branch.turn), expert=False))
        counts["kept"] += 1
    return transitions, counts


def world_model_prompt(transition: Transition) -> str:
    """s_i and the action, as one user message: the transcript so far, then the question."""
    lines = ["Predict the environment's next message.", "", "The conversation so far:"]
    for observation, action in transition.history:
        lines += [f"[environment]\n{observation}", f"[agent]\n{action}"]
    lines += [f"[environment]\n{transition.observation}", f"[agent]\n{transition.action}", "",
              "What does the environment answer?"]
    return "\n".join(lines)


def world_model_rows(transitions: list[Transition]) -> list[dict[str, Any]]:
    """IWM examples as TRL `messages` rows: user = s_i + a, assistant = the next observation."""
    return [{"messages": [{"role": "user", "content": world_model_prompt(t)},
                          {"role": "assistant", "content": t.next_observation}],
             "metadata": {"env_id": t.env_id, "seed": t.seed, "turn": t.turn, "expert": t.expert}}
            for t in transitions if t.next_observation]
