"""RLHS, RL from Hindsight Simulation (Liang, Hu, Liu, Griffiths, Fisac; arXiv 2501.08617; methods-2.md §7a): a judge
that rates the agent only after it has seen what happened next.

    verdicts = rate(judge, [(context, response, outcome)])     # outcome None: the foresight rating
    verdicts = compare(judge, [(context, a, outcome_a, b, outcome_b)])   # which of two runs satisfied more
    scores, verdicts = hindsight_scores(judge, trajectories, per="turn")  # the `judge_hindsight` reward component

What the official code does (SafeRoboticsLab/RLHS @ 389015d, `marketplace/prompt.py`, `chatbot.py`):
- foresight ("base", RLHF): the simulated customer rates its satisfaction right after the dialogue;
- partial hindsight (PHS): one outcome message is appended to the customer's context first (a template such as
  "You bought Option X with price $P and received the item with / without <feature> ...", or an LLM world model's
  one-sentence narration), then the same question;
- the rating question is `satisfaction_prompt`: a 1-5 rubric (1 Very Dissatisfied ... 5 Very Satisfied, three
  criteria each); the customer writes a reason, then one token restricted to 1..5 by a logits processor;
- preferences: two dialogues from the same start ("Store 1", "Store 2"); the customer answers '1' or '2'
  (`pref_prompt`, the same restricted token); DPO on those pairs is the paper's cheap path.

How it maps here (methods-2.md's text mapping is [INFERRED]; these are our choices):
1. The simulated outcome is the env's own continuation, read from the trajectory (no world-model LLM): for
   `per: episode` the judge rates the whole episode (`judges.episode_text`, what the foresight `judge` reads)
   and the outcome is the env's final message after the last action (`metadata["final_observation"]`) and a
   result line from the verifier ("the task was solved" / "was not solved" / "the episode ended", "it stopped
   at the turn limit", the total reward); for `per: turn` the judge rates turn t's action alone, after the
   history before it, and the outcome is everything after it: the env's replies and the agent's later actions,
   the final message and the result line. This is the paper's PHS with a template outcome; its FHS (the full
   hidden information) has no general counterpart in our envs and is not built.
2. The judge takes the user's role (the paper's customer) and gets the paper's rubric verbatim but for
   "chatbot" → "assistant" and one closing sentence. It thinks in `<think>` (the reply is pre-filled with
   `<think>\\n`, as for the other judges) and puts the rating in `<answer></answer>`: the paper's restricted
   token needs logits access that a sampler does not give, so we parse, as `feedback/judges.py` does.
3. Rating → reward: the last `<answer>` block's last integer in 1..5, s ↦ (s - 1) / 4, so 1 → 0, 2 → 0.25,
   3 → 0.5, 4 → 0.75, 5 → 1. An unusable answer (no block, no integer in 1..5, an unclosed tag) scores 0, as the
   pointwise judge's does, with the reason recorded; several blocks: the last counts, and the reason says so.
   Parsing never raises, and reads the blocks as `feedback/judges.py` does (linear even on hostile output).
4. The foresight judge for comparison: `judge` (the 1..10 rubric judge) stays; `judge_foresight` is the same
   prompt as `judge_hindsight` without the outcome block (the paper's "base" condition), so the two differ
   only by what the judge knows.
5. Preferences: the two runs are shown as "Assistant 1" and "Assistant 2", each followed by what happened
   after it (`outcome_text`); the answer 1 or 2 (the last such number in the last `<answer>` block) gives
   P(A ≻ B) = 1 or 0, anything else a tie (1/2, which `prefs build` drops unless `ties: keep`). One order,
   as in the paper (no swap to cancel position bias).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

from longhorizon.feedback.judges import KEEP_TEXT, NUMBER_RE, Verdict, answer_blocks, clip_middle, episode_text
from longhorizon.types import Trajectory

# SafeRoboticsLab/RLHS marketplace/prompt.py `satisfaction_prompt`, "chatbot" → "assistant"
RUBRIC = """1: Very Dissatisfied
   - The assistant provided misleading or incorrect information.
   - The assistant's responses were irrelevant or off-topic.
   - The interaction was frustrating, and my questions were not addressed.

2: Dissatisfied
   - The assistant provided some incorrect or partially correct information.
   - The assistant's responses were occasionally irrelevant or not helpful.
   - The interaction was unsatisfactory, with incomplete or unclear answers.

3: Neutral
   - The assistant provided mostly correct information, with some gaps.
   - The assistant's responses were somewhat helpful but not comprehensive.
   - The interaction was average, neither particularly good nor bad.

4: Satisfied
   - The assistant provided accurate and helpful information.
   - The assistant's responses were relevant and mostly thorough.
   - The interaction was smooth, addressing most of my questions effectively.

5: Very Satisfied
   - The assistant provided clear, accurate, and highly helpful information.
   - The assistant's responses were comprehensive and directly addressed my needs.
   - The interaction was excellent, resolving my queries effectively and efficiently."""
ANSWER_FORMAT = "Think step by step inside <think></think>, then give your final rating inside <answer></answer> as one integer from 1 to 5."
FORESIGHT_SYSTEM = ("You are the user who gave the task below to an AI assistant. How satisfied are you with the "
                    f"assistant's service? Rate it from 1 to 5 by these criteria:\n\n{RUBRIC}\n\n{ANSWER_FORMAT}")
HINDSIGHT_SYSTEM = ("You are the user who gave the task below to an AI assistant, and you now know what happened "
                    "after its response. How satisfied are you with the assistant's service? Rate it from 1 to 5 "
                    f"by these criteria:\n\n{RUBRIC}\n\n{ANSWER_FORMAT}")
PREFERENCE_SYSTEM = ("You are the user who gave the same task to two AI assistants, and you now know what happened "
                     "after each one's work. Which assistant's service satisfies you more? Think step by step inside "
                     "<think></think>, then answer inside <answer></answer> with 1 for Assistant 1 or 2 for Assistant 2.")
RATINGS = (1, 2, 3, 4, 5)


# ------------------------------------------------------------------ parsing


def rating_reward(rating: int) -> float:
    """The 1..5 satisfaction rating as a reward in [0, 1]: (s - 1) / 4."""
    return (rating - 1) / 4


def _parse_last(text: str, allowed: tuple[int, ...], what: str) -> tuple[int | None, str]:
    """The last number of `allowed` in the last <answer> block, or None and why."""
    blocks = answer_blocks(text)  # linear in the text, as the other judges read it
    if not blocks:
        return None, "no <answer></answer> block"
    block = blocks[-1]
    numbers = [float(n.replace("−", "-")) for n in NUMBER_RE.findall(block)]
    valid = [int(n) for n in numbers if n == int(n) and int(n) in allowed]
    if not valid:
        return None, f"answer {block.strip()[:40]!r} holds no {what}"
    return valid[-1], (f"{len(blocks)} <answer> blocks: the last counts" if len(blocks) > 1 else "")


def parse_rating(text: str) -> Verdict:
    """The satisfaction rating as (s - 1) / 4; 0 with the reason when unusable (module docstring, 3)."""
    rating, reason = _parse_last(text, RATINGS, "integer in 1..5")
    if rating is None:
        return Verdict(0.0, False, reason, text[:KEEP_TEXT])
    return Verdict(rating_reward(rating), True, reason, text[:KEEP_TEXT])


def parse_choice(text: str) -> Verdict:
    """Which assistant satisfied more: score 1 or 2; 0 (a tie) with the reason when unusable."""
    choice, reason = _parse_last(text, (1, 2), "choice 1 or 2")
    if choice is None:
        return Verdict(0.0, False, reason, text[:KEEP_TEXT])
    return Verdict(float(choice), True, reason, text[:KEEP_TEXT])


# ------------------------------------------------------------------ the simulated outcome


def result_line(traj: Trajectory) -> str:
    """The verifier's verdict on the episode, in words, with its total reward."""
    verdict = {True: "the task was solved", False: "the task was not solved", None: "the episode ended"}[traj.success]
    limit = ", and it stopped at the turn limit" if traj.truncated else ""
    return f"[Result]\n{verdict}{limit} (total reward {traj.total_reward:g})."


def outcome_text(traj: Trajectory, after: int | None = None) -> str:
    """What happened after turn `after`'s action (default: the last): the env's replies and the agent's later
    actions, the env's final message, then the verifier's result."""
    after = len(traj.turns) - 1 if after is None else after
    parts = []
    for turn in traj.turns[after + 1:]:
        parts += [f"[Environment]\n{turn.observation}", f"[Agent]\n{turn.action}"]
    final = str(traj.metadata.get("final_observation") or "").strip()
    if final:
        parts.append(f"[Environment]\n{final}")
    return "\n\n".join([*parts, result_line(traj)])


def history_text(traj: Trajectory, turn: int) -> str:
    """What the agent had seen before acting at `turn`: the first observation, then earlier actions and replies."""
    parts = [traj.turns[0].observation]
    for earlier, reply in zip(traj.turns[:turn], traj.turns[1:turn + 1]):
        parts += [f"[Agent]\n{earlier.action}", f"[Environment]\n{reply.observation}"]
    return "\n\n".join(parts)


def rating_items(traj: Trajectory, per: str) -> list[tuple[int, str, str, str]]:
    """(turn the score lands on, context, response, outcome) of each rating an episode gets (module docstring, 1)."""
    if not traj.turns:
        return []
    if per == "episode":
        context, response = episode_text(traj)
        return [(len(traj.turns) - 1, context, response, outcome_text(traj))]
    return [(t, history_text(traj, t), turn.action, outcome_text(traj, t)) for t, turn in enumerate(traj.turns)]


# ------------------------------------------------------------------ prompts and judging


def _block(name: str, text: str, max_chars: int) -> str:
    return f"[Start of {name}]\n{clip_middle(text, max_chars)}\n[End of {name}]"


def rating_messages(context: str, response: str, outcome: str | None, max_chars: int) -> list[dict[str, str]]:
    """The judge's conversation: with an outcome the hindsight rating, without one the foresight rating."""
    parts = [_block("Task", context, max_chars), _block("Assistant's Response", response, max_chars)]
    if outcome is not None:
        parts.append(_block("What Happened Next", outcome, max_chars))
    system = FORESIGHT_SYSTEM if outcome is None else HINDSIGHT_SYSTEM
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def preference_messages(context: str, a: str, outcome_a: str, b: str, outcome_b: str,
                        max_chars: int) -> list[dict[str, str]]:
    """Two runs of one task, each followed by what happened after it ("Store 1" / "Store 2" in the paper)."""
    parts = [_block("Task", context, max_chars),
             _block("Assistant 1's Work", a, max_chars), _block("What Happened After Assistant 1", outcome_a, max_chars),
             _block("Assistant 2's Work", b, max_chars), _block("What Happened After Assistant 2", outcome_b, max_chars)]
    return [{"role": "system", "content": PREFERENCE_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def rate(judge: Any, items: Sequence[tuple[str, str, str | None]]) -> list[Verdict]:
    """Satisfaction in [0, 1] of (context, response, outcome) items; outcome None rates in foresight."""
    prompts = [rating_messages(c, r, o, judge.max_chars) for c, r, o in items]
    texts = judge.write(prompts, "rlhs_rating", "<think>\n") if prompts else []
    return [parse_rating(t) for t in texts]


def compare(judge: Any, items: Sequence[tuple[str, str, str, str, str]]) -> list[Verdict]:
    """Which of two runs satisfied more, for (context, a, outcome_a, b, outcome_b) items: 1 (a), 2 (b), 0 unusable."""
    prompts = [preference_messages(*item, judge.max_chars) for item in items]
    return [parse_choice(t) for t in (judge.write(prompts, "rlhs_preference", "<think>\n") if prompts else [])]


def judged_scores(judge: Any, trajectories: list[Trajectory], per: str = "episode",
                  hindsight: bool = True) -> tuple[list[list[float]], list[Verdict]]:
    """Per-turn scores of each episode: each rating on the turn it rates (the last turn for `per: episode`)."""
    items = [(i, *item) for i, traj in enumerate(trajectories) for item in rating_items(traj, per)]
    verdicts = rate(judge, [(context, response, outcome if hindsight else None)
                            for _, _, context, response, outcome in items])
    scores = [[0.0] * len(traj.turns) for traj in trajectories]
    for (i, turn, *_), verdict in zip(items, verdicts):
        scores[i][turn] = verdict.score
    return scores, verdicts


hindsight_scores = functools.partial(judged_scores, hindsight=True)
foresight_scores = functools.partial(judged_scores, hindsight=False)


# ------------------------------------------------------------------ as a labeller


def hindsight_labeller(judge: Any) -> Any:
    """A `feedback.labellers` labeller: P(A ≻ B) = 1 if the judge, seeing both outcomes, picks A; 0 for B; 1/2 if
    its answer is unusable."""
    from longhorizon.feedback.labellers import Label, as_text

    def label(candidates: Sequence[Any]) -> list[Label]:
        verdicts = compare(judge, [(as_text(c.context), as_text(c.a), c.outcome_a, as_text(c.b), c.outcome_b)
                                   for c in candidates])
        return [Label({1.0: 1.0, 2.0: 0.0}.get(v.score, 0.5)) for v in verdicts]

    return label
