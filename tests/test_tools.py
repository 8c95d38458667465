"""The shared tool-calling protocol: parsing, schema validation, `ToolEnv` dispatch, and a fuzz test of every tool env."""

from __future__ import annotations

import inspect
import json
import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longhorizon.envs import env_class, list_envs
from longhorizon.envs.core.tools import (
    ToolCall, ToolEnv, ToolError, ToolResult, format_tool_call, function_schema, parse_tool_calls, validate_call,
)

# -- parse_tool_calls ------------------------------------------------------------------------


def test_parse_one_block():
    calls, error = parse_tool_calls('<tool_call>\n{"name": "add", "arguments": {"n": 2}}\n</tool_call>')
    assert error is None and calls == [ToolCall("add", {"n": 2})]


def test_parse_several_blocks_and_surrounding_text():
    text = ('I will add twice.\n<tool_call>{"name": "add", "arguments": {"n": 1}}</tool_call>\n'
            '<tool_call>{"name": "add", "arguments": {"n": 5}}</tool_call> done')
    calls, error = parse_tool_calls(text)
    assert error is None and [c.arguments["n"] for c in calls] == [1, 5]


def test_parse_unclosed_last_block():
    """Generation often stops at the closing tag: the last block may be left open."""
    calls, error = parse_tool_calls('<tool_call>{"name": "finish", "arguments": {}}')
    assert error is None and calls == [ToolCall("finish", {})]


@pytest.mark.parametrize("text", ['{"name": "add", "arguments": {"n": 3}}',
                                  '  ```json\n{"name": "add", "arguments": {"n": 3}}\n```'])
def test_parse_bare_json_fallback(text):
    assert parse_tool_calls(text) == ([ToolCall("add", {"n": 3})], None)


def test_parse_accepts_string_arguments_and_parameters_alias():
    add4 = [ToolCall("add", {"n": 4})]
    assert parse_tool_calls('<tool_call>{"name": "add", "arguments": "{\\"n\\": 4}"}</tool_call>')[0] == add4
    assert parse_tool_calls('<tool_call>{"name": "add", "parameters": {"n": 4}}</tool_call>')[0] == add4
    assert parse_tool_calls('<tool_call>{"name": "finish"}</tool_call>')[0] == [ToolCall("finish", {})]


@pytest.mark.parametrize("text,expected", [
    ("", "no tool call found"),
    ("just chatting", "no tool call found"),
    ("<tool_call></tool_call>", "empty <tool_call>"),
    ('<tool_call>{"name": "add", "arguments": {"n": 1}</tool_call>', "invalid JSON"),
    ("<tool_call>[1, 2]</tool_call>", "expected a JSON object, got array"),
    ('<tool_call>{"arguments": {}}</tool_call>', '"name" string'),
    ('<tool_call>{"name": 7}</tool_call>', '"name" string'),
    ('<tool_call>{"name": "add", "arguments": [1]}</tool_call>', '"arguments" must be a JSON object, got array'),
    ('<tool_call>{"name": "add", "arguments": "{oops"}</tool_call>', "string that is not valid JSON"),
    ('<tool_call>{"name": "add", "args": {}}</tool_call>', "unexpected key(s) 'args'"),
    ('<tool_call>{"name": "add", "arguments": {"n": NaN}}</tool_call>', "NaN is not a valid JSON number"),
    ('{"name": "add", "arguments": {', "invalid JSON"),
])
def test_parse_errors_explain(text, expected):
    calls, error = parse_tool_calls(text)
    assert calls == [] and expected in error
    assert "<tool_call>" in error, "the error shows the expected format"


def test_parse_is_all_or_nothing():
    text = '<tool_call>{"name": "add", "arguments": {"n": 1}}</tool_call><tool_call>{bad}</tool_call>'
    calls, error = parse_tool_calls(text)
    assert calls == [] and error.startswith("tool call 2 of 2 could not be parsed")


@pytest.mark.parametrize("text", ["[" * 100_000, "<tool_call>" + "[" * 100_000 + "</tool_call>", "<tool_call>" * 50_000,
                                  "\x00\ufeff", "</tool_call><tool_call>", None, 12])
def test_parse_never_raises(text):
    calls, error = parse_tool_calls(text)
    assert calls == [] and isinstance(error, str)


def test_format_round_trips():
    text = format_tool_call("add", {"n": 2, "s": "x\n<y>"})
    assert parse_tool_calls(text) == ([ToolCall("add", {"n": 2, "s": "x\n<y>"})], None)


# -- function_schema and validate_call --------------------------------------------------------

SCHEMAS = [
    function_schema("add", "Add n.", {"n": {"type": "integer", "minimum": 0, "maximum": 10}}),
    function_schema("move", "Move.", {
        "direction": {"type": "string", "enum": ["left", "right"]},
        "speed": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "fast": {"type": "boolean"},
        "meta": {"type": "object", "properties": {"who": {"type": "string", "maxLength": 5}}, "required": ["who"]},
    }, required=["direction"]),
]


def test_function_schema_shape():
    schema = function_schema("f", "does f", {"a": {"type": "string"}})
    assert schema == {"type": "function", "function": {"name": "f", "description": "does f", "parameters": {
        "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}}
    assert function_schema("g", "", {"a": {}}, required=[])["function"]["parameters"]["required"] == []


@pytest.mark.parametrize("args", [
    {"direction": "left"},
    {"direction": "right", "speed": 2, "tags": [], "fast": False, "meta": {"who": "me"}},
    {"direction": "right", "speed": 2.5, "tags": ["a", "b"]},
])
def test_valid_calls_pass(args):
    assert validate_call(ToolCall("move", args), SCHEMAS) is None


@pytest.mark.parametrize("name,args,expected", [
    ("fly", {}, "unknown tool 'fly'; available tools: add, move"),
    ("add", {}, "missing required argument(s) 'n'"),
    ("add", {"n": 1, "m": 2}, "unknown argument(s) 'm' in arguments; allowed: n"),
    ("add", {"n": "1"}, "arguments.n must be an integer, got string"),
    ("add", {"n": True}, "arguments.n must be an integer, got boolean"),
    ("add", {"n": 1.5}, "arguments.n must be an integer, got number"),
    ("add", {"n": 11}, "arguments.n must be <= 10, got 11"),
    ("add", {"n": -1}, "arguments.n must be >= 0, got -1"),
    ("move", {"direction": "up"}, 'arguments.direction must be one of "left", "right"'),
    ("move", {"direction": "left", "speed": "fast"}, "arguments.speed must be a number, got string"),
    ("move", {"direction": "left", "speed": math.inf}, "arguments.speed must be a finite number"),
    ("move", {"direction": "left", "tags": "a"}, "arguments.tags must be an array, got string"),
    ("move", {"direction": "left", "tags": ["a", 1]}, "arguments.tags[1] must be a string, got integer"),
    ("move", {"direction": "left", "fast": 1}, "arguments.fast must be a boolean, got integer"),
    ("move", {"direction": "left", "meta": {}}, "missing required argument(s) 'who' in arguments.meta"),
    ("move", {"direction": "left", "meta": {"who": "toolong"}},
     "arguments.meta.who is 7 characters long; the limit is 5"),
    ("move", {"direction": None}, "arguments.direction must be a string, got null"),
])
def test_invalid_calls_explain(name, args, expected):
    error = validate_call(ToolCall(name, args), SCHEMAS)
    assert error is not None and expected in error
    if name != "fly":
        assert error.startswith(f"invalid call to {name}: ")


# -- ToolEnv ------------------------------------------------------------------------------------


class CounterEnv(ToolEnv):
    """A toy tool env: add to a counter, finish when it reaches the target."""

    tools: ClassVar[list[dict[str, Any]]] = [
        function_schema("add", "Add n to the counter.", {"n": {"type": "integer", "minimum": 1}}),
        function_schema("finish", "Stop.", {}),
    ]
    max_calls_per_step = 3

    def __init__(self, max_steps: int | None = None):
        super().__init__()
        self.max_steps = max_steps

    def _reset_task(self) -> str:
        self.count, self.target = 0, int(self.np_random.integers(2, 5))
        return f"Reach {self.target}."

    def tool_add(self, n: int) -> str:
        if self.count + n > self.target:
            raise ToolError(f"adding {n} would pass the target {self.target}")
        self.count += n
        return f"count = {self.count}"

    def tool_finish(self) -> str:
        self.done = True
        return "finished"

    def step_reward(self, results: list[ToolResult]) -> float:
        return float(self.done and self.count == self.target)

    def final_info(self) -> dict[str, Any]:
        return {"success": self.count == self.target, "metrics": {"count": float(self.count)}}

    def oracle_call(self) -> ToolCall:
        return ToolCall("add", {"n": 1}) if self.count < self.target else ToolCall("finish", {})


def _counter(**kwargs: Any) -> CounterEnv:
    env = CounterEnv(**kwargs)
    env.reset(seed=0)
    return env


def test_tool_env_results_are_labelled_tool_messages():
    env = _counter()
    obs, reward, terminated, truncated, info = env.step(format_tool_call("add", {"n": 1}) * 2)
    assert obs == "[add] count = 1\n\n[add] count = 2"
    assert info["role"] == "tool" and "error" not in info and (reward, terminated, truncated) == (0.0, False, False)
    assert info["tool_calls"] == [{"name": "add", "arguments": {"n": 1}, "ok": True}] * 2


def test_tool_env_bad_calls_become_error_results():
    env = _counter()
    action = (format_tool_call("add", {"n": "one"}) + format_tool_call("jump", {})
              + format_tool_call("add", {"n": 100}))
    obs, _, terminated, _, info = env.step(action)
    assert not terminated and env.count == 0
    assert [c["ok"] for c in info["tool_calls"]] == [False, False, False]
    assert len(info["errors"]) == 3 and info["error"] == info["errors"][0]
    assert all(e in obs for e in info["errors"])
    assert "[add] Error: invalid call to add: arguments.n must be an integer" in obs
    assert "[jump] Error: unknown tool 'jump'" in obs
    assert f"[add] Error: adding 100 would pass the target {env.target}" in obs  # a ToolError: not allowed now


def test_tool_env_parse_error_and_too_many_calls():
    env = _counter()
    obs, _, _, _, info = env.step("no call here")
    assert info["tool_calls"] == [] and obs == f"Error: {info['error']}" and "no tool call found" in obs
    obs, _, _, _, info = env.step(format_tool_call("add", {"n": 1}) * 4)
    assert env.count == 0 and "4 tool calls in one message; the limit is 3" in info["error"]


def test_tool_env_done_stops_later_calls_and_reports_final_info():
    env = _counter()
    env.count = env.target
    action = format_tool_call("finish", {}) + format_tool_call("add", {"n": 1})
    obs, reward, terminated, truncated, info = env.step(action)
    assert terminated and not truncated and reward == 1.0
    assert info["success"] is True and info["metrics"] == {"count": float(env.target)}
    assert "[add] Error: the episode has ended; call not run" in obs
    with pytest.raises(RuntimeError):
        env.step(format_tool_call("finish", {}))


def test_tool_env_max_steps_truncates():
    env = _counter(max_steps=2)
    env.step("x")
    _, _, terminated, truncated, info = env.step("y")
    assert (terminated, truncated) == (False, True) and info["success"] is False


def test_tool_env_oracle_solves():
    env = _counter()
    for _ in range(10):
        *_, terminated, _, info = env.step(env.oracle_action())
        if terminated:
            break
    assert info["success"] is True


# -- fuzz: every registered tool env --------------------------------------------------------------

TOOL_ENVS = [e for e in list_envs() if issubclass(env_class(e), ToolEnv)]
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def malformed_calls(tools: list[dict]) -> list[tuple[str, str]]:
    """(action, why) pairs that every tool env must reject with an explanatory error."""
    cases = [("<tool_call>{not json}</tool_call>", "invalid JSON"), ("hello", "no tool call found"),
             (format_tool_call("no_such_tool", {}), "unknown tool"),
             ('<tool_call>{"name": "x", "arguments": 5}</tool_call>', '"arguments" must be a JSON object')]
    for schema in tools:
        fn = schema["function"]
        params = fn["parameters"]
        cases.append((format_tool_call(fn["name"], {**_required_ok(params), "zz_unknown": 1}),
                      "unknown argument(s) 'zz_unknown'"))
        if params["required"]:
            cases.append((format_tool_call(fn["name"], {}), "missing required argument(s)"))
        for arg, spec in params["properties"].items():
            if not isinstance(spec.get("type"), str):
                continue  # untyped (or multi-typed) argument: no value is surely wrong
            wrong = [] if spec["type"] == "string" else ["a string"]
            wrong += [{"nested": True}] if spec["type"] != "object" else [17]
            cases += [(format_tool_call(fn["name"], {**_required_ok(params), arg: w}), f"arguments.{arg} must be")
                      for w in wrong]
    return cases


def _required_ok(params: dict) -> dict:
    """Well-typed placeholder values for the required arguments."""
    samples = {"string": "x", "integer": 1, "number": 1.0, "boolean": True, "array": [], "object": {}}

    def first_type(spec: dict) -> str | None:
        kind = spec.get("type")
        return kind[0] if isinstance(kind, list) else kind  # multi-typed: any listed type is well-typed

    return {k: params["properties"][k].get("enum", [samples.get(first_type(params["properties"][k]), "x")])[0]
            for k in params["required"]}


@pytest.mark.parametrize("env_id", TOOL_ENVS)
def test_malformed_calls_get_explanatory_errors(env_id):
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    for action, why in malformed_calls(env.tools):
        obs, reward, terminated, truncated, info = env.step(action)
        assert why in info.get("error", ""), f"{action!r}: expected an error saying {why!r}, got {info.get('error')!r}"
        assert info["error"] in obs and info["role"] == "tool" and math.isfinite(reward)
        if terminated or truncated:
            env.reset(seed=0)


@pytest.mark.parametrize("env_id", TOOL_ENVS)
def test_disallowed_call_gets_tool_error(env_id):
    """`wrong_action` of a tool env is a well-formed call the env refuses or scores as wrong: never an exception."""
    env = gym.make(env_id).unwrapped
    env.reset(seed=1)
    obs, _, _, _, info = env.step(env.wrong_action(np.random.default_rng(0)))
    assert info.get("correct") is not True
    if "error" in info:
        assert info["error"] in obs


@pytest.mark.parametrize("env_id", TOOL_ENVS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_calls_never_raise(env_id, data):
    """Schema-shaped calls with random argument values: any outcome is fine except an escaping exception."""
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    names = [s["function"]["name"] for s in env.tools]
    for _ in range(data.draw(st.integers(1, 4))):
        name = data.draw(st.sampled_from(names + ["bogus"]))
        schema = next((s["function"] for s in env.tools if s["function"]["name"] == name), None)
        props = schema["parameters"]["properties"] if schema else {}
        keys = data.draw(st.lists(st.sampled_from(sorted(props) + ["extra"]), unique=True, max_size=4))
        args = {k: data.draw(JSON_VALUES) for k in keys}
        obs, reward, terminated, truncated, info = env.step(format_tool_call(name, args))
        assert isinstance(obs, str) and math.isfinite(reward)
        for error in info.get("errors", []):
            assert error in obs and len(error) > 10
        if terminated or truncated:
            break


@pytest.mark.parametrize("env_id", TOOL_ENVS)
def test_tool_schemas_match_methods(env_id):
    """Every schema is OpenAI-shaped, JSON-serialisable, and names a `tool_<name>` method taking exactly its properties."""
    env = gym.make(env_id).unwrapped
    json.dumps(env.tools)
    for schema in env.tools:
        assert schema["type"] == "function"
        fn = schema["function"]
        params = fn["parameters"]
        assert params["type"] == "object" and set(params["required"]) <= set(params["properties"]) and fn["description"]
        signature = inspect.signature(getattr(env, f"tool_{fn['name']}"))
        assert set(signature.parameters) == set(params["properties"]), fn["name"]
        optional = {k for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}
        assert optional == set(params["properties"]) - set(params["required"]), fn["name"]


def test_tool_usage_names_tools_and_format():
    usage = _counter().tool_usage()
    assert usage.startswith("Tools: add, finish.") and "<tool_call>" in usage and "up to 3 calls" in usage


def test_compact_signature_by_hand():
    from longhorizon.envs.core.tools import compact_signature

    props = {"title": {"type": "string"}, "day": {"type": "integer"}, "start": {"type": "string"},
             "tags": {"type": "array", "items": {"type": "string"}}, "mode": {"type": "string", "enum": ["a", "b"]},
             "plan": {"type": ["array", "string"]}, "extra": {"type": "object"}, "x": {}}
    schema = function_schema("add_event", "Add an event.", props, required=["title", "day"])
    assert compact_signature(schema) == ("add_event(title: str, day: int, start?: str, tags?: list[str], "
                                         "mode?: 'a'|'b', plan?: list | str, extra?: dict, x?: any)")
    assert compact_signature(function_schema("look", "Look.", {})) == "look()"
