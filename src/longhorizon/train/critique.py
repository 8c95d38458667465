"""Critique-GRPO (Zhang et al. 2025) on multi-turn episodes: critiques, refinements, one group of G.

    algorithm:
      name: critique_grpo
      group_size: 8                                  # 7 initial episodes + 1 refinement per task
      critique: {source: simple_gt, gamma: 0.1}

The official code (zhangxy-2019/critique-GRPO @ e8f03a2, methods.md §11,
verified in methods-2.md §0 and §19), per prompt: sample 7 responses,
critique each, sample one refinement per critique from a prompt holding the
question, the previous solution and the critique, keep one refinement (the
first that scores 1, else the highest-scoring), and normalise GRPO's
advantages over the 7 + 1. The refinement's tokens are trained as a response
to the *original* question, with the policy-shaping loss -A f(pi),
f(p) = p / (p + gamma), gamma = 0.1, with no ratio and no clipping; the
initial responses take the usual loss (`train/update.py`).

Here, each step:
1. `group_size - 1` initial episodes of every task, from the policy.
2. A critique of each (`algorithm.critique.source`):
   - `simple`: "The generated solution is (in)correct." (the episode's success);
   - `simple_gt` (the paper's script): "..., the ground truth is {gt}." where
     gt is the env oracle's answers for the task (its turns, numbered, when
     there are several);
   - `feedback`: on a success the `simple` text; else FeedbackLoop's rule
     generator (`RULE_FEEDBACK` for the env, else `rule_feedback`) on the first
     wrong turn (the first whose `info["correct"]` is false, else the last),
     prefixed "Turn k is wrong." on multi-turn episodes: targeted, without the
     answer;
   - `model`: on a success the `simple_gt` text (as the code's `text` type);
     else a model writes it from the paper's critique prompt (the question,
     the student's answer, the correct solution = the oracle's answers),
     greedy, cached by content in RUN_DIR/critique_cache.sqlite;
   - `critic`: a DeepCritic step critic (`feedback/critic.py`) reads the
     episode as numbered steps and writes its per-step critique.
3. A refinement of each: the same task (same seed) from its start, with the
   `refine` wrapper putting the paper's refinement prompt (the first
   observation as the question, the previous attempt's turns, the critique)
   in the first observation; later observations are the env's own, so a
   multi-turn refinement answers every turn again.
4. One refinement per task by the code's rule.
5. Its turns are replayed (`rollout.ReplayPolicy`) on the task without the
   critique: the same sampled tokens after the prompts the policy would see
   with no critique, the code's "refinement tokens after the original
   question". The env must be deterministic given its seed; a replay that
   diverges raises.
6. GRPO's credit over the G episodes of each task (the configured
   normalisation: `scale_by_std`, as for grpo); the replayed refinement's
   rows are `Batch.shaped`.

Choices where the paper has one turn and we have many (ours): the previous
attempt is the agent's turns, numbered ("Turn k: ..."), cut in the middle to
`critique.max_chars`; the ground truth is the oracle's whole episode, which
equals the expected answers turn by turn only while the agent stayed on the
oracle's path (exactly so on Execution, whose later turns depend only on the
task). The initial episodes' and the refinement's env rewards are both the
env's (the replay recomputes them; only the first observation differs).
Metrics: `critique/initial_success`, `critique/refinement_success` (every
refinement), `critique/selected_success`, `critique/rescued_groups` (tasks
with no successful initial episode whose kept refinement succeeds).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from longhorizon.envs.core.base import clip_text
from longhorizon.envs.core.wrappers import RULE_FEEDBACK, FeedbackContext, rule_feedback
from longhorizon.errors import UserError
from longhorizon.feedback.judges import Judge, JudgeCache
from longhorizon.rollout import EpisodeSpec, ModelPolicy, OraclePolicy, run_episodes
from longhorizon.rollout.policies import ReplayPolicy
from longhorizon.train.credit_config import CritiqueConfig
from longhorizon.types import Trajectory

Metrics = dict[str, float]
Run = Callable[[list[EpisodeSpec]], list[Trajectory]]

CORRECT, INCORRECT = "The generated solution is correct", "The generated solution is incorrect"
# critique_prompts.py::example_prompt_func (the wrong-answer prompt of the code's `text` critiques), "science
# expert" made generic
CRITIQUE_SYSTEM = ("You are an expert. Analyze a student's incorrect solution by comparing it with the correct "
                   "solution. Identify any errors and provide a detailed step-by-step explanation of mistakes. "
                   "Conclude with: 'Conclusion: wrong [END]'")
CRITIQUE_USER = ("**Question:** {task}\n\n**Student's Answer:** \n{answer}\n\n**Correct Solution:** \n{truth}\n\n"
                 "**Critique:**")


def numbered(answers: list[str], max_chars: int) -> str:
    """One answer as it is; several as numbered turns; cut in the middle to `max_chars`."""
    text = answers[0] if len(answers) == 1 else "\n".join(f"Turn {k}: {a}" for k, a in enumerate(answers, start=1))
    return clip_text(text, max_chars)


def simple_critique(success: bool, truth: str | None = None) -> str:
    """The code's `simple` (truth None) and `simple_gt` critiques."""
    head = CORRECT if success else INCORRECT
    return f"{head}." if truth is None else f"{head}, the ground truth is {truth}."


def feedback_critique(traj: Trajectory, truth: list[str]) -> str:
    """FeedbackLoop's rule generator on the first wrong turn (the last turn when no turn says it is wrong)."""
    if traj.success:
        return simple_critique(True)
    k = next((i for i, t in enumerate(traj.turns) if t.info.get("correct") is False), len(traj.turns) - 1)
    if k < 0:
        return simple_critique(False)
    turn = traj.turns[k]
    expected = turn.info.get("expected", truth[k] if k < len(truth) else None)
    parsed = turn.info["parsed"] if turn.info.get("parsed") is not None else turn.action
    error = turn.info.get("error")
    ctx = FeedbackContext(traj.env_id, traj.turns[0].observation, turn.action, parsed, expected,
                          str(error) if error else None, 1)
    text = RULE_FEEDBACK.get(traj.env_id, rule_feedback)(ctx)
    return f"Turn {k + 1} is wrong. {text}" if len(traj.turns) > 1 or k > 0 else f"{simple_critique(False)} {text}"


@dataclass
class Critic:
    """Writes the critiques of one step's initial episodes (`critique.source`)."""

    cfg: CritiqueConfig
    judge: Judge | None = None
    cache: JudgeCache | None = None

    @classmethod
    def build(cls, cfg: CritiqueConfig, run_dir: Path | None, dtype: str = "float32") -> "Critic":
        if cfg.source not in ("model", "critic"):
            return cls(cfg)
        from longhorizon.models import SamplingParams, TransformersSampler, load_model

        lm = load_model(cfg.model, dtype)  # a name that is not a model: a UserError naming it
        lm.model.eval().requires_grad_(False)
        params = SamplingParams(temperature=0.0, max_new_tokens=cfg.max_new_tokens, seed=0)
        sampler = TransformersSampler(lm.model, lm.tokenizer, params, kv_cache_bytes=0)
        cache = JudgeCache(Path(run_dir) / "critique_cache.sqlite") if run_dir is not None else None
        return cls(cfg, Judge(sampler, name=str(cfg.model), cache=cache, max_chars=cfg.max_chars), cache)

    def critiques(self, trajectories: list[Trajectory], truths: list[list[str]]) -> list[str]:
        c = self.cfg
        if c.source == "simple":
            return [simple_critique(bool(t.success)) for t in trajectories]
        if c.source == "simple_gt":
            return [simple_critique(bool(t.success), numbered(gt, c.max_chars)) for t, gt in zip(trajectories, truths)]
        if c.source == "feedback":
            return [feedback_critique(t, gt) for t, gt in zip(trajectories, truths)]
        out = [simple_critique(True, numbered(gt, c.max_chars)) if t.success else None
               for t, gt in zip(trajectories, truths)]
        wrong = [i for i, text in enumerate(out) if text is None]
        if wrong:
            out_texts = self._write([trajectories[i] for i in wrong], [truths[i] for i in wrong])
            for i, text in zip(wrong, out_texts):
                out[i] = clip_text(text.strip(), c.max_chars) or simple_critique(False)  # an empty critique says less
        return [str(text) for text in out]

    def _write(self, trajectories: list[Trajectory], truths: list[list[str]]) -> list[str]:
        assert self.judge is not None
        c = self.cfg
        if c.source == "critic":
            from longhorizon.feedback.critic import critique_messages, solution_steps

            steps = [critique_messages(t.turns[0].observation, solution_steps(t)) for t in trajectories]
            return self.judge.write(steps, kind="critic")
        conversations = [[{"role": "system", "content": CRITIQUE_SYSTEM},
                          {"role": "user", "content": CRITIQUE_USER.format(
                              task=clip_text(t.turns[0].observation, c.max_chars),
                              answer=numbered([turn.action for turn in t.turns], c.max_chars),
                              truth=numbered(gt, c.max_chars))}] for t, gt in zip(trajectories, truths)]
        return self.judge.write(conversations, kind="critique")

    def close(self) -> None:
        if self.cache:
            self.cache.close()


def oracle_answers(specs: list[EpisodeSpec], source: str) -> list[list[str]]:
    """The env oracle's actions on each task, from its start: the ground truth of `simple_gt` and `model`, and
    `feedback`'s expected answer where a turn's info has none (no oracle: none)."""
    try:
        return [[turn.action for turn in t.turns] for t in run_episodes(specs, OraclePolicy())]
    except (UserError, NotImplementedError):
        if source == "feedback":
            return [[] for _ in specs]
        raise UserError(f"critique source {source} needs the env's oracle_action (the ground truth), which "
                        f"{specs[0].env_id} does not have: use critique.source simple or feedback") from None


def collect(specs: list[EpisodeSpec], run: Run, policy: ModelPolicy,
            critic: Critic) -> tuple[list[Trajectory], Metrics]:
    """One step's episodes: each task's `G - 1` initial episodes and its kept refinement, replayed without the
    critique (`metadata["refinement"]`), grouped by task; and the step's critique metrics."""
    by_group: dict[int, list[EpisodeSpec]] = defaultdict(list)
    for spec in specs:
        by_group[spec.group_id].append(spec)
    if any(len(group) < 2 for group in by_group.values()):
        raise UserError("critique_grpo needs algorithm.group_size >= 2 (G - 1 initial episodes and 1 refinement)")
    initial_specs = [s for group in by_group.values() for s in group[:-1]]
    initial = run(initial_specs)
    firsts = [group[0] for group in by_group.values()]
    truth_of = dict(zip(by_group, oracle_answers(firsts, critic.cfg.source))) if critic.cfg.source != "simple" else {}
    truths = [truth_of.get(s.group_id, []) for s in initial_specs]
    critiques = critic.critiques(initial, truths)
    max_chars = critic.cfg.max_chars
    attempts = [numbered([t.action for t in traj.turns] or [""], max_chars) for traj in initial]
    refine_specs = [replace(s, wrappers=[*s.wrappers, {"name": "refine", "critique": text, "attempt": attempt}])
                    for s, attempt, text in zip(initial_specs, attempts, critiques)]
    refinements = run(refine_specs)
    of_group: dict[int, list[int]] = defaultdict(list)
    for i, spec in enumerate(refine_specs):
        of_group[spec.group_id].append(i)
    kept = {g: ids[keep([refinements[i] for i in ids])] for g, ids in of_group.items()}
    recorded = {g: refinements[i] for g, i in kept.items()}
    replayed = dict(zip(kept, run_episodes([by_group[g][-1] for g in kept], ReplayPolicy(policy, recorded))))
    for g, traj in replayed.items():
        check_replay(traj, recorded[g])
        traj.metadata.update(refinement=True, critique=critiques[kept[g]], refinement_return=recorded[g].total_reward)
    initial_of: dict[int, list[Trajectory]] = defaultdict(list)
    for spec, traj in zip(initial_specs, initial):
        initial_of[spec.group_id].append(traj)
    rescued = [g for g in kept if recorded[g].success and not any(t.success for t in initial_of[g])]
    success = lambda ts: sum(bool(t.success) for t in ts) / max(len(ts), 1)  # noqa: E731
    return [t for g in by_group for t in [*initial_of[g], replayed[g]]], {
        "critique/initial_success": success(initial), "critique/refinement_success": success(refinements),
        "critique/selected_success": success(list(recorded.values())), "critique/rescued_groups": float(len(rescued)),
        "critique/refinement_tokens": float(sum(len(t.action_ids) for x in replayed.values() for t in x.turns))}


def keep(refinements: list[Trajectory]) -> int:
    """The code's `process_refinement_groups`: the first refinement that succeeds, else the first with the highest
    return."""
    solved = [i for i, t in enumerate(refinements) if t.success]
    if solved:
        return solved[0]
    returns = [t.total_reward for t in refinements]
    return returns.index(max(returns))


def check_replay(replayed: Trajectory, recorded: Trajectory) -> None:
    """The replay took the recorded turns, all of them, and ended where the recording did."""
    if [t.action_ids for t in replayed.turns] != [t.action_ids for t in recorded.turns]:
        raise RuntimeError(f"{recorded.env_id} (seed {recorded.seed}): the refinement's replay ended after "
                           f"{len(replayed.turns)} of {len(recorded.turns)} turns; the env is not deterministic "
                           "given its seed, so critique_grpo cannot train on it")
