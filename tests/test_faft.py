"""Feedback-aware fine-tuning on Travel (feedback/faft.py): the verifier's feedback on a hand-built task, the
conversations and their SFT masks, the perturbations, the CLI on tiny-random, 2 SFT steps on its file, bad input."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from longhorizon.cli import app
from longhorizon.envs.core.tools import CALL_FORMAT_HINT, format_tool_call
from longhorizon.envs.travel.env import TravelEnv
from longhorizon.envs.travel.world import Attraction, Database, Drive, Flight, Hotel, Query, Restaurant
from longhorizon.errors import UserError
from longhorizon.feedback.faft import (
    PERTURBATIONS,
    Checked,
    PlanTask,
    check_drafts,
    condition_prompt,
    counts,
    faft_conversations,
    feedback_text,
    perturb,
    plan_of,
    plan_tasks,
    task_verifiers,
    violations,
)
from longhorizon.train import load_config, train
from longhorizon.train.checkpoint import latest_checkpoint, load_weights
from longhorizon.train.demonstrations import conversation_sample
from longhorizon.train.metrics import read_records
from longhorizon.train.model import build_models

ENV = "longhorizon/Travel-v0"
DATES = ("2024-03-01", "2024-03-02", "2024-03-03")
runner = CliRunner()


# -- a hand-built task: 3 days from Origin to Alpha, 1 person ---------------------------------------------------


def hand_db() -> Database:
    drives = {(a, b): Drive(a, b, 100, "1 hours 15 mins", 25, 90) for a, b in [("Origin", "Alpha"), ("Alpha", "Origin")]}
    flights = [Flight("F100", "Origin", "Alpha", DATES[0], "08:00", "09:00", 100),
               Flight("F101", "Alpha", "Origin", DATES[2], "18:00", "19:00", 90)]
    restaurants = [Restaurant(f"R{i}", f"Place {i}", "Alpha", ("Cafe",), 10 + i) for i in range(1, 5)]
    return Database({"Homeland": ["Origin"], "Sunland": ["Alpha"]}, {f.id: f for f in flights}, drives,
                    {"H1": Hotel("H1", "Alpha Loft", "Alpha", "Entire home/apt", 100, (), 1, 2)},
                    {r.id: r for r in restaurants}, {a: Attraction(a, f"Sight {a}", "Alpha") for a in ("A1", "A2")})


QUERY = Query("Origin", "Alpha", 1, DATES, people=1, budget=10_000)


def good_plan() -> list[dict]:
    return [{"day": 1, "current_city": "from Origin to Alpha", "transportation": "flight F100", "breakfast": "-",
             "lunch": "-", "dinner": "-", "attraction": [], "accommodation": "H1"},
            {"day": 2, "current_city": "Alpha", "transportation": "-", "breakfast": "R1", "lunch": "R2",
             "dinner": "R3", "attraction": ["A1"], "accommodation": "H1"},
            {"day": 3, "current_city": "from Alpha to Origin", "transportation": "flight F101", "breakfast": "-",
             "lunch": "-", "dinner": "-", "attraction": [], "accommodation": "-"}]


def call(plan: list[dict]) -> str:
    return format_tool_call("submit_plan", {"plan": plan})


def hand_verifier(query: Query = QUERY):
    """Travel's own verifier (`TravelEnv.check_plan`) on the hand-built database and query."""
    env = TravelEnv()
    env.reset(seed=0)
    env.db, env.query = hand_db(), query
    return env.check_plan


HAND_TASK = PlanTask(ENV, 7, {}, "TASK", "REF", call(good_plan()))
NOT_CHECKED = "not checked: the plan is incomplete or cites entities outside the database"


def test_feedback_on_a_passing_plan_and_on_known_violations():
    verify = hand_verifier()
    assert violations(call(good_plan()), verify) == ()
    assert feedback_text(()) == "The plan passes every constraint."
    bad = good_plan()
    bad[1].update(transportation="taxi", lunch="R1")  # a taxi on a day in Alpha; R1 at breakfast and lunch
    assert feedback_text(violations(call(bad), verify)) == (
        "The plan fails these constraints:\n"
        "- within current city: day 2: transportation on a day without travel\n"
        "- diverse restaurants: restaurant(s) R1 used more than once")
    # flights 100 + 90, meals 11 + 12 + 13, H1 2 nights x 100 x ceil(1 / 2) rooms = 426
    assert feedback_text(violations(call(good_plan()), hand_verifier(replace(QUERY, budget=300)))) == (
        "The plan fails these constraints:\n- budget: the plan costs $426, over the $300 budget")


def test_plans_that_cannot_be_read_are_not_delivered():
    verify = hand_verifier()
    assert violations("I would fly.", verify) == (f"not delivered: no tool call found. {CALL_FORMAT_HINT}",)
    other = format_tool_call("search_cities", {"state": "Sunland"})
    assert feedback_text(violations(other, verify)) == ("The plan fails these constraints:\n"
                                                        "- not delivered: no submit_plan call")
    assert violations(format_tool_call("submit_plan", {"plan": []}), verify) == (
        "not delivered: the plan must be a non-empty JSON array with one object per day",)
    assert plan_of(call(good_plan())) == (good_plan(), None)


# -- perturbations -------------------------------------------------------------------------------------------

HAND_PERTURBED = {  # the exact verdict of each perturbation of the hand-built plan
    "complete_information": ["complete_information: day 1: a travel day needs transportation",
                             "non_conflicting_transportation: day 1 needs transportation", f"budget: {NOT_CHECKED}"],
    "within_sandbox": ["within_sandbox: day 1: unknown id(s) H000", f"budget: {NOT_CHECKED}"],
    "within_current_city": ["within_current_city: day 2: transportation on a day without travel"],
    "diverse_restaurants": ["diverse_restaurants: restaurant(s) R1 used more than once"],
    "diverse_attractions": ["diverse_attractions: attraction(s) A1 visited more than once"],
    "non_conflicting_transportation": ["non_conflicting_transportation: self-driving cannot be combined with "
                                       "flights or taxis"],
}


@pytest.mark.parametrize("constraint", sorted(PERTURBATIONS))
def test_each_perturbation_of_the_hand_plan_breaks_what_it_claims(constraint):
    plan = good_plan()
    edited = perturb(plan, constraint)
    assert plan == good_plan()  # the original is left alone
    assert hand_verifier()(edited) == HAND_PERTURBED[constraint]


def test_perturbation_edits_by_hand():
    assert perturb(good_plan(), "diverse_restaurants")[1]["lunch"] == "R1"
    assert perturb(good_plan(), "diverse_attractions")[1]["attraction"] == ["A1", "A1"]
    assert perturb(good_plan(), "non_conflicting_transportation")[2]["transportation"] == "self-driving"
    driving = good_plan()
    driving[0]["transportation"] = driving[2]["transportation"] = "self-driving"
    assert perturb(driving, "non_conflicting_transportation")[2]["transportation"] == "taxi"
    no_stay = [good_plan()[0], good_plan()[2]]
    assert perturb(no_stay, "within_current_city") is None and perturb(no_stay, "diverse_attractions") is None


@pytest.fixture(scope="module")
def generated() -> list[PlanTask]:
    return plan_tasks(ENV, 3) + plan_tasks(ENV, 2, {"days": 5, "n_cities": 2, "tightness": 1.0}, seed=10)


def test_perturbations_of_generated_oracle_plans_break_what_they_claim(generated):
    verifies = task_verifiers(generated)
    tried = 0
    for task, verify in zip(generated, verifies):
        plan, _ = plan_of(task.oracle_plan)
        assert verify(plan) == []
        for constraint in PERTURBATIONS:
            edited = perturb(plan, constraint)
            if edited is not None:
                tried += 1
                assert constraint in [v.partition(": ")[0] for v in verify(edited)], (task.seed, constraint)
    assert tried == 5 * len(PERTURBATIONS)  # every plan here has a day in one city (4 nights over 2 cities)


def test_tasks_come_from_the_oracle(generated):
    task = generated[0]
    assert task.task.startswith("=== TRAVEL PLANNING ===") and task.reference.startswith("[search_accommodations] ")
    assert task.oracle_plan.startswith('<tool_call>\n{"name": "submit_plan"')
    drafts = check_drafts(generated[:1], perturb=2, seed=3)
    assert [d.source.split(":")[0] for d in drafts] == ["oracle", "perturbed", "perturbed"]
    assert len({d.source for d in drafts}) == 3 and drafts == check_drafts(generated[:1], perturb=2, seed=3)


# -- conversations -------------------------------------------------------------------------------------------


class Scripted:
    """A drafter: `plan` for a planning prompt, `revision` for a revision prompt; records the prompts."""

    def __init__(self, plan: str, revision: str):
        self.plan, self.revision, self.prompts = plan, revision, []

    def __call__(self, conversations):
        self.prompts += [c[0]["content"] for c in conversations]
        return [self.revision if "A draft plan:" in c[0]["content"] else self.plan for c in conversations]


def test_drafts_feedback_and_revisions_by_hand():
    bad = good_plan()
    bad[1]["attraction"] = ["A1", "A1"]
    other = good_plan()
    other[1]["attraction"] = ["A2"]  # another plan that passes
    drafter = Scripted(plan=call(bad), revision="  " + call(other) + " done")
    checked = check_drafts([HAND_TASK], drafter, perturb=1, seed=0, verifies=[hand_verifier()])
    assert [(c.source, c.positive, c.revised_by) for c in checked] == [
        ("oracle", True, "draft"), (checked[1].source, False, "model"), ("model", False, "model")]
    assert checked[0].revision == call(good_plan()) and checked[2].revision == call(other)  # canonical form
    assert checked[2].violations == ("diverse_attractions: attraction(s) A1 visited more than once",)
    assert drafter.prompts[0] == ("TASK\n\nReference information (the results of the searches):\nREF\n\n"
                                  'Submit the plan: call submit_plan with it, as <tool_call>{"name": "submit_plan", '
                                  '"arguments": {"plan": [...]}}</tool_call>.')
    assert len(drafter.prompts) == 3  # one plan, then one revision per failing draft
    assert counts(checked) == {"positive": 1, "negative": 2, "perturbed": 1, "model": 1, "model_pass": 0,
                               "revised_by_model": 2}
    unfixed = check_drafts([HAND_TASK], Scripted(call(bad), "no"), perturb=0, verifies=[hand_verifier()])
    assert [(c.revised_by, c.revision) for c in unfixed] == [("draft", call(good_plan())), ("oracle", call(good_plan()))]


def test_revise_conversation_and_its_loss_mask(tiny):
    bad = good_plan()
    bad[1]["attraction"] = ["A1", "A1"]
    draft = Checked(0, "model", call(bad), ("diverse_attractions: attraction(s) A1 visited more than once",),
                    call(good_plan()), "oracle")
    (row,) = faft_conversations([HAND_TASK], [draft])
    feedback = "The plan fails these constraints:\n- diverse attractions: attraction(s) A1 visited more than once"
    assert row["messages"] == [
        {"role": "user", "content": f"TASK\n\nReference information (the results of the searches):\nREF\n\n"
                                    f"A draft plan:\n{call(bad)}\n\nFeedback from the constraint checker: {feedback}"
                                    "\n\nWrite the final plan as the feedback requires and submit it with submit_plan."},
        {"role": "assistant", "content": call(good_plan())}]
    assert row["metadata"] == {"env_id": ENV, "seed": 7, "format": "revise", "feedback": "negative", "draft": "model",
                               "revised_by": "oracle", "violated": ["diverse_attractions"]}
    tok = tiny.tokenizer
    sample = conversation_sample(tok, row["messages"])
    learned = [i for i, m in zip(sample.input_ids, sample.loss_mask) if m]
    assert learned == tok.encode(call(good_plan()) + "<|im_end|>", add_special_tokens=False)
    first = sample.loss_mask.index(1)
    prompt = tok.decode(sample.input_ids[:first])  # the draft and the feedback: all before the first learned token
    assert prompt == tok.apply_chat_template(row["messages"][:1], tokenize=False, add_generation_prompt=True)
    assert feedback in prompt and sum(sample.loss_mask[first:]) == len(learned) == len(sample.input_ids) - first - 1


def test_positive_feedback_keeps_the_plan_and_condition_learns_the_plan_after_its_feedback(tiny):
    keep = Checked(0, "oracle", call(good_plan()), (), call(good_plan()), "draft")
    bad = Checked(0, "perturbed:within_sandbox", "<tool_call>x</tool_call>", ("not delivered: x",), "", "oracle")
    rows = faft_conversations([HAND_TASK], [keep, bad], ("revise", "condition"))
    assert [(r["metadata"]["format"], r["metadata"]["feedback"]) for r in rows] == [
        ("revise", "positive"), ("condition", "positive"), ("revise", "negative"), ("condition", "negative")]
    assert rows[0]["messages"][0]["content"].endswith(
        "Feedback from the constraint checker: The plan passes every constraint.\n\n"
        "Write the final plan as the feedback requires and submit it with submit_plan.")
    assert rows[0]["messages"][1]["content"] == call(good_plan())
    assert rows[1]["messages"] == [{"role": "user", "content": condition_prompt(HAND_TASK)},
                                   {"role": "assistant", "content": call(good_plan())}]
    assert condition_prompt(HAND_TASK).endswith("</tool_call>.\n\nFeedback from the constraint checker on the plan "
                                                "that follows: The plan passes every constraint.")
    assert rows[3]["messages"][0]["content"].endswith(
        "on the plan that follows: The plan fails these constraints:\n- not delivered: x")
    sample = conversation_sample(tiny.tokenizer, rows[3]["messages"])
    learned = tiny.tokenizer.decode([i for i, m in zip(sample.input_ids, sample.loss_mask) if m])
    assert learned == "<tool_call>x</tool_call><|im_end|>"  # condition: the plan the feedback is about
    empty = replace(bad, source="model", draft="")
    assert [r["metadata"]["format"] for r in faft_conversations([HAND_TASK], [empty], ("revise", "condition"))] == [
        "revise"]
    with pytest.raises(UserError, match="unknown FAFT format"):
        faft_conversations([HAND_TASK], [keep], ("revise", "pn"))


# -- CLI and training ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faft_file(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("faft") / "faft.jsonl"
    result = runner.invoke(app, ["faft", "--episodes", "2", "--model", "tiny-random", "--max-new-tokens", "8",
                                 "--perturb", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_cli_writes_positive_and_negative_samples(faft_file):
    out, output = faft_file
    assert ("2 tasks of longhorizon/Travel-v0: 2 positive and 4 negative samples (drafts: 2 oracle, 2 perturbed, 2 "
            "from the model (0 pass; 0 failing drafts revised by the model so that they pass)); 6 conversations") \
        in " ".join(output.split())
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    meta = [(r["metadata"]["seed"], r["metadata"]["draft"].split(":")[0], r["metadata"]["feedback"]) for r in rows]
    assert meta == [(0, "oracle", "positive"), (1, "oracle", "positive"), (0, "perturbed", "negative"),
                    (1, "perturbed", "negative"), (0, "model", "negative"), (1, "model", "negative")]
    assert all(r["messages"][1]["content"] == rows[r["metadata"]["seed"]]["messages"][1]["content"] for r in rows)
    assert all("not delivered" in r["messages"][0]["content"] for r in rows[4:])  # 8 random tokens are no plan


def test_sft_on_the_faft_file_trains_two_steps_and_moves_parameters(faft_file, tmp_path):
    out, _ = faft_file
    cfg = load_config(None, ["model=tiny-random", f"env_id={ENV}", "algorithm.name=sft", f"demonstrations={out}",
                             "steps=2", "tasks_per_step=2", "micro_batch_size=1", "eval.episodes=0",
                             "torch_threads=1", f"run_dir={tmp_path / 'run'}", "save_final_model=false",
                             "checkpoint_every=1", "optim.lr=0.01"])
    result = train(cfg)
    steps = [r for r in read_records(result.run_dir) if "losses/sft_loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(r["charts/rows_trained"] == 2 for r in steps)
    assert all(math.isfinite(r["losses/sft_loss"]) and r["losses/sft_loss"] > 0 for r in steps)
    start = dict(build_models(cfg, needs_ref=False, value_head=False).model.named_parameters())
    weights = load_weights(latest_checkpoint(result.run_dir))["policy"]
    moved = {name: (w - start[name].detach()).abs().max().item() for name, w in weights.items()}
    assert moved and all(m > 0 for m in moved.values()), moved


@pytest.mark.parametrize("args, message", [
    (["longhorizon/Execution-v0"], "longhorizon/Execution-v0 has no constraint verifier"),
    (["nope/Env-v0"], "unknown env"),
    (["--formats", "revise,pn"], "unknown FAFT format(s) pn"),
    (["--model", "no-such-model"], "unknown model"),
    (["--set", "days=4"], "days"),
])
def test_bad_input_exits_2(tmp_path, args, message):
    base = ["faft", "--episodes", "1", "--out", str(tmp_path / "x.jsonl")]
    result = runner.invoke(app, base + args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not (tmp_path / "x.jsonl").exists()
