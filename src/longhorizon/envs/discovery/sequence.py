"""The Sequence Machine world of `longhorizon/Discovery-v0` (UltraHorizon's sequence env, arXiv 2509.21766).

Each run takes two sequences of exactly 5 letters from A-E (each with at least
two different letters, as in the paper). The machine starts from `seq_a` and
applies a hidden chain of `n_rules` distinct rules from `LIBRARY`, showing the
result after every rule. Letters are numbers A=0 .. E=4 and arithmetic is mod 5,
so results stay in A-E. Two rules depend on the run's history: `shift_by_run`
(the run number) and `add_prev_a` (the previous run's seq_a). `rotate` moves
two letters: rotating by one equals `shift` on the ascending "ABCDE" that `sort` then
`dedupe` produce from most inputs, which would make such chains unidentifiable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import numpy as np

from longhorizon.envs.core.tools import ToolCall, ToolError, dumps, parse_results, tool_schema

ALPHABET = "ABCDE"


@dataclass(frozen=True)
class Run:
    """The inputs a rule may use besides the running result."""

    a: str
    b: str
    number: int  # 1-based run number
    prev_a: str | None  # seq_a of the previous run (None on the first run)


Rule = Callable[[str, Run], str]


def _add(c: str, other: str) -> str:
    return "".join(ALPHABET[(ALPHABET.index(ch) + ALPHABET.index(other[i % len(other)])) % 5] for i, ch in enumerate(c))


def _shift(c: str, k: int) -> str:
    return "".join(ALPHABET[(ALPHABET.index(ch) + k) % 5] for ch in c)


def _interleave(c: str, b: str) -> str:
    n = min(len(c), len(b))
    return "".join(x + y for x, y in zip(c, b)) + c[n:] + b[n:]


LIBRARY: dict[str, tuple[str, Rule]] = {
    "interleave": ("interleave the result with seq_b: r1 b1 r2 b2 ..., then the rest of the longer one",
                   lambda c, run: _interleave(c, run.b)),
    "add_b": ("positionwise addition of seq_b (repeated cyclically): out[i] = r[i] + b[i mod 5] (mod 5)",
              lambda c, run: _add(c, run.b)),
    "max_b": ("positionwise maximum with seq_b (repeated cyclically): out[i] = max(r[i], b[i mod 5])",
              lambda c, run: "".join(max(ch, run.b[i % 5]) for i, ch in enumerate(c))),
    "reverse": ("reverse the result", lambda c, run: c[::-1]),
    "sort": ("sort the letters of the result in ascending order", lambda c, run: "".join(sorted(c))),
    "shift": ("shift every letter by +1 (E wraps to A)", lambda c, run: _shift(c, 1)),
    "rotate": ("move the first two letters of the result to the end", lambda c, run: c[2:] + c[:2]),
    "append_a": ("append seq_a to the end of the result", lambda c, run: c + run.a),
    "dedupe": ("collapse each run of equal adjacent letters into one letter",
               lambda c, run: "".join(k for k, _ in groupby(c))),
    "shift_by_run": ("shift every letter by the run number n (the n-th call to run; mod 5)",
                     lambda c, run: _shift(c, run.number)),
    "add_prev_a": ("positionwise addition of the previous run's seq_a (cyclically; unchanged on the first run)",
                   lambda c, run: c if run.prev_a is None else _add(c, run.prev_a)),
}

COMMIT_SCHEMA: dict[str, Any] = {"type": "array", "items": {"type": "string"},
                                 "description": "the rule ids of the chain, in order"}


def apply_chain(chain: list[str], run: Run) -> list[str]:
    """The result after each rule of the chain, starting from seq_a."""
    outputs, current = [], run.a
    for rule_id in chain:
        current = LIBRARY[rule_id][1](current, run)
        outputs.append(current)
    return outputs


def check_sequence(name: str, seq: str) -> None:
    if len(seq) != 5 or any(ch not in ALPHABET for ch in seq):
        raise ToolError(f"{name} must be exactly 5 letters from A-E (uppercase), got {seq[:20]!r}")
    if len(set(seq)) < 2:
        raise ToolError(f"{name} must contain at least 2 different letters, got {seq!r}")


class SequenceWorld:
    """The hidden chain and the history of runs."""

    def __init__(self, rng: np.random.Generator, n_rules: int, required_steps: int):
        ids = list(LIBRARY)
        self.chain = [ids[int(i)] for i in rng.choice(len(ids), n_rules, replace=False)]
        self.required, self.experiments = required_steps, 0
        self.rule_names = [f"position_{i + 1}" for i in range(n_rules)]
        self.prev_a: str | None = None

    def run(self, seq_a: str, seq_b: str) -> str:
        """Feed two sequences to the machine (one experiment); shows the result after every rule.

        Args:
            seq_a: exactly 5 letters from A-E, at least 2 different
            seq_b: exactly 5 letters from A-E, at least 2 different
        """
        if self.experiments >= self.required:
            raise ToolError(f"you have made all {self.required} required runs; no more runs are allowed. "
                            "Review your notes and commit your rules")
        check_sequence("seq_a", seq_a)
        check_sequence("seq_b", seq_b)
        self.experiments += 1
        run = Run(seq_a, seq_b, self.experiments, self.prev_a)
        self.prev_a = seq_a
        steps = [{"step": 0, "rule": "input", "result": seq_a}]
        steps += [{"step": i + 1, "rule": f"rule {i + 1}", "result": out}
                  for i, out in enumerate(apply_chain(self.chain, run))]
        return dumps({"run": run.number, "seq_a": seq_a, "seq_b": seq_b, "steps": steps, "final": steps[-1]["result"],
                      "runs_done": self.experiments, "runs_required": self.required})

    def parse_commit(self, rules: Any) -> list[str]:
        n = len(self.chain)
        if not isinstance(rules, list) or len(rules) != n:
            raise ToolError(f"rules must be a list of exactly {n} rule ids (the chain in order), "
                            f"e.g. {list(LIBRARY)[:n]}")
        unknown = [repr(r)[:40] for r in rules if r not in LIBRARY]
        if unknown:
            raise ToolError(f"unknown rule id(s) {', '.join(unknown)}; use ids from the library: {', '.join(LIBRARY)}")
        return list(rules)

    def grade(self, parsed: list[str]) -> dict[str, bool]:
        return {name: guess == truth for name, guess, truth in zip(self.rule_names, parsed, self.chain)}

    def wrong_commit(self) -> list[str]:
        ids = list(LIBRARY)
        return [ids[(ids.index(r) + 1) % len(ids)] for r in self.chain]

    def intro(self) -> str:
        library = "\n".join(f"  {rid}: {text}" for rid, (text, _) in LIBRARY.items())
        n = len(self.chain)
        return (
            "=== SEQUENCE MACHINE: discover the hidden rules ===\n"
            "A machine transforms pairs of letter sequences. Call run(seq_a, seq_b) with two sequences of exactly "
            "5 letters from A-E, each with at least 2 different letters. The machine starts from seq_a (the "
            f"'result') and applies a hidden chain of {n} rules, one after another, showing the result after each "
            "rule. The chain is the same for every run. Letters count as numbers A=0, B=1, C=2, D=3, E=4, and "
            "additions are mod 5. Each rule of the chain is a different one from this library (r is the current "
            "result):\n"
            f"{library}\n"
            f"You must make exactly {self.required} runs (experiments); runs beyond that are refused, and you may "
            "commit only after all of them. Use notes to record observations and hypotheses. Then call commit once "
            f"with rules = the list of the {n} rule ids in chain order, e.g. {list(LIBRARY)[:n]}. Your reward is the "
            "fraction of chain positions you get right.\n"
            "Tools: run(seq_a, seq_b), notes(action, text), commit(rules)."
        )


TOOLS = [tool_schema(SequenceWorld.run)]  # the experiment tool's schema, from the world's method


def make_world(rng: np.random.Generator, n_rules: int, required_steps: int, noise: float) -> SequenceWorld:
    return SequenceWorld(rng, n_rules, required_steps)


# -- the oracle: a systematic experimenter that only reads observations ----------------------------

# Hand-picked probes: varied orders, repeats, runs and letter sets, so that every pair of library
# rules disagrees on some probe whatever rules come before it (checked by tests/test_discovery.py).
PROBES = [
    ("ABCDE", "EDCBA"), ("AABAB", "BABBA"), ("EEBAD", "ABDDC"), ("CABBE", "DEACB"),
    ("DDCDC", "CCDCD"), ("AECBD", "ACEDB"), ("BBDAE", "EACCD"), ("ECADB", "DBEAA"),
]


def probe(k: int) -> tuple[str, str]:
    """The k-th probe (0-based): the fixed list, then rotations of it."""
    a, b = PROBES[k % len(PROBES)]
    shift = k // len(PROBES)
    k = shift % 5
    return a[k:] + a[:k], b[5 - k:] + b[:5 - k]


class Experimenter:
    """Runs the probes and keeps, per chain position, the library rules consistent with every step shown."""

    def __init__(self) -> None:
        self.candidates: list[set[str]] | None = None
        self.required: int | None = None
        self.last_run = 0
        self.prev_a: str | None = None  # seq_a of run number `last_run`
        self.noted = False

    def next_call(self, observation: str) -> ToolCall:
        for name, payload in parse_results(observation):
            if name == "run" and "steps" in payload:
                self._observe(payload)
        if self.required is not None and self.last_run >= self.required:
            return ToolCall("commit", {"rules": self._best_chain()})
        if self.candidates is not None and self.last_run == (self.required or 0) - 1 and not self.noted:
            self.noted = True
            return ToolCall("notes", {"action": "add", "text": f"chain so far: {self._best_chain()}"})
        a, b = probe(self.last_run)
        return ToolCall("run", {"seq_a": a, "seq_b": b})

    def _observe(self, payload: dict[str, Any]) -> None:
        results = [step["result"] for step in payload["steps"]]
        if self.candidates is None:
            self.candidates = [set(LIBRARY) for _ in results[1:]]
        self.required = payload["runs_required"]
        known_prev = payload["run"] == self.last_run + 1
        run = Run(payload["seq_a"], payload["seq_b"], payload["run"], self.prev_a if known_prev else None)
        for i, cands in enumerate(self.candidates):
            self.candidates[i] = {r for r in cands if (r == "add_prev_a" and not known_prev)
                                  or LIBRARY[r][1](results[i], run) == results[i + 1]}
        self.last_run, self.prev_a = payload["run"], payload["seq_a"]
        self._propagate()

    def _propagate(self) -> None:
        """The chain's rules are distinct: a rule pinned to one position is removed from the others."""
        assert self.candidates is not None
        changed = True
        while changed:
            changed = False
            for i, cands in enumerate(self.candidates):
                for j, other in enumerate(self.candidates):
                    if i != j and len(cands) == 1 and len(other) > 1 and cands <= other:
                        self.candidates[j] = other - cands
                        changed = True

    def _best_chain(self) -> list[str]:
        ids = list(LIBRARY)
        return [min(c or {ids[0]}, key=ids.index) for c in (self.candidates or [])]
