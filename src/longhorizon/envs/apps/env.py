"""`longhorizon/Apps-v0`: do everyday tasks across six stateful apps, checked against the final database.

In the role of AppWorld (Trivedi et al., ACL 2024), the benchmark LOOP trains
on (Chen et al., arXiv 2502.01600; `reference/methods.md` section 1). Each
episode generates one user's world from the seed: 14 contacts in groups,
emails, calendar events, files, notes, payments and a balance (`apps_world.py`).
The task is one natural-language instruction drawn from the templates of the
chosen difficulty (`apps_tasks.py`):

- difficulty 1 (one app changed or one look-up): pay_contact, delete_event,
  create_note, phone_lookup (a question: answer through complete_task);
- difficulty 2 (two or three apps): group_phones_note ("save the phone numbers
  of everyone in my 'family' group to a note"), reschedule_meeting ("move my
  meeting with X to Friday and email the attendees"), file_to_contact;
- difficulty 3 (several apps and people): repay_dinner ("pay back everyone who
  paid for my dinner last week", then reply to each), birthday_gifts
  (contacts + payments + calendar), cancel_day (calendar + email + notes).

Tools (a choice; AppWorld has the agent write Python that calls the APIs):
`api_docs(app?, api?)` lists the apps, an app's APIs, or one API's parameter
schema; `call_api(app, api, arguments)` calls one API (`apps_api.py`; its
arguments are validated against that API's schema by the shared validator);
`complete_task(answer?)` ends the episode. One generic `call_api` keeps the
tool list short, as AppWorld's api_docs-then-call workflow does.

Knobs: `difficulty` (1-3), `max_steps` (default 50, LOOP's AppWorld setting),
`template` (force one template). LEVELS: easy / medium / hard = difficulty
1 / 2 / 3.

Checking, unit-test style as in AppWorld: when the agent calls complete_task
(or at the step limit) the final database is compared with the snapshot
taken at reset. Each task runs its named checks (the expected changes
happened, the answer is right) plus `no_other_changes`: every added,
removed or modified record must be one the task explains.

Reward (LOOP's dense variant, methods.md section 1): on the last step,
(#checks passed) / (#checks); 0 on every other step. Departure: the checks a
no-op passes (`no_other_changes`, and guards such as `no_payment_to_others`;
found by running the checks on the unchanged database at reset) count only
once a check a no-op fails has passed. Without that, doing nothing scored
0.13-0.5 per template; with it a no-op scores 0 on every template, and any
real progress still earns the guards' share. Reward scale: 0 to 1 per episode.
`info["success"]`: all checks passed (also `info["correct"]`). `info["metrics"]`:
`task_goal_completion` (AppWorld's TGC, 1.0 or 0.0) and `checks_passed_fraction`
(the reward); `info["checks"]` names each check.

Departures from AppWorld: six small apps instead of nine large ones;
procedurally generated data and templated tasks (no human-written tasks,
no scenarios of 3 tasks, so no SGC metric); JSON tool calls instead of code.
The oracle plays each task's scripted solution, one call per step (mean
3.6 / 5.9 / 10.8 steps at difficulty 1 / 2 / 3, at most 14), moving on only
once the expected call has run, so mistakes in between (`wrong_action`: an
API call on a record that does not exist) do not derail it. A no-op agent
(complete_task at once) fails every task and scores 0.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from longhorizon.envs.apps.api import APIS, APPS, App, api_index
from longhorizon.envs.apps.tasks import TEMPLATES, Task
from longhorizon.envs.apps.world import Db, World, diff, long_date, new_world, pick, snapshot
from longhorizon.envs.core.knobs import Int, Knobs, set_knobs
from longhorizon.envs.core.tools import (
    ToolCall, ToolEnv, ToolError, ToolResult, format_tool_call, schema_index, tool_schema, validate_indexed,
)

MAX_RESULT_CHARS = 20_000
API_INDEX = {app: schema_index(api_index(app)) for app in APPS}


def evaluate(task: Task, before: Db, after: Db, answer: str | None) -> dict[str, bool]:
    """The task's named checks plus `no_other_changes` (every changed record is explained by the task)."""
    checks, explained = task.check(before, after, answer)
    checks["no_other_changes"] = all((c.table, c.key) in explained for c in diff(before, after))
    return checks


def no_op_checks(task: Task, before: Db) -> set[str]:
    """The checks an agent passes by changing nothing and answering nothing (the guards)."""
    return {name for name, ok in evaluate(task, before, before, None).items() if ok}


def checks_score(checks: dict[str, bool], guards: set[str]) -> float:
    """Fraction of checks passed; 0 unless some check outside `guards` passed (so a no-op scores 0)."""
    if not any(ok for name, ok in checks.items() if name not in guards):
        return 0.0
    return sum(checks.values()) / len(checks)


class AppsKnobs(Knobs):
    """Apps' knobs."""

    difficulty: Int = Field(1, ge=min(TEMPLATES), le=max(TEMPLATES), description="1-3: how many apps and records a "
                            "task touches (templates per level in the module docstring)")
    max_steps: Int = Field(50, ge=1, description="step limit; the episode is truncated and checked there "
                           "(LOOP/AppWorld use 40-50)")
    template: str | None = Field(None, description="force one task template by name (None = drawn from the "
                                 "difficulty's templates)")

    @model_validator(mode="after")
    def _template_fits(self) -> AppsKnobs:
        if self.template is not None and self.template not in TEMPLATES[self.difficulty]:
            raise ValueError(f"template must be one of {sorted(TEMPLATES[self.difficulty])} at difficulty "
                             f"{self.difficulty}, got {self.template!r}")
        return self


class AppsEnv(ToolEnv):
    """One everyday task over email, calendar, contacts, files, notes and payments."""

    REWARD: ClassVar[str] = "fraction of state checks passed, on the last step: 0 to 1 (0 for a no-op)"

    HORIZON_KNOB: ClassVar[str | None] = "difficulty"
    Knobs = AppsKnobs
    LEVELS: ClassVar[dict[str, dict[str, Any]]] = {"easy": {"difficulty": 1}, "medium": {"difficulty": 2},
                                                   "hard": {"difficulty": 3}}

    def __init__(self, render_mode: str | None = None, **knobs: Any):
        super().__init__(render_mode)
        self.knobs = set_knobs(self, AppsKnobs, knobs)

    # -- episode ------------------------------------------------------------------------------
    def _reset_task(self) -> str:
        rng = self.np_random
        self.world: World = new_world(rng)
        templates = TEMPLATES[self.difficulty]
        self.task: Task = templates[self.template or pick(rng, sorted(templates))](self.world, rng)
        # The task's closures hold records of this snapshot; the agent edits a copy.
        self.before, self.world.db = self.world.db, snapshot(self.world.db)
        self.guards = no_op_checks(self.task, self.before)
        self.answer: str | None = None
        self._checks: dict[str, bool] | None = None
        self._solution_pos = 0  # scripted-solution calls done so far
        return self._intro()

    def _intro(self) -> str:
        me = self.world.me
        return (f"You are the personal assistant of {me['name']} ({me['email']}). Today is "
                f"{long_date(self.world.today)}, {self.world.today.year}. You can use these apps: {', '.join(APPS)}. "
                "Look up their APIs with api_docs, call them with call_api, and call complete_task when you are done "
                "(with the answer, if the task asks a question). Change nothing the task does not ask for.\n"
                f"{self.tool_usage()}\n\n"
                f"Task: {self.task.instruction}")

    # -- tools ------------------------------------------------------------------------------------
    def tool_api_docs(self, app: str = "", api: str = "") -> str:
        """Look up the apps, an app's APIs, or one API's parameters.

        Args:
            app: an app name ('' lists the apps)
            api: an API of that app ('' lists them)
        """
        if not app:
            return json.dumps({a: sorted(APIS[a]) for a in APPS})
        apis = self._app_apis(app)
        if not api:
            return json.dumps([{"name": n, "description": s["description"]} for n, s in apis.items()])
        if api not in apis:
            raise ToolError(f"the {app} app has no API {api!r}; its APIs: {', '.join(apis)}")
        return json.dumps(apis[api])

    def tool_call_api(self, app: App, api: str, arguments: dict[str, Any] | None = None) -> str:
        """Call one API of one app.

        Args:
            app: the app
            api: the API name, from api_docs
            arguments: the API's arguments, as api_docs describes
        """
        apis = self._app_apis(app)
        if api not in apis:
            raise ToolError(f"the {app} app has no API {api!r}; its APIs: {', '.join(apis)}")
        problem = validate_indexed(ToolCall(api, arguments or {}), apis)
        if problem:
            raise ToolError(f"{problem} (see api_docs app={app!r} api={api!r})")
        result = json.dumps(APIS[app][api].fn(self.world, **(arguments or {})), ensure_ascii=False)
        return result if len(result) <= MAX_RESULT_CHARS else result[:MAX_RESULT_CHARS] + " ... [truncated]"

    def _app_apis(self, app: str) -> dict[str, dict]:
        if app not in API_INDEX:
            raise ToolError(f"unknown app {app[:60]!r}; apps: {', '.join(APPS)}")
        return API_INDEX[app]

    def tool_complete_task(self, answer: str | None = None) -> str:
        """Finish the task. Give `answer` when the task asks a question.

        Args:
            answer: the answer, when the task asks a question
        """
        self.answer, self.done = answer, True
        return "Task marked as complete."

    # -- ToolEnv hooks ------------------------------------------------------------------------
    def _after_calls(self, results: list[ToolResult]) -> str | None:
        """Advance the scripted solution when its next call ran (so the oracle survives interleaved mistakes)."""
        solution = self.task.solution
        if self._solution_pos < len(solution):
            expected = solution[self._solution_pos]
            if any(r.ok and (r.name, r.arguments) == (expected.name, expected.arguments) for r in results):
                self._solution_pos += 1
        return None

    def checks(self) -> dict[str, bool]:
        """The named checks on the current database (computed once the episode has ended)."""
        if self._checks is None or not (self.done or self.truncated):
            self._checks = evaluate(self.task, self.before, self.world.db, self.answer)
        return self._checks

    def step_reward(self, results: list[ToolResult]) -> float:
        """LOOP's reward: the fraction of checks passed (guards gated, see `checks_score`), on the last step only."""
        if not (self.done or self.truncated):
            return 0.0
        return checks_score(self.checks(), self.guards)

    def final_info(self) -> dict[str, Any]:
        checks = self.checks()
        passed = checks_score(checks, self.guards)
        success = all(checks.values())
        metrics = {"task_goal_completion": float(success), "checks_passed_fraction": passed}
        return {"success": success, "correct": success, "metrics": metrics, "checks": dict(checks),
                "template": self.task.template}

    # -- oracle ----------------------------------------------------------------------------------
    def oracle_call(self) -> ToolCall:
        """The next call of the task's scripted solution (one call per step)."""
        return self.task.solution[min(self._solution_pos, len(self.task.solution) - 1)]

    def wrong_action(self, rng: np.random.Generator) -> str:
        """A recoverable mistake: an API call on a record that does not exist (a ToolError; nothing changes)."""
        table, id_field, app, api = [("events", "event_id", "calendar", "delete_event"),
                                     ("notes", "note_id", "notes", "delete_note"),
                                     ("contacts", "contact_id", "contacts", "show_contact")][int(rng.integers(3))]
        missing = max(self.world.db[table], default=0) + 1 + int(rng.integers(100))
        return format_tool_call("call_api", {"app": app, "api": api, "arguments": {id_field: missing}})


# The tools' schemas, from the methods' signatures and docstrings; the bounds a signature cannot give are added.
# `arguments` is any object (validated against the API's own schema when called).
NAME = {"maxLength": 100}
TOOLS = AppsEnv.tools = [
    tool_schema(AppsEnv.tool_api_docs, {"app": NAME, "api": NAME}),
    tool_schema(AppsEnv.tool_call_api, {"api": NAME, "arguments": {"additionalProperties": True}}),
    tool_schema(AppsEnv.tool_complete_task, {"answer": {"maxLength": 5000}}),
]
