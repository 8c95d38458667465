"""Apps-v0: every template's scripted solution passes, no-op and wrong changes fail, the API errors explain."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longhorizon.envs.apps.env import AppsEnv
from longhorizon.envs.apps.api import APIS, APPS
from longhorizon.envs.apps.tasks import TEMPLATES, call, finish
from longhorizon.envs.apps.world import diff
from longhorizon.envs.core.tools import ToolCall, format_tool_call, function_schema, validate_call

TEMPLATE_IDS = [(level, name) for level, templates in TEMPLATES.items() for name in templates]
SEEDS = range(50)


def play(env: AppsEnv, calls: list[ToolCall]) -> tuple[float, bool, bool, dict]:
    """Step each call; return the last (reward, terminated, truncated, info)."""
    for c in calls:
        _, reward, terminated, truncated, info = env.step(format_tool_call(c.name, c.arguments))
        assert "error" not in info, info["error"]
    return reward, terminated, truncated, info


def make(level: int, template: str, seed: int = 0, **kwargs) -> AppsEnv:
    env = AppsEnv(difficulty=level, template=template, **kwargs)
    env.reset(seed=seed)
    return env


@pytest.mark.parametrize("level,template", TEMPLATE_IDS)
def test_scripted_solution_passes(level, template):
    env = AppsEnv(difficulty=level, template=template)
    for seed in SEEDS:
        env.reset(seed=seed)
        terminated = False
        while not terminated:
            _, reward, terminated, truncated, info = env.step(env.oracle_action())
            assert "error" not in info and not truncated, (seed, info.get("error"))
        assert info["success"] is True and reward == 1.0 and all(info["checks"].values()), (seed, info["checks"])
        assert info["metrics"] == {"task_goal_completion": 1.0, "checks_passed_fraction": 1.0}
        assert info["template"] == template


@pytest.mark.parametrize("level,template", TEMPLATE_IDS)
@pytest.mark.parametrize("answer", [None, "I don't know"])
def test_no_op_scores_zero(level, template, answer):
    """Finishing (with or without an answer) before any tool call: the guards pass but earn nothing."""
    env = AppsEnv(difficulty=level, template=template)
    for seed in SEEDS:
        env.reset(seed=seed)
        _, reward, terminated, _, info = env.step(format_tool_call("complete_task", {} if answer is None else {"answer": answer}))
        assert terminated and info["success"] is False and reward == 0.0, (seed, info["checks"])
        assert info["checks"]["no_other_changes"] is True, "doing nothing changes nothing"
        assert info["metrics"] == {"task_goal_completion": 0.0, "checks_passed_fraction": 0.0}


@pytest.mark.parametrize("level,template", TEMPLATE_IDS)
def test_no_op_at_the_step_limit_scores_zero(level, template):
    """Looking things up until the step limit changes nothing: 0, like finishing at once."""
    env = make(level, template, seed=1, max_steps=2)
    reward, _, truncated, info = play(env, [ToolCall("api_docs", {}), ToolCall("api_docs", {"app": "notes"})])
    assert truncated and reward == 0.0 and info["checks"]["no_other_changes"] is True


def test_guards_count_once_a_goal_check_passed():
    from longhorizon.envs.apps.env import checks_score

    guards = {"no_other_changes"}
    assert checks_score({"paid": False, "no_other_changes": True}, guards) == 0.0
    assert checks_score({"paid": True, "no_other_changes": True}, guards) == 1.0
    assert checks_score({"paid": True, "sent": False, "no_other_changes": True}, guards) == pytest.approx(2 / 3)
    assert checks_score({"paid": True, "sent": False, "no_other_changes": False}, guards) == pytest.approx(1 / 3)


def test_noisy_oracle_still_solves():
    """The oracle follows its script from the state: mistakes in between (wrong_action) do not derail it."""
    rng = np.random.default_rng(0)
    for level, template in TEMPLATE_IDS:
        env = make(level, template, seed=5)
        for step in range(60):
            action = env.wrong_action(rng) if step % 2 else env.oracle_action()
            obs, _, terminated, _, info = env.step(action)
            if step % 2:
                assert info["error"].startswith("no ") and info["error"] in obs
            if terminated:
                break
        assert info["success"] is True, template


def test_paying_the_wrong_person_fails():
    env = make(1, "pay_contact")
    pay = env.task.solution[2]
    right = pay.arguments["arguments"]["to_email"]
    wrong = next(c["email"] for c in env.world.db["contacts"].values() if c["email"] != right)
    wrong_pay = call("payments", "send_payment", **{**pay.arguments["arguments"], "to_email": wrong})
    reward, terminated, _, info = play(env, [wrong_pay, finish()])
    assert terminated and info["success"] is False
    assert info["checks"] == {"paid_recipient_once": False, "amount_correct": False, "balance_updated": True,
                              "no_other_changes": False}
    assert reward == pytest.approx(1 / 4)


def test_an_extra_change_fails_only_no_other_changes():
    env = make(2, "reschedule_meeting", seed=3)
    reward, _, _, info = play(env, env.task.solution[:-1] + [call("notes", "delete_note", note_id=1), finish()])
    failed = [name for name, ok in info["checks"].items() if not ok]
    assert failed == ["no_other_changes"] and info["success"] is False
    assert reward == pytest.approx(1 - 1 / len(info["checks"]))


def test_reward_is_the_fraction_of_checks_passed():
    env = make(3, "repay_dinner", seed=2)
    # pay the first payer only, and reply to them
    first_pay = next(c for c in env.task.solution if c.arguments.get("api") == "send_payment")
    first_reply = next(c for c in env.task.solution if c.arguments.get("api") == "send_email")
    reward, _, _, info = play(env, [first_pay, first_reply, finish()])
    checks = info["checks"]
    n_payers = sum(name.startswith("repaid_") for name in checks)
    # passed: one repaid_, one replied_, no_payment_to_others, no_other_changes; failed: the other payers, balance
    assert sum(checks.values()) == 4 and len(checks) == 2 * n_payers + 3
    assert reward == pytest.approx(4 / (2 * n_payers + 3)) and info["metrics"]["checks_passed_fraction"] == reward


def test_step_limit_truncates_and_checks():
    env = make(1, "pay_contact", max_steps=2)
    _, _, truncated, info = play(env, [ToolCall("api_docs", {})])
    assert not truncated and "success" not in info
    reward, terminated, truncated, info = play(env, [ToolCall("api_docs", {"app": "payments"})])
    assert (terminated, truncated) == (False, True) and info["success"] is False
    assert reward == 0.0 and info["checks"]["no_other_changes"] is True  # nothing done: the guard earns nothing


@pytest.mark.parametrize("answer,ok", [(None, False), ("I don't know", False), ("PHONE", True), ("+1 (555) {}", True)])
def test_question_answer_check(answer, ok):
    env = make(1, "phone_lookup", seed=4)
    phone = env.task.solution[-1].arguments["answer"]
    if answer == "PHONE":
        answer = phone
    elif answer and "{}" in answer:
        answer = answer.format(phone[len("+1-555-"):])
    _, _, _, info = play(env, [finish(answer)])
    assert info["success"] is ok


@pytest.mark.parametrize("arguments,message", [
    ({"app": "bank", "api": "x"}, "arguments.app must be one of"),
    ({"app": "email", "api": "fly"}, "the email app has no API 'fly'; its APIs: search_emails"),
    ({"app": "contacts", "api": "show_contact", "arguments": {"contact_id": "3"}},
     "invalid call to show_contact: arguments.contact_id must be an integer, got string"),
    ({"app": "contacts", "api": "show_contact", "arguments": {}}, "missing required argument(s) 'contact_id'"),
    ({"app": "contacts", "api": "show_contact", "arguments": {"id": 3}}, "missing required argument(s) 'contact_id'"),
    ({"app": "contacts", "api": "show_contact", "arguments": {"contact_id": 999}}, "no contact with id 999"),
    ({"app": "calendar", "api": "search_events", "arguments": {"date": "next friday"}}, "dates are YYYY-MM-DD"),
    ({"app": "calendar", "api": "create_event",
      "arguments": {"title": "x", "date": "2025-02-30", "start_time": "9:00"}},
     "dates are YYYY-MM-DD"),
    ({"app": "payments", "api": "send_payment",
      "arguments": {"to_email": "a@b.c", "amount": 99999, "description": "x"}},
     "insufficient balance"),
    ({"app": "payments", "api": "send_payment",
      "arguments": {"to_email": "a@b.c", "amount": 1.005, "description": "x"}},
     "at most 2 decimals"),
    ({"app": "email", "api": "send_email", "arguments": {"to": [], "subject": "s", "body": "b"}},
     "at least one recipient"),
    ({"app": "files", "api": "read_file", "arguments": {"path": "/nope.txt"}}, "no file at '/nope.txt'"),
])
def test_api_errors_explain_and_change_nothing(arguments, message):
    env = make(1, "create_note")
    obs, reward, terminated, _, info = env.step(format_tool_call("call_api", arguments))
    assert message in info["error"] and info["error"] in obs and not terminated and reward == 0.0
    assert diff(env.before, env.world.db) == []


def test_reads_change_nothing():
    env = make(3, "cancel_day")
    reads = [("contacts", "search_contacts", {}), ("contacts", "show_contact", {"contact_id": 1}),
             ("email", "search_emails", {}), ("email", "show_email", {"email_id": 1}),
             ("calendar", "search_events", {}), ("calendar", "show_event", {"event_id": 1}),
             ("files", "list_files", {}), ("files", "read_file", {"path": "/work/ideas.txt"}),
             ("notes", "search_notes", {}), ("notes", "show_note", {"note_id": 1}),
             ("payments", "show_balance", {}), ("payments", "search_transactions", {"direction": "sent"})]
    play(env, [call(app, api, **args) for app, api, args in reads])
    assert diff(env.before, env.world.db) == []


def test_api_docs():
    env = make(1, "create_note")
    obs, *_ = env.step(format_tool_call("api_docs", {}))
    assert all(app in obs for app in APPS) and "send_payment" in obs
    obs, *_ = env.step(format_tool_call("api_docs", {"app": "notes"}))
    assert "create_note" in obs and "Create a note." in obs
    obs, *_ = env.step(format_tool_call("api_docs", {"app": "notes", "api": "create_note"}))
    assert '"required": ["title", "body"]' in obs
    _, _, _, _, info = env.step(format_tool_call("api_docs", {"app": "cooking"}))
    assert "unknown app 'cooking'" in info["error"]
    assert all(len(APIS[app]) >= 3 for app in APPS)


def test_difficulty_lengthens_the_solution():
    means = []
    for level in TEMPLATES:
        env = AppsEnv(difficulty=level)
        lengths = []
        for seed in range(30):
            env.reset(seed=seed)
            lengths.append(len(env.task.solution))
        means.append(sum(lengths) / len(lengths))
    assert means[0] < means[1] < means[2]


def test_tasks_vary_with_the_seed():
    env, seen = AppsEnv(difficulty=3), set()
    for seed in range(20):
        env.reset(seed=seed)
        seen.add(env.task.template)
    assert seen == set(TEMPLATES[3])


@pytest.mark.parametrize("kwargs,knob", [({"difficulty": 4}, "difficulty"), ({"difficulty": True}, "difficulty"),
                                         ({"difficulty": [1]}, "difficulty"),
                                         ({"max_steps": 0}, "max_steps"),
                                         ({"difficulty": 1, "template": "repay_dinner"}, "template")])
def test_knobs_are_validated(kwargs, knob):
    with pytest.raises(ValueError, match=knob):
        AppsEnv(**kwargs)


PLAUSIBLE_STRINGS = st.sampled_from(["", "a", "alice", "2025-03-14", "2025-02-30", "10:00", "25:00", "/", "/work",
                                     "/work/ideas.txt", "x@mail.com", "family", "Dinner", "inbox", "sent", "all"])


def value_for(spec: dict) -> st.SearchStrategy:
    """Mostly well-typed values for one API parameter (the interesting case: they reach the API code), some junk."""
    by_type = {
        "string": st.sampled_from(spec["enum"]) if "enum" in spec else PLAUSIBLE_STRINGS | st.text(max_size=12),
        "integer": st.integers(-2, 40),
        "number": st.floats(-5, 5000, allow_nan=False) | st.integers(0, 100),
        "array": st.lists(PLAUSIBLE_STRINGS, max_size=3),
    }
    junk = st.none() | st.booleans() | st.lists(st.integers(), max_size=2)
    return st.one_of(by_type.get(spec.get("type"), junk), junk) if spec.get("type") else junk


API_NAMES = [(app, api) for app in APPS for api in APIS[app]]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_api_calls_never_raise(data):
    """Every API with random (often well-typed) arguments: a result or an explanatory error, never an exception."""
    env = make(3, "cancel_day", seed=data.draw(st.integers(0, 3)))
    for _ in range(data.draw(st.integers(1, 5))):
        app, api = data.draw(st.sampled_from(API_NAMES))
        props = APIS[app][api].schema["function"]["parameters"]["properties"]
        keys = data.draw(st.lists(st.sampled_from(sorted(props)), unique=True, max_size=len(props))) if props else []
        arguments = {k: data.draw(value_for(props[k])) for k in keys}
        obs, reward, terminated, truncated, info = env.step(format_tool_call(
            "call_api", {"app": app, "api": api, "arguments": arguments}))
        assert math.isfinite(reward) and not terminated
        if "error" in info:
            assert info["error"] in obs and len(info["error"]) > 10


@pytest.mark.parametrize("app,api", API_NAMES)
def test_api_schemas_match_functions(app, api):
    entry = APIS[app][api]
    params = entry.schema["function"]["parameters"]
    signature = inspect.signature(entry.fn).parameters
    assert list(signature)[0] == "world" and set(list(signature)[1:]) == set(params["properties"])
    optional = {k for k, p in signature.items() if p.default is not inspect.Parameter.empty}
    assert optional == set(params["properties"]) - set(params["required"])


# The hand-written schemas the generated ones replaced (copied here as the reference, descriptions left out:
# validation does not read them): API -> (properties, required).
S, ID = {"type": "string", "maxLength": 5000}, {"type": "integer", "minimum": 1}
LIST = {"type": "array", "items": S}
MINUTES = {"type": "integer", "minimum": 1, "maximum": 1440}
EVENT = {"title": S, "date": S, "start_time": S, "duration_minutes": MINUTES, "attendees": LIST, "location": S}
NAME = {"type": "string", "maxLength": 100}
OLD_API_SCHEMAS = {
    "search_emails": ({"query": S, "sender": S, "folder": {**S, "enum": ["inbox", "sent", "all"]}}, []),
    "show_email": ({"email_id": ID}, ["email_id"]),
    "send_email": ({"to": LIST, "subject": S, "body": S}, ["to", "subject", "body"]),
    "delete_email": ({"email_id": ID}, ["email_id"]),
    "search_events": ({"query": S, "date": S, "attendee": S}, []),
    "show_event": ({"event_id": ID}, ["event_id"]),
    "create_event": (EVENT, ["title", "date", "start_time"]),
    "update_event": ({"event_id": ID, **EVENT}, ["event_id"]),
    "delete_event": ({"event_id": ID}, ["event_id"]),
    "search_contacts": ({"query": S, "group": S}, []),
    "show_contact": ({"contact_id": ID}, ["contact_id"]),
    "update_contact": ({"contact_id": ID, "phone": S, "email": S, "groups": LIST}, ["contact_id"]),
    "list_files": ({"directory": S}, []),
    "read_file": ({"path": S}, ["path"]),
    "write_file": ({"path": S, "content": S}, ["path", "content"]),
    "delete_file": ({"path": S}, ["path"]),
    "search_notes": ({"query": S}, []),
    "show_note": ({"note_id": ID}, ["note_id"]),
    "create_note": ({"title": S, "body": S}, ["title", "body"]),
    "update_note": ({"note_id": ID, "title": S, "body": S}, ["note_id"]),
    "delete_note": ({"note_id": ID}, ["note_id"]),
    "show_balance": ({}, []),
    "search_transactions": ({"query": S, "direction": {**S, "enum": ["sent", "received", "all"]}, "counterparty": S},
                            []),
    "send_payment": ({"to_email": S, "amount": {"type": "number", "minimum": 0.01, "maximum": 100000},
                      "description": S}, ["to_email", "amount", "description"]),
}
OLD_TOOL_SCHEMAS = {
    "api_docs": ({"app": NAME, "api": NAME}, []),
    "call_api": ({"app": {"type": "string", "enum": ["email", "calendar", "contacts", "files", "notes", "payments"]},
                  "api": NAME, "arguments": {"type": "object", "additionalProperties": True}}, ["app", "api"]),
    "complete_task": ({"answer": S}, []),
}
ARG_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2000) | st.floats(-1, 2e5) | st.text(max_size=5)
    | st.sampled_from(["all", "sent", "inbox", "received", "email", "notes", "a@b.com"])
    | st.sampled_from([100, 101, 5000, 5001]).map(lambda n: "x" * n),  # each side of the length bounds
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=5)


def _old(name, props_and_required):
    return function_schema(name, "-", *props_and_required)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_generated_api_schemas_validate_as_the_hand_written_ones_did(data):
    generated = {n: a.schema for app in APPS for n, a in APIS[app].items()}
    assert sorted(generated) == sorted(OLD_API_SCHEMAS)
    assert all(s["function"]["description"] for s in generated.values())
    for name in [*OLD_API_SCHEMAS, data.draw(st.sampled_from(sorted(OLD_API_SCHEMAS)))]:
        props = sorted(OLD_API_SCHEMAS[name][0])
        arguments = data.draw(st.dictionaries(st.sampled_from(props + ["extra"]), ARG_VALUES, max_size=4))
        for args in (arguments, {k: data.draw(ARG_VALUES) for k in OLD_API_SCHEMAS[name][1]}):
            call = ToolCall(name, args)
            assert validate_call(call, [generated[name]]) == validate_call(call, [_old(name, OLD_API_SCHEMAS[name])])


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from([*OLD_TOOL_SCHEMAS, "bogus"]),
       arguments=st.dictionaries(st.sampled_from(["app", "api", "arguments", "answer", "x"]), ARG_VALUES, max_size=3))
def test_generated_tool_schemas_validate_as_the_hand_written_ones_did(name, arguments):
    old = [_old(n, spec) for n, spec in OLD_TOOL_SCHEMAS.items()]
    call = ToolCall(name, arguments)
    assert [t["function"]["name"] for t in AppsEnv.tools] == list(OLD_TOOL_SCHEMAS)
    assert validate_call(call, AppsEnv.tools) == validate_call(call, old)


@pytest.mark.parametrize("name,arguments,ok", [
    ("search_emails", {"folder": "sent"}, True), ("search_emails", {"folder": "trash"}, False),
    ("show_email", {"email_id": 0}, False), ("show_email", {}, False), ("show_email", {"email_id": 3}, True),
    ("create_event", {"title": "t", "date": "2024-01-01", "start_time": "09:00", "duration_minutes": 1441}, False),
    ("send_payment", {"to_email": "a@b.com", "amount": 0.001, "description": "d"}, False),
    ("send_payment", {"to_email": "a@b.com", "amount": 5, "description": "d"}, True),
    ("update_contact", {"contact_id": 1, "groups": ["x" * 5001]}, False), ("show_balance", {"x": 1}, False),
])
def test_generated_api_schemas_keep_enums_bounds_and_required(name, arguments, ok):
    app = next(a for a in APPS if name in APIS[a])
    assert (validate_call(ToolCall(name, arguments), [APIS[app][name].schema]) is None) == ok
