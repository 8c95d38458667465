"""Feedback-aware fine-tuning (FAFT, Chen, Pesaranghader, Sadhu, Yi, arXiv 2408.06318) on Travel: plans checked by
the env's constraint verifier, the verifier's messages as feedback, and the feedback-conditioned revisions as
conversations to fine-tune on with `algorithm: sft`.

    tasks = plan_tasks("longhorizon/Travel-v0", 64)                     # the oracle: task, search results, plan
    checked = check_drafts(tasks, model_drafter(sampler, params), perturb=2)
    write_conversations("faft.jsonl", faft_conversations(tasks, checked))   # then algorithm: sft on it

    longhorizon faft longhorizon/Travel-v0 --episodes N --model M --out faft.jsonl [--perturb K] [--set KNOB=V]

What the paper says (methods-2.md §16; no code released): a Planner drafts a plan from the query and the
reference information, a Feedback Generator checks it against the commonsense and hard constraints, a Refiner
revises it. FAFT fine-tunes the planner on plans paired with both positive and negative feedback, not only on
correct plans as SFT does. The training format, the data size and the positive/negative ratio are not stated.

How it maps here (the unverified details, as chosen):
1. Sole planning, TravelPlanner's mode that the paper works in: the prompt is the env's task (the query, the
   rules, the plan schema) and the reference information, which is the observations of the oracle's searches
   (the tool results, verbatim). A plan is written in the env's own call format, a `submit_plan` tool call.
2. Drafts, each checked by the env's verifier (`check_plan`: the checks `submit_plan` grades by):
   - the oracle's plan, which passes: a positive sample;
   - K perturbed oracle plans (`perturb`, default 2, drawn per task from `PERTURBATIONS`, each an edit that breaks
     the commonsense constraint it is named after), so that negative samples exist however weak the model is.
     The verifier lists every constraint an edit breaks, not only the named one;
   - one plan from the model (`--model`, `none` for none), sampled from `planning_prompt` (temperature 1 by
     default, stopping at `</tool_call>`): positive if it passes, else negative. A prompt too long for the model
     gets the empty draft (not delivered).
3. Feedback is the verifier's messages in words (`feedback_text`): "The plan passes every constraint.", or
   "The plan fails these constraints:" and one line "- <constraint in words>: <why>" per violation, in the
   verifier's order. A plan that cannot be read gets "- not delivered: <why>".
4. Formats (`FORMATS`, `--formats`):
   - `revise` (default): one user turn holds the task, the reference information, the draft as written and the
     feedback; one assistant turn holds the revision. After positive feedback the revision is the draft itself
     (the model learns to keep a correct plan). After negative feedback it is the model's own revision when one
     sampled from this very prompt passes the verifier (one try per failing draft, perturbed ones included, when
     there is a model), else the oracle's plan. The draft is inside the user turn, so only the revision carries loss.
   - `condition` (§16's reading of the format, Chain-of-Hindsight style): the user turn holds the task, the
     reference information and the feedback on the plan that follows; the assistant turn is that plan (the
     draft as written), passing or not. The loss covers the plan whatever its verdict; at inference the planner
     is conditioned on the positive feedback (`condition_prompt(task)`).
   A revision is learned as the canonical call `format_tool_call("submit_plan", {"plan": ...})` of its parsed
   plan. The oracle's, perturbed and model drafts are shown (and, under `condition`, learned) as written.
5. Rows are TRL `messages` conversations (`feedback.hindsight.write_conversations`): `train/demonstrations.py`
   puts the loss on the assistant message and its end-of-turn token, never on the user turn and its feedback.
Not built: the Scrubber (reference filtering), an LLM feedback generator (the paper found them unreliable; the
verifier here is exact), DPO on the same data, and a sole-planning eval command. The counts that `longhorizon
faft --model RUN_DIR/model --seed 1000000` prints (model drafts and model revisions that pass) serve as one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from longhorizon.context.base import chat_ids
from longhorizon.envs.core.tools import format_tool_call, parse_tool_calls
from longhorizon.envs.travel.verifier import parse_plan
from longhorizon.envs.travel.world import MEALS
from longhorizon.errors import UserError
from longhorizon.feedback.hindsight import marked, with_marker
from longhorizon.rollout.demos import oracle_demonstrations
from longhorizon.rollout.runner import make_env

Plan = list[dict[str, Any]]
Messages = list[dict[str, str]]
Drafter = Callable[[list[Messages]], list[str]]  # conversations -> one reply each
Verify = Callable[[Any], list[str]]  # a plan -> the violated constraints as "name: why"; [] if it passes

POSITIVE = "The plan passes every constraint."
NEGATIVE = "The plan fails these constraints:"
SUBMIT = ('Submit the plan: call submit_plan with it, as <tool_call>{"name": "submit_plan", "arguments": '
          '{"plan": [...]}}</tool_call>.')
REVISE = "Write the final plan as the feedback requires and submit it with submit_plan."


@dataclass(frozen=True)
class PlanTask:
    """One planning problem, from an oracle episode."""

    env_id: str
    seed: int
    knobs: dict[str, Any]
    task: str  # the env's first observation: the query, the rules, the plan schema
    reference: str  # the observations of the oracle's searches (TravelPlanner's reference information)
    oracle_plan: str  # the oracle's submit_plan call (it passes every constraint)


@dataclass(frozen=True)
class Checked:
    """A draft plan, the verifier's verdict on it, and the plan learned after that feedback."""

    task: int  # index into the tasks
    source: str  # "oracle", "model" or "perturbed:<constraint>"
    draft: str  # the plan as written
    violations: tuple[str, ...]  # the verifier's "name: why" lines; () if the plan passes
    revision: str = ""  # the canonical submit_plan call learned after the feedback (format `revise`)
    revised_by: str = ""  # "draft" (it passed and is kept), "model" (its own revision passed) or "oracle"

    @property
    def positive(self) -> bool:
        return not self.violations


# -- the verifier and its feedback ------------------------------------------------------------------------


def verifier(env: Any, env_id: str) -> Verify:
    """The env's constraint verifier (`check_plan`), or a user error for an env without one."""
    try:
        return env.get_wrapper_attr("check_plan")
    except AttributeError:
        raise UserError(f"{env_id} has no constraint verifier (check_plan); feedback-aware fine-tuning needs "
                        "one, as longhorizon/Travel-v0 has") from None


def plan_of(text: str) -> tuple[Plan | None, str | None]:
    """The plan of the (last) submit_plan call in a message, or (None, why it cannot be read)."""
    calls, error = parse_tool_calls(text)
    submits = [c for c in calls if c.name == "submit_plan"]
    if error or not submits:
        return None, error or "no submit_plan call"
    return parse_plan(submits[-1].arguments.get("plan"))


def violations(text: str, verify: Verify) -> tuple[str, ...]:
    """The constraints the plan in `text` violates ("name: why"); one "not delivered: why" if it cannot be read."""
    plan, error = plan_of(text)
    return (f"not delivered: {error}",) if plan is None else tuple(verify(plan))


def feedback_text(failed: tuple[str, ...] | list[str]) -> str:
    """The verifier's messages in words (see the module docstring, point 3)."""
    if not failed:
        return POSITIVE
    lines = [f"- {name.replace('_', ' ')}: {why}" for name, _, why in (v.partition(": ") for v in failed)]
    return "\n".join([NEGATIVE, *lines])


def canonical(text: str) -> str:
    """The submit_plan call of the plan in `text`, written as the env's oracle writes it."""
    plan, error = plan_of(text)
    if plan is None:
        raise ValueError(f"no plan to write: {error}")
    return format_tool_call("submit_plan", {"plan": plan})


# -- prompts ---------------------------------------------------------------------------------------------------


def reference_context(task: PlanTask) -> str:
    return f"{task.task}\n\nReference information (the results of the searches):\n{task.reference}"


def planning_prompt(task: PlanTask) -> str:
    """What the planner is asked: the task and the reference information, then to submit the plan."""
    return f"{reference_context(task)}\n\n{SUBMIT}"


def revision_prompt(task: PlanTask, draft: str, feedback: str) -> str:
    """What the planner is asked after a draft: the task, the reference information, the draft and its feedback."""
    return (f"{reference_context(task)}\n\nA draft plan:\n{draft}\n\n"
            f"Feedback from the constraint checker: {feedback}\n\n{REVISE}")


def condition_marker(feedback: str) -> str:
    return f"Feedback from the constraint checker on the plan that follows: {feedback}"


def condition_prompt(task: PlanTask, feedback: str = POSITIVE) -> str:
    """The `condition` format's prompt; at inference, with the positive feedback."""
    return with_marker(planning_prompt(task), condition_marker(feedback))


# -- perturbations of a correct plan, each named after the commonsense constraint it breaks -------------------


def _filled(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and value.strip() in ("", "-"))


def _first(plan: Plan, test: Callable[[dict[str, Any]], bool]) -> int | None:
    return next((i for i, day in enumerate(plan) if test(day)), None)


def drop_transport(plan: Plan) -> Plan | None:
    """Day 1 (a travel day) without transportation, as the env's `wrong_action`."""
    plan[0]["transportation"] = "-"
    return plan


def unknown_accommodation(plan: Plan) -> Plan | None:
    """The first accommodation replaced by an id the database does not hold (Travel's ids start at H001)."""
    i = _first(plan, lambda day: _filled(day.get("accommodation")))
    if i is None:
        return None
    plan[i]["accommodation"] = "H000"
    return plan


def transport_on_a_stay(plan: Plan) -> Plan | None:
    """A taxi on the first day spent in one city."""
    i = _first(plan, lambda day: isinstance(day.get("current_city"), str)
               and not day["current_city"].strip().lower().startswith("from "))
    if i is None:
        return None
    plan[i]["transportation"] = "taxi"
    return plan


def repeat_restaurant(plan: Plan) -> Plan | None:
    """The second meal of the trip at the first meal's restaurant."""
    slots = [(i, meal) for i, day in enumerate(plan) for meal in MEALS if _filled(day.get(meal))]
    if len(slots) < 2:
        return None
    (i, first), (j, second) = slots[:2]
    plan[j][second] = plan[i][first]
    return plan


def repeat_attraction(plan: Plan) -> Plan | None:
    """The first attraction of the trip visited twice that day."""
    i = _first(plan, lambda day: isinstance(day.get("attraction"), list) and bool(day["attraction"]))
    if i is None:
        return None
    plan[i]["attraction"] = plan[i]["attraction"] + plan[i]["attraction"][:1]
    return plan


def mix_transport(plan: Plan) -> Plan | None:
    """The last day by self-driving after a day-1 flight or taxi, or by taxi after day-1 self-driving."""
    first, last = plan[0].get("transportation"), plan[-1].get("transportation")
    if len(plan) < 2 or not _filled(first) or not _filled(last):
        return None
    plan[-1]["transportation"] = "taxi" if str(first).strip().lower() == "self-driving" else "self-driving"
    return plan


PERTURBATIONS: dict[str, Callable[[Plan], Plan | None]] = {
    "complete_information": drop_transport,
    "within_sandbox": unknown_accommodation,
    "within_current_city": transport_on_a_stay,
    "diverse_restaurants": repeat_restaurant,
    "diverse_attractions": repeat_attraction,
    "non_conflicting_transportation": mix_transport,
}


def perturb(plan: Plan, constraint: str) -> Plan | None:
    """A copy of `plan` edited to break `constraint`; None if the plan has nothing that edit can change."""
    return PERTURBATIONS[constraint](copy.deepcopy(plan))


def perturbed_drafts(tasks: list[PlanTask], k: int, seed: int = 0) -> list[Checked]:
    """Up to `k` distinct perturbations of each task's oracle plan, drawn from seed (seed, task seed); unchecked."""
    drafts = []
    for i, task in enumerate(tasks):
        plan, _ = plan_of(task.oracle_plan)
        edits = {name: p for name in sorted(PERTURBATIONS) if (p := perturb(plan or [], name)) is not None}
        names = sorted(edits)
        for j in np.random.default_rng([seed, task.seed]).permutation(len(names))[:k]:
            call = format_tool_call("submit_plan", {"plan": edits[names[j]]})
            drafts.append(Checked(i, f"perturbed:{names[j]}", call, ()))
    return drafts


# -- the data ---------------------------------------------------------------------------------------------------


def plan_tasks(env_id: str, episodes: int, knobs: dict[str, Any] | None = None, seed: int = 0) -> list[PlanTask]:
    """`episodes` planning problems from the env's oracle (env seeds seed .. seed + episodes - 1)."""
    env = make_env(env_id, dict(knobs or {}))
    verifier(env, env_id)  # an env without a verifier is refused before the oracle runs
    env.close()
    tasks = []
    for demo in oracle_demonstrations(env_id, episodes, knobs, seed):
        reference = "\n\n".join(turn.observation for turn in demo.turns[1:])
        tasks.append(PlanTask(env_id, demo.seed, dict(knobs or {}), demo.turns[0].observation, reference,
                              demo.turns[-1].action))
    return tasks


def task_verifiers(tasks: list[PlanTask]) -> list[Verify]:
    """Each task's verifier: its env reset to the task's seed (checked to show the same task)."""
    out = []
    for task in tasks:
        env = make_env(task.env_id, dict(task.knobs))
        obs, _ = env.reset(seed=task.seed)
        if obs != task.task:
            raise UserError(f"{task.env_id} seed {task.seed} does not rebuild the task (other knobs or env version?)")
        out.append(verifier(env, task.env_id))
    return out


def model_drafter(sampler: Any, params: Any) -> Drafter:
    """A `Drafter` from a sampler: each conversation through the chat template, one completion each; a prompt
    that leaves no room for `params.max_new_tokens` gets the empty reply."""

    def draft(conversations: list[Messages]) -> list[str]:
        prompts = [chat_ids(sampler.tokenizer, messages, None) for messages in conversations]
        fits = [i for i, p in enumerate(prompts) if len(p) + params.max_new_tokens <= sampler.max_length]
        texts = [g.text for g in sampler.generate([prompts[i] for i in fits], params)] if fits else []
        replies = dict(zip(fits, texts))
        return [replies.get(i, "") for i in range(len(prompts))]

    return draft


def check_drafts(tasks: list[PlanTask], drafter: Drafter | None = None, perturb: int = 2, seed: int = 0,
                 verifies: list[Verify] | None = None) -> list[Checked]:
    """Every draft (the oracle's, `perturb` perturbed ones and the model's per task) checked and given its revision;
    `verifies` defaults to each task's env verifier (`task_verifiers`)."""
    verifies = task_verifiers(tasks) if verifies is None else verifies
    drafts = [Checked(i, "oracle", task.oracle_plan, ()) for i, task in enumerate(tasks)]
    drafts += perturbed_drafts(tasks, perturb, seed)
    if drafter is not None:
        texts = drafter([[{"role": "user", "content": planning_prompt(task)}] for task in tasks])
        drafts += [Checked(i, "model", text, ()) for i, text in enumerate(texts)]
    checked = [replace(d, violations=violations(d.draft, verifies[d.task])) for d in drafts]
    if broken := [c for c in checked if c.source == "oracle" and c.violations]:
        raise RuntimeError(f"the oracle's plan fails the verifier on seed {tasks[broken[0].task].seed}: "
                           f"{broken[0].violations}")
    return revise(tasks, checked, drafter, verifies)


def revise(tasks: list[PlanTask], checked: list[Checked], drafter: Drafter | None,
           verifies: list[Verify]) -> list[Checked]:
    """Each draft's revision: the draft if it passed, else the model's own revision if it passes, else the oracle's."""
    out = [replace(c, revision=canonical(c.draft), revised_by="draft") if c.positive else
           replace(c, revision=canonical(tasks[c.task].oracle_plan), revised_by="oracle") for c in checked]
    failing = [k for k, c in enumerate(checked) if not c.positive]
    if drafter is None or not failing:
        return out
    prompts = [[{"role": "user", "content": revision_prompt(tasks[checked[k].task], checked[k].draft,
                                                            feedback_text(checked[k].violations))}] for k in failing]
    for k, text in zip(failing, drafter(prompts)):
        if not violations(text, verifies[checked[k].task]):
            out[k] = replace(out[k], revision=canonical(text), revised_by="model")
    return out


# -- conversations --------------------------------------------------------------------------------------------


def revise_messages(task: PlanTask, c: Checked) -> Messages | None:
    """Format `revise`: (task, reference, draft, feedback) -> the revision."""
    return [{"role": "user", "content": revision_prompt(task, c.draft, feedback_text(c.violations))},
            {"role": "assistant", "content": c.revision}]


def condition_messages(task: PlanTask, c: Checked) -> Messages | None:
    """Format `condition`: (task, reference, feedback) -> the plan the feedback is about; none for an empty draft."""
    if not c.draft.strip():
        return None
    return marked(planning_prompt(task), c.draft, condition_marker(feedback_text(c.violations)))


FORMATS: dict[str, Callable[[PlanTask, Checked], Messages | None]] = {
    "revise": revise_messages,
    "condition": condition_messages,
}


def check_formats(formats: tuple[str, ...] | list[str]) -> None:
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UserError(f"unknown FAFT format(s) {', '.join(bad) or '(none given)'}; choose from {', '.join(FORMATS)}")


def faft_conversations(tasks: list[PlanTask], checked: list[Checked],
                       formats: tuple[str, ...] | list[str] = ("revise",)) -> list[dict[str, Any]]:
    """TRL `messages` rows (with metadata) for every checked draft and format."""
    check_formats(formats)
    rows = []
    for c in checked:
        task = tasks[c.task]
        for fmt in formats:
            messages = FORMATS[fmt](task, c)
            if messages is not None:
                rows.append({"messages": messages, "metadata": {
                    "env_id": task.env_id, "seed": task.seed, "format": fmt,
                    "feedback": "positive" if c.positive else "negative", "draft": c.source,
                    "revised_by": c.revised_by, "violated": [v.partition(": ")[0] for v in c.violations]}})
    return rows


def counts(checked: list[Checked]) -> dict[str, int]:
    """Positive and negative samples, and where the drafts and revisions came from."""
    model = [c for c in checked if c.source == "model"]
    return {"positive": sum(c.positive for c in checked), "negative": sum(not c.positive for c in checked),
            "perturbed": sum(c.source.startswith("perturbed:") for c in checked), "model": len(model),
            "model_pass": sum(c.positive for c in model),
            "revised_by_model": sum(c.revised_by == "model" for c in checked)}
