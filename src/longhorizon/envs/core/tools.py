"""The shared tool-calling protocol: schemas, parsing, validation and `ToolEnv`.

A tool-using env exposes `tools`, a list of OpenAI function schemas (generated
from the tool functions by `tool_schema`), which reach the model through
`tokenizer.apply_chat_template(messages, tools=env.tools, ...)`. The model
answers with one or more Hermes/Qwen-style blocks

    <tool_call>
    {"name": "send_email", "arguments": {"to": "a@b.com", "body": "hi"}}
    </tool_call>

(or, as a fallback, one bare JSON object `{"name": ..., "arguments": {...}}`).

Protocol rules, shared by every tool env:

- `parse_tool_calls` never raises. A message is all-or-nothing: if any block is
  malformed, no call is returned and the error says which block and why.
  `"arguments"` may also be a JSON-encoded string (the OpenAI wire format) and
  `"parameters"` is accepted as an alias (Llama 3 style).
- `validate_call` checks the call against the schemas (a small JSON-schema
  subset: type, enum, required, no unknown keys, items, nested properties,
  minimum/maximum, maxLength) and returns an explanatory message, or None.
- `ToolEnv.step` runs parse -> validate -> dispatch to `tool_<name>(**arguments)`
  for each call. A bad call, or a `ToolError` raised by the tool method (the
  call is not allowed in the current state), becomes an error *result*; any
  other exception is a bug in the env and propagates.
- The observation is the results as one text block; each result is labelled
  with its tool name: `[name] <result>` or `[name] Error: <message>`. Results
  come back as a `tool` role message: `info["role"] == "tool"`.
- Shared by the envs whose tools answer with one line of JSON (Discovery,
  Travel): `dumps` (that line), `parse_results` (the `[name] {...}` results of
  an observation) and `Notebook` (the agent's `notes` tool).
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from longhorizon.envs.core.base import TextEnv, clip_text

FENCE_RE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
CALL_FORMAT_HINT = 'Call a tool as <tool_call>{"name": "<tool>", "arguments": {...}}</tool_call>.'
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class ToolResult:
    """The outcome of one call: its text goes into the observation."""

    name: str
    arguments: Any
    text: str
    ok: bool


class ToolError(Exception):
    """Raised by a tool method when the call is not allowed in the current state; becomes a tool-result error."""


def function_schema(
    name: str, description: str, properties: dict[str, dict], required: list[str] | None = None
) -> dict:
    """An OpenAI function-tool schema: {"type": "function", "function": {"name", "description", "parameters": {"type": "object", "properties", "required"}}}.

    `required` defaults to every property.
    """
    params = {"type": "object", "properties": properties, "required": list(properties if required is None else required)}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": params}}


def tool_schema(fn: Callable[..., Any], limits: dict[str, dict[str, Any]] | None = None, *,
                name: str | None = None, bound: tuple[str, ...] = ("self",)) -> dict:
    """The OpenAI schema of a tool function, generated from its signature and Google-style docstring
    (`transformers.utils.get_json_schema`; `typing.Literal` gives an enum).

    `fn` is a `tool_<name>` method (its name is the tool's, without `tool_`) or a plain function; leading
    parameters named in `bound` (`self`; an API's `world`) are not arguments. `limits` adds, per argument, what a
    signature cannot say (maxLength, minimum, maximum, a nested object's schema); its keys override the
    generated ones. `name` overrides the tool's name. A description wrapped over docstring lines becomes one
    line. An argument with a default is optional; every tool has a `required` list (possibly empty).
    """
    from transformers.utils import get_json_schema

    schema = get_json_schema(_plain_function(fn, name, bound))["function"]
    schema.pop("return", None)
    schema["description"] = re.sub(r"\s*\n\s*", " ", schema["description"])
    parameters = schema.setdefault("parameters", {"type": "object", "properties": {}})
    parameters.setdefault("required", [])
    for arg, prop in parameters["properties"].items():
        prop.pop("nullable", None)
        prop |= (limits or {}).get(arg, {})
    return {"type": "function", "function": schema}


def _plain_function(fn: Callable[..., Any], name: str | None, bound: tuple[str, ...]) -> Callable[..., None]:
    """A stand-in for `fn` that get_json_schema reads: the tool's name, fn's docstring, its arguments without the
    leading `bound` ones, and their type hints resolved in fn's module (strings under `from __future__`)."""
    params = list(inspect.signature(fn).parameters.values())
    while params and params[0].name in bound:
        params = params[1:]
    hints = typing.get_type_hints(fn)
    stub = lambda: None  # noqa: E731
    stub.__name__, stub.__doc__ = name or fn.__name__.removeprefix("tool_"), fn.__doc__
    stub.__signature__ = inspect.Signature(params, return_annotation=str)
    stub.__annotations__ = {p.name: hints[p.name] for p in params if p.name in hints}
    return stub


PY_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "object": "dict", "null": "None"}


def compact_signature(schema: dict) -> str:
    """A tool's schema as one line, e.g. `send_email(to: str, subject: str, body?: str)` (`?`: optional)."""
    fn = schema.get("function", schema)
    params = fn.get("parameters") or {}
    required = set(params.get("required", []))
    args = [f"{name}{'' if name in required else '?'}: {_type_text(prop)}"
            for name, prop in (params.get("properties") or {}).items()]
    return f"{fn['name']}({', '.join(args)})"


def _type_text(prop: dict) -> str:
    """`str`, `int`, `list[str]`, `'up'|'down'` (an enum), `list | str` (several types); `any` if untyped."""
    if "enum" in prop:
        return "|".join(json.dumps(v).replace('"', "'") for v in prop["enum"])
    kinds = prop.get("type")
    if kinds is None:
        return "any"
    kinds = [kinds] if isinstance(kinds, str) else kinds
    return " | ".join(f"list[{_type_text(prop['items'])}]" if k == "array" and "items" in prop
                      else "list" if k == "array" else PY_TYPES.get(k, k) for k in kinds)


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """The text a model (or an oracle) writes to call a tool."""
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


# -- parsing -----------------------------------------------------------------


def parse_tool_calls(text: str) -> tuple[list[ToolCall], str | None]:
    """Parse `<tool_call>{json}</tool_call>` blocks (Hermes/Qwen format, one or more), or a bare JSON object {"name":..., "arguments": {...}} as a fallback. Returns (calls, error). Never raises.

    All-or-nothing: when `error` is not None, `calls` is empty.
    """
    text = text if isinstance(text, str) else str(text)
    blocks = _tool_call_blocks(text)
    if blocks is None:
        return _parse_bare(text)
    if not blocks:
        return [], "found an empty <tool_call></tool_call> block. " + CALL_FORMAT_HINT
    calls = []
    for i, block in enumerate(blocks, 1):
        call, error = _parse_call_json(block)
        if error:
            where = f"tool call {i} of {len(blocks)}" if len(blocks) > 1 else "the tool call"
            return [], f"{where} could not be parsed: {error}. {CALL_FORMAT_HINT}"
        calls.append(call)
    return calls, None


def _tool_call_blocks(text: str) -> list[str] | None:
    """The non-empty contents of the `<tool_call>` blocks; None if the text has no such tag.

    Linear in the text (no regex backtracking). A block left unclosed (generation
    stopped at `</tool_call>`) runs to the next `<tool_call>` or the end.
    """
    if "<tool_call>" not in text:
        return None
    blocks = [part.split("</tool_call>", 1)[0] for part in text.split("<tool_call>")[1:]]
    return [b for b in blocks if b.strip()]


def _parse_bare(text: str) -> tuple[list[ToolCall], str | None]:
    stripped = text.strip()
    fenced = FENCE_RE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    if not stripped.startswith("{"):
        return [], "no tool call found. " + CALL_FORMAT_HINT
    call, error = _parse_call_json(stripped)
    if error:
        return [], f"the tool call could not be parsed: {error}. {CALL_FORMAT_HINT}"
    return [call], None


def _parse_call_json(block: str) -> tuple[ToolCall | None, str | None]:
    obj, error = _loads(block.strip())
    if error:
        return None, error
    if not isinstance(obj, dict):
        return None, f"expected a JSON object, got {_json_type(obj)}"
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None, 'the object needs a "name" string'
    unknown = sorted(set(obj) - {"name", "arguments", "parameters"})
    if unknown:
        return None, f"unexpected key(s) {', '.join(map(repr, unknown))}; use only \"name\" and \"arguments\""
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        args, error = _loads(args)
        if error:
            return None, f'"arguments" is a string that is not valid JSON ({error})'
    if not isinstance(args, dict):
        return None, f'"arguments" must be a JSON object, got {_json_type(args)}'
    return ToolCall(name=name, arguments=args), None


def _loads(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text, parse_constant=_reject_constant), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}) in {clip_text(text, 80)!r}"
    except (ValueError, RecursionError) as exc:
        return None, f"invalid JSON ({clip_text(exc, 80)})"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _json_type(value: Any) -> str:
    """The JSON type name of a parsed value (bool before int: True is an int in Python)."""
    if isinstance(value, bool):
        return "boolean"
    return next((name for name, types in JSON_TYPES.items() if isinstance(value, types)), type(value).__name__)


# -- validation --------------------------------------------------------------


def validate_call(call: ToolCall, schemas: list[dict]) -> str | None:
    """Check the tool exists and its arguments match the JSON schema (required keys present, no unknown keys, types: string/integer/number/boolean/array/object, enum). Returns an explanatory error message or None."""
    return validate_indexed(call, schema_index(schemas))


def schema_index(schemas: list[dict]) -> dict[str, dict]:
    """Tool name -> its "function" object (build once, reuse for every call)."""
    return {s["function"]["name"]: s["function"] for s in schemas}


def validate_indexed(call: ToolCall, by_name: dict[str, dict]) -> str | None:
    if call.name not in by_name:
        return f"unknown tool {clip_text(call.name, 60)!r}; available tools: {', '.join(by_name)}"
    params = by_name[call.name].get("parameters", {"type": "object", "properties": {}})
    problem = _check_value(call.arguments, params, "arguments")
    return f"invalid call to {call.name}: {problem}" if problem else None


def _check_value(value: Any, schema: dict, path: str) -> str | None:
    """The first way `value` breaks `schema` (a JSON-schema subset), or None."""
    expected = schema.get("type")
    if expected is not None and not _type_matches(value, expected):
        return f"{path} must be {_type_names(expected)}, got {_json_type(value)} {_show(value)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path} must be one of {', '.join(json.dumps(v) for v in schema['enum'])}; got {_show(value)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _check_range(value, schema, path)
    if isinstance(value, str) and len(value) > schema.get("maxLength", len(value)):
        return f"{path} is {len(value)} characters long; the limit is {schema['maxLength']}"
    if isinstance(value, list) and "items" in schema:
        return next((p for i, v in enumerate(value) if (p := _check_value(v, schema["items"], f"{path}[{i}]"))), None)
    if isinstance(value, dict) and ("properties" in schema or "required" in schema):
        return _check_object(value, schema, path)
    return None


def _show(value: Any) -> str:
    """A short JSON rendering of a value quoted in an error message."""
    try:
        return clip_text(json.dumps(value, default=str), 40)
    except (ValueError, RecursionError):
        return clip_text(repr(value), 40)


def _check_object(value: dict, schema: dict, path: str) -> str | None:
    props = schema.get("properties", {})
    missing = [k for k in schema.get("required", []) if k not in value]
    if missing:
        return f"missing required argument(s) {', '.join(map(repr, missing))} in {path}"
    unknown = [k for k in value if k not in props]
    if unknown and not schema.get("additionalProperties", False):
        allowed = ", ".join(props) or "none"
        return f"unknown argument(s) {', '.join(repr(clip_text(k, 40)) for k in unknown)} in {path}; allowed: {allowed}"
    return next((p for k, v in value.items() if k in props and (p := _check_value(v, props[k], f"{path}.{k}"))), None)


def _check_range(value: int | float, schema: dict, path: str) -> str | None:
    if value != value or value in (float("inf"), float("-inf")):
        return f"{path} must be a finite number"
    if "minimum" in schema and value < schema["minimum"]:
        return f"{path} must be >= {schema['minimum']}, got {value}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"{path} must be <= {schema['maximum']}, got {value}"
    return None


def _type_matches(value: Any, expected: str | list[str]) -> bool:
    names = (expected,) if isinstance(expected, str) else expected
    if isinstance(value, bool):  # a bool is a Python int, but not a JSON integer
        return "boolean" in names
    return any(isinstance(value, JSON_TYPES.get(n, ())) for n in names)


def _type_names(expected: str | list[str]) -> str:
    names = [expected] if isinstance(expected, str) else list(expected)
    return " or ".join(("an " if n[0] in "aeiou" else "a ") + n for n in names)


# -- the env base class --------------------------------------------------------


class ToolEnv(TextEnv):
    """Base for tool-using envs. Subclasses set `tools` (list of schemas) and implement `tool_<name>(self, **arguments) -> str` methods.

    step(action): parse -> validate -> dispatch each call (ToolError and bad
    calls become error results, nothing raises) -> the observation is the tool
    result(s), each labelled with its tool name; info["role"] = "tool";
    info["tool_calls"] = [{"name", "arguments", "ok"}]; info["error"] when any
    call failed (the first failure's message, verbatim in the observation;
    info["errors"] lists them all).

    Hooks for subclasses (all optional except `_reset_task`, `final_info`,
    `oracle_call`):
    - `_reset_task() -> str`: build the episode from `self.np_random`; return
      the first observation (the task, as a user message).
    - `self.done = True` (set inside a tool method or `_after_calls`): the
      episode terminates after this step; calls after it in the same message
      are not run.
    - `_after_calls(results)`: bookkeeping after each step's calls (count
      calls, advance time, enforce caps); may set `self.done` or
      `self.truncated`, or return extra text appended to the observation.
    - `step_reward(results) -> float`: this step's reward (default 0.0). It
      runs after the episode-end check, so it can read `self.done`.
    - `final_info() -> dict`: merged into `info` on the last step
      (terminated, truncated or `max_steps` reached); must hold `success`
      and `metrics`.
    - `oracle_call() -> ToolCall | list[ToolCall]`: the scripted solution's
      next call(s); `oracle_action()` formats them.
    `max_steps` (None = unlimited) truncates the episode after that many steps.
    """

    tools: ClassVar[list[dict[str, Any]]] = []
    max_calls_per_step: ClassVar[int] = 8
    max_steps: int | None = None

    # -- hooks -----------------------------------------------------------------
    def _reset_task(self) -> str:
        raise NotImplementedError

    def _after_calls(self, results: list[ToolResult]) -> str | None:
        return None

    def step_reward(self, results: list[ToolResult]) -> float:
        return 0.0

    def final_info(self) -> dict[str, Any]:
        raise NotImplementedError

    def oracle_call(self) -> ToolCall | list[ToolCall]:
        raise NotImplementedError

    # -- gymnasium API -----------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.done, self.truncated, self.steps, self.n_calls = False, False, 0, 0
        self._last_obs = self._reset_task()
        return self._last_obs, {"role": "user", "step": 0}

    def step(self, action: str):
        if self.done or self.truncated:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        results = self.run_calls(action if isinstance(action, str) else str(action))
        self.steps += 1
        self.n_calls += sum(r.name != "" for r in results)
        extra = self._after_calls(results)
        if self.max_steps is not None and self.steps >= self.max_steps and not self.done:
            self.truncated = True
        info = self._step_info(results)
        reward = float(self.step_reward(results))
        if self.done or self.truncated:
            info.update(self.final_info())
        self._last_obs = format_results(results) + (f"\n\n{extra}" if extra else "")
        return self._last_obs, reward, self.done, self.truncated and not self.done, info

    def tool_usage(self) -> str:
        """A line for the first observation: tool names and call format (some chat templates drop `tools=`)."""
        names = ", ".join(s["function"]["name"] for s in self.tools)
        return (f"Tools: {names}. {CALL_FORMAT_HINT[:-1]}; one message may hold up to "
                f"{self.max_calls_per_step} calls.")

    def oracle_action(self) -> str:
        calls = self.oracle_call()
        calls = calls if isinstance(calls, list) else [calls]
        return "\n".join(format_tool_call(c.name, c.arguments) for c in calls)

    # -- dispatch ------------------------------------------------------------------
    def run_calls(self, action: str) -> list[ToolResult]:
        """Parse and run every call in the message; one result per call (or one for a parse error)."""
        calls, error = parse_tool_calls(action)
        if error:
            return [ToolResult("", None, error, ok=False)]
        if len(calls) > self.max_calls_per_step:
            msg = f"{len(calls)} tool calls in one message; the limit is {self.max_calls_per_step}. None were run."
            return [ToolResult("", None, msg, ok=False)]
        results = []
        for call in calls:
            if self.done:
                results.append(ToolResult(call.name, call.arguments, "the episode has ended; call not run", ok=False))
            else:
                results.append(self.run_call(call))
        return results

    def run_call(self, call: ToolCall) -> ToolResult:
        """Validate and dispatch one call; a bad call or a ToolError becomes an error result."""
        if getattr(self, "_schema_tools", None) is not self.tools:
            self._schema_tools, self._schema_index = self.tools, schema_index(self.tools)
        error = validate_indexed(call, self._schema_index)
        if error:
            return ToolResult(call.name, call.arguments, error, ok=False)
        try:
            text = getattr(self, f"tool_{call.name}")(**call.arguments)
        except ToolError as exc:
            return ToolResult(call.name, call.arguments, str(exc) or "the call is not allowed now", ok=False)
        return ToolResult(call.name, call.arguments, str(text), ok=True)

    def _step_info(self, results: list[ToolResult]) -> dict[str, Any]:
        info: dict[str, Any] = {"role": "tool", "step": self.steps}
        info["tool_calls"] = [{"name": r.name, "arguments": r.arguments, "ok": r.ok} for r in results if r.name]
        errors = [r.text for r in results if not r.ok]
        if errors:
            info["error"], info["errors"] = errors[0], errors
        return info


def format_results(results: list[ToolResult]) -> str:
    """One text block: `[name] text` per result, `Error:` before a failure's message."""
    return "\n\n".join(_format_result(r) for r in results)


def _format_result(result: ToolResult) -> str:
    label = f"[{clip_text(result.name, 60)}] " if result.name else ""
    return f"{label}{'' if result.ok else 'Error: '}{result.text}"


# ---------------------------------------------------------------- shared by the JSON-result tool envs
# (Discovery, Travel): every tool answers with one line of JSON, shown as `[name] {...}`.
MAX_NOTE_CHARS = 2000
RESULT_LINE_RE = re.compile(r"^\[(\w+)\] (\{.*\})$")


def parse_results(observation: str) -> list[tuple[str, dict[str, Any]]]:
    """The successful tool results in an observation, as (tool name, JSON payload); errors are skipped.

    Every discovery/travel tool answers with one line of JSON, so a result is one `[name] {...}` line.
    """
    found = []
    for line in observation.splitlines():
        match = RESULT_LINE_RE.match(line)
        if match:
            try:
                payload = json.loads(match.group(2))
            except json.JSONDecodeError:
                continue
            if isinstance(payload, dict):
                found.append((match.group(1), payload))
    return found


def dumps(payload: dict[str, Any]) -> str:
    """A tool result: compact one-line JSON."""
    return json.dumps(payload, separators=(", ", ": "))


class Notebook:
    """The `notes` tool: the agent's own scratchpad, kept for the whole episode."""

    schema: ClassVar[dict]  # the `notes` tool's schema, generated from `__call__` below the class

    def __init__(self) -> None:
        self.entries: list[str] = []

    def __call__(self, action: Literal["add", "read"], text: str | None = None) -> str:
        """Your notebook. action='add' appends `text` as a new note; action='read' returns every note so far.

        Args:
            action: 'add' a note or 'read' them all
            text: the note to add (for action='add')
        """
        if action == "read":
            return dumps({"notes": self.entries})
        if not text or not text.strip():
            raise ToolError("notes(action='add') needs a non-empty `text`")
        self.entries.append(clip_text(text, MAX_NOTE_CHARS))
        return dumps({"added": len(self.entries), "notes_total": len(self.entries)})


Notebook.schema = tool_schema(Notebook.__call__, name="notes")
