"""`longhorizon/Countdown-v0`: reach a target from four numbers, writing out the search.

LongProc's countdown task (Ye et al., arXiv 2501.05414). Given four numbers
and a target, combine all four, each exactly once, with + - * / into the
target. The prompt (after the paper's `prompts.yaml`) prescribes a depth-first
search: at each state try every pair of numbers in order, larger number first,
the operations +, -, *, / in that order, dropping decimal results and results
of 2000 or more, and backtrack. The output is the verbalised search trace
(`# Search Procedure`) followed by the solution as three equations inside
`<Solution></Solution>`. The oracle writes exactly that trace, in the format
of the paper's `countdown_evaluator.py`; one short worked example is shown in
the prompt.

Instances are solvable by construction: four numbers in [1, 50] are combined
by a random valid expression, whose value (1..999) is the target. The paper
buckets instances by trace length; here puzzles are redrawn until the oracle's
output falls within the level's token range (B/2..B, see `longproc`).

Metric (paper `evaluate_countdown_final_solution`): `accuracy` = 1 iff the
solution is valid: exactly three lines `a op b = c` (op one of + - * /, also
× ÷ − accepted), each arithmetically exact, every operand taken from the
numbers still available (the four given numbers, then the results of earlier
lines; each used once), every result a non-negative integer below 2000, and
the last result equal to the target. Success iff valid. Reward = accuracy.
`info["error"]` says why an invalid solution was rejected.

Departures from the paper:
- the paper's rules say intermediate results must be positive, while its own
  search keeps 0 (e.g. 7 - 7 = 0); the rules here say non-negative, matching
  the search;
- the solution is read from the *last* `<Solution>` block (the paper takes
  the first); blank lines and a trailing period are tolerated, nothing else;
- results of 2000 or more are rejected in the solution too (the paper only
  prunes them in the search);
- the paper's search-procedure partial score is not computed.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from longhorizon.envs.core.base import clip_text
from longhorizon.envs.longproc.common import LongProcEnv, estimate_tokens, last_tagged_block, token_budget

N_NUMBERS = 4
NUMBER_RANGE = (1, 50)
MAX_RESULT = 2000  # the paper's _MAX_INTERMEDIATE_RESULTS: results >= this are pruned
MAX_TARGET = 999
MAX_DRAWS = 2000  # puzzle redraws per reset before settling for the closest length
OP_ALIASES = {"+": "+", "-": "-", "−": "-", "*": "*", "×": "*", "/": "/", "÷": "/"}
EQUATION_RE = re.compile(r"(\d{1,6})\s*([-+*/×÷−])\s*(\d{1,6})\s*=\s*(\d{1,7})\.?")

PROMPT = """[TASK]
You will be given four numbers and a target number, your task is to find a way to use all four numbers exactly once, along with the basic operations (+, -, *, /), to reach the target number.

[RULES]
- You can use each number exactly once.
- You can use the four basic operations (+, -, *, /).
- The intermediate results must be integers (no decimals allowed).
- The intermediate results must be non-negative.
- The intermediate results must be less than 2000.

[APPROACH]
We will solve the problem by searching. Starting from a given set of four numbers, we will follow this search process:
- At each state, we will consider all possible number pairs (in order) from the current number set. Choose one pair and apply one of the four basic operations to them to obtain a new number.
  * If there are still numbers left, we will add the new number to the number set and continue the search.
  * If we have used all numbers, we will check if the new number is equal to the target number. If it is, we have found the solution. Otherwise, we will backtrack.
- Suppose the two numbers we choose are a and b (where a >= b). We will try the four options (a + b), (a - b), (a * b), (a / b) to obtain the new number. Remember to always use the larger number as the first operand.
- If the new number is a decimal, or exceeds the maximum intermediate result, we will discard this branch and backtrack.
- We will continue this process until we reach the target number with four numbers used or exhaust all possible combinations.

[EXAMPLES]
# Example
Numbers: {example_nums}
Target: {example_target}

{example_trace}

[Problem]
Now, solve the following problem. Note that:
- Please carefully read the approach and examples provided above, and follow them to solve the problem.
- Please ALWAYS include your search procedure (after # Search Procedure). The search procedure should follow the format of the examples provided above.
- Please mark your answer with <Solution> and </Solution> tags. The solution should be a sequence of three equations exactly following the format of the examples above, with no additional text in between.

Numbers: {nums}
Target: {target}"""

SOLUTION_TEMPLATE = """Now we have found the target, let's trace back the solution:
Final step: {s[2]}
The step before: {s[1]}
The first step: {s[0]}

Output the solution in the required format:
<Solution>
{s[0]}
{s[1]}
{s[2]}
</Solution>"""


# -- the verbalised depth-first search (format of the paper's countdown_evaluator.py) --
@dataclass
class _Search:
    target: int
    log: list[str] = field(default_factory=list)
    path: list[str] = field(default_factory=list)


def _indent(depth: int) -> str:
    return "" if depth == 0 else " " * depth + "|- "


def _pairs(nums: list[int]):
    for i in range(len(nums)):
        for j in range(i + 1, len(nums)):
            yield nums[i], nums[j], [x for k, x in enumerate(nums) if k not in (i, j)]


def _operations(a: int, b: int) -> list[tuple[str, float | None]]:
    """(equation, value) for a+b, a-b, a*b, a/b with a >= b; value None for division by zero."""
    ops: list[tuple[str, float | None]] = [(f"{a} + {b} = {a + b}", a + b), (f"{a} - {b} = {a - b}", a - b)]
    ops.append((f"{a} * {b} = {a * b}", a * b))
    if b == 0:
        ops.append((f"{a} / {b} (invalid operation)", None))
    elif a % b == 0:
        ops.append((f"{a} / {b} = {a // b}", a // b))
    else:
        ops.append((f"{a} / {b} = {a / b:.1f}", a / b))
    return ops


def _pruned(search: _Search, value: float | None, equation: str, depth: int) -> bool:
    """Log and report a branch whose new number is invalid (division by zero, decimal, too large)."""
    head = f"\n{_indent(depth)}Try {equation}."
    if value is None:
        search.log.append(f"{head} drop this branch.")
    elif value % 1 != 0:
        search.log.append(f"{head} {value:.1f} is a decimal, drop this branch.")
    elif value >= MAX_RESULT:
        search.log.append(f"{head} {int(value)} exceeds the maximum intermediate result, drop this branch.")
    else:
        return False
    return True


def _try(search: _Search, nums: list[int], equation: str, depth: int) -> bool:
    """Visit the state reached by `equation` (its result is nums[0])."""
    head = f"\n{_indent(depth)}Try {equation}."
    if len(nums) == 1:
        found = nums[0] == search.target
        verdict = "==" if found else "!="
        tail = "target found!" if found else "drop this branch."
        search.log.append(f"{head} Evaluate {nums[0]} {verdict} {search.target}, {tail}")
        return found
    search.log.append(f"{head} Add {nums[0]} to the number set.")
    return _expand(search, nums, depth)


def _expand(search: _Search, nums: list[int], depth: int) -> bool:
    """Log the state, then try every pair and operation in order; True once the target is found."""
    options = [(a, b) for a, b, _ in _pairs(nums)]
    if len(nums) == 2:
        search.log.append(f" Current number set: {nums}, target: {search.target}, just two numbers left.")
    else:
        lead = "Initial number set" if depth == 0 else " Current number set"
        search.log.append(f"{lead}: {nums}, target: {search.target}. Options for choosing two numbers: {options}.")
        depth += 1
    for a, b, rest in _pairs(nums):
        if len(nums) > 2:
            pick_line = f"Pick two numbers ({a}, {b}) (numbers left: {rest}). Try possible operations."
            search.log.append(f"\n{_indent(depth)}{pick_line}")
        for equation, value in _operations(max(a, b), min(a, b)):
            search.path.append(equation)
            pruned = _pruned(search, value, equation, depth + 1)
            if not pruned and _try(search, [int(value)] + rest, equation, depth + 1):
                return True
            search.path.pop()
    return False


def search_trace(nums: list[int], target: int) -> tuple[str, list[str]] | None:
    """The oracle's full output (search procedure + solution) and its equations; None if unsolvable."""
    search = _Search(target)
    if not _expand(search, list(nums), 0):
        return None
    trace = "# Search Procedure\n" + "".join(search.log) + "\n\n" + SOLUTION_TEMPLATE.format(s=search.path)
    return trace, list(search.path)


# -- instance generation ---------------------------------------------------------------
def _apply(a: int, b: int, op: int) -> int | None:
    """a op b for a >= b, or None if the result breaks the rules."""
    value = (a + b, a - b, a * b, a // b if b and a % b == 0 else None)[op]
    return value if value is not None and value < MAX_RESULT else None


def random_puzzle(rng: np.random.Generator) -> tuple[list[int], int]:
    """Four numbers and a target reached by a random valid expression over them."""
    while True:
        nums = [int(x) for x in rng.integers(NUMBER_RANGE[0], NUMBER_RANGE[1] + 1, size=N_NUMBERS)]
        pool: list[int | None] = list(nums)
        while len(pool) > 1 and pool[0] is not None:
            i, j = (int(k) for k in rng.choice(len(pool), size=2, replace=False))
            a, b = max(pool[i], pool[j]), min(pool[i], pool[j])
            pool = [_apply(a, b, int(rng.integers(4)))] + [x for k, x in enumerate(pool) if k not in (i, j)]
        if pool[0] is not None and 0 < pool[0] <= MAX_TARGET:
            return nums, pool[0]


# -- verification ------------------------------------------------------------------------
def parse_solution(text: str) -> tuple[list[tuple[int, str, int, int]] | None, str | None]:
    """Equations `(a, op, b, c)` from the last `<Solution>` block, or (None, reason)."""
    block = last_tagged_block(text, "Solution")
    if block is None:
        return None, "no <Solution>...</Solution> block found"
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    if len(lines) != N_NUMBERS - 1:
        return None, f"the solution must have exactly {N_NUMBERS - 1} equation lines, found {len(lines)}"
    equations = []
    for line in lines:
        match = EQUATION_RE.fullmatch(line)
        if not match:
            return None, f"cannot read {clip_text(line, 60)!r} as an equation 'a op b = c'"
        a, op, b, c = match.groups()
        equations.append((int(a), OP_ALIASES[op], int(b), int(c)))
    return equations, None


def check_equation(a: int, op: str, b: int, c: int) -> str | None:
    """Why `a op b = c` breaks the rules, or None if it is exact and allowed."""
    if op == "/" and (b == 0 or a % b != 0):
        return f"{a} / {b} is not an exact integer division"
    value = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b else 0}[op]
    if value < 0:
        return f"{a} - {b} is negative"
    if value != c:
        return f"{a} {op} {b} = {value}, not {c}"
    if value >= MAX_RESULT:
        return f"{value} is not below {MAX_RESULT}"
    return None


def verify_solution(nums: list[int], target: int, equations: list[tuple[int, str, int, int]]) -> str | None:
    """Why the solution is invalid, or None if it uses each number once and reaches the target."""
    available = Counter(nums)
    for k, (a, op, b, c) in enumerate(equations, start=1):
        needed = Counter([a, b])
        if needed - available:
            return f"step {k}: {a} and {b} are not both available (left: {sorted(available.elements())})"
        problem = check_equation(a, op, b, c)
        if problem:
            return f"step {k}: {problem}"
        available = available - needed + Counter([c])
    final = equations[-1][3]
    return None if final == target else f"the last result is {final}, not the target {target}"


class CountdownEnv(LongProcEnv):
    """LongProc countdown: reach a target from four numbers with + - * /, writing out the search (arXiv 2501.05414).

    Knob `level` (0.5k/2k/8k output tokens, via the search trace's length); metric: valid-solution accuracy.
    """

    REWARD: ClassVar[str] = "1 if the solution is valid, else 0"

    def _generate(self) -> None:
        low, high = token_budget(self.level)
        best: tuple[float, list[int], int, str, list[str]] | None = None
        for _ in range(MAX_DRAWS):
            nums, target = random_puzzle(self.np_random)
            found = search_trace(nums, target)
            assert found is not None, "puzzles are solvable by construction"
            trace, solution = found
            tokens = estimate_tokens(trace)
            distance = max(low - tokens, tokens - high, 0.0)
            if best is None or distance < best[0]:
                best = (distance, nums, target, trace, solution)
            if distance == 0:
                break
        _, self.nums, self.target, self.reference, self.solution = best

    def _prompt(self) -> str:
        return PROMPT.format(
            example_nums=EXAMPLE[0], example_target=EXAMPLE[1], example_trace=EXAMPLE[2],
            nums=self.nums, target=self.target,
        )

    def _score(self, text: str) -> tuple[dict[str, float], str | None]:
        equations, error = parse_solution(text)
        if equations is not None:
            error = verify_solution(self.nums, self.target, equations)
        return {"accuracy": float(error is None)}, error

    def wrong_action(self, rng: np.random.Generator) -> str:
        """The oracle's solution with the last result off by one (well-formed, invalid)."""
        lhs, rhs = self.solution[-1].split(" = ")
        last = f"{lhs} = {int(rhs) + 1}"
        return "<Solution>\n" + "\n".join(self.solution[:-1] + [last]) + "\n</Solution>"


def _example() -> tuple[list[int], int, str]:
    nums, target = [5, 30, 50, 30], 2  # a short search: shows a pruned product, a decimal and a find
    found = search_trace(nums, target)
    assert found is not None
    return nums, target, found[0]


EXAMPLE = _example()
