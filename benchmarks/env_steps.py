"""Env steps per second for every registered longhorizon env, with the oracle as the scripted agent (no model).

    python benchmarks/env_steps.py                  # every env, every level, ~1 s each
    python benchmarks/env_steps.py --seconds 3 --env Vending --env Apps

For each (env, level) it plays whole oracle episodes (seeds 0, 1, 2, ...) until
the time budget is spent, and prints one table row:

- `env steps/s`: steps per second of time spent inside `step()` only;
- `loop steps/s`: steps per second of the whole loop (reset + oracle + step);
- `steps/ep`, `success`: the mean oracle episode length and success rate.

New envs are picked up from `longhorizon.envs.list_envs()`; an env whose
oracle fails is reported in the table, not raised.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from longhorizon.envs import env_class, list_envs, make

MAX_EPISODE_STEPS = 100_000


@dataclass
class Row:
    env_id: str
    level: str
    episodes: int = 0
    steps: int = 0
    step_seconds: float = 0.0
    loop_seconds: float = 0.0
    successes: int = 0
    error: str = ""


def run_episode(env, seed: int, row: Row) -> None:
    """Play one oracle episode, adding its steps and timings to `row`."""
    env.reset(seed=seed)
    for _ in range(MAX_EPISODE_STEPS):
        action = env.unwrapped.oracle_action()
        start = time.perf_counter()
        _, _, terminated, truncated, info = env.step(action)
        row.step_seconds += time.perf_counter() - start
        row.steps += 1
        if terminated or truncated:
            break
    row.episodes += 1
    row.successes += info.get("success") is True


def bench(env_id: str, level: str, seconds: float) -> Row:
    row = Row(env_id, level)
    try:
        env = make(env_id, **env_class(env_id).LEVELS[level])
        start = time.perf_counter()
        while row.loop_seconds < seconds:
            run_episode(env, row.episodes, row)
            row.loop_seconds = time.perf_counter() - start
    except Exception as exc:  # a benchmark reports a broken env instead of stopping
        row.error = f"{type(exc).__name__}: {exc}"[:60]
    return row


def format_table(rows: list[Row]) -> str:
    header = (f"{'env':<32} {'level':<10} {'episodes':>8} {'steps/ep':>9} {'success':>8} "
              f"{'env steps/s':>12} {'loop steps/s':>13}")
    lines = [header, "-" * len(header)]
    for r in rows:
        if r.error:
            lines.append(f"{r.env_id:<32} {r.level:<10} ERROR {r.error}")
            continue
        lines.append(f"{r.env_id:<32} {r.level:<10} {r.episodes:>8} {r.steps / max(r.episodes, 1):>9.1f} "
                     f"{r.successes / max(r.episodes, 1):>8.0%} {r.steps / max(r.step_seconds, 1e-9):>12,.0f} "
                     f"{r.steps / max(r.loop_seconds, 1e-9):>13,.0f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time budget per (env, level)")
    parser.add_argument("--env", action="append", default=[], help="only env ids containing this text (repeatable)")
    parser.add_argument("--default-level-only", action="store_true", help="bench only the first level of each env")
    args = parser.parse_args()
    rows = []
    for env_id in list_envs():
        if args.env and not any(part in env_id for part in args.env):
            continue
        levels = list(env_class(env_id).LEVELS)
        for level in levels[:1] if args.default_level_only else levels:
            rows.append(bench(env_id, level, args.seconds))
    print(format_table(rows))


if __name__ == "__main__":
    main()
