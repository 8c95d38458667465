"""`memory`: lessons from earlier episodes in the prompt, after MUSE (Yang et al., "Learning on the Job:
An Experience-Driven Self-Evolving Agent for Long-Horizon Tasks", arXiv 2510.08002).

After each episode the agent writes a few short lessons into a persistent
store; the lessons most relevant to a new episode go into its prompt. The
prompt otherwise is that of a base strategy (`base`, default `full`; its
options in `base_options`), which this one wraps.

- Writing (`end_episode`, called by the runner as each episode ends):
  `rule_lessons` summarises the outcome (success, turns, reward, first wrong
  turn) and the env's most frequent errors (`info["error"]`, with quoted text
  and numbers normalised so one kind of error is one lesson). With a
  `generate(prompt) -> str` callable (e.g. `rollout.text_generator(sampler)`), the
  model also writes one lesson of its own from the same summary.
- Store: `memory.jsonl` in the run directory (`attach`), or `path`; one
  lesson per line: text, env id, keywords (words of the task it came from),
  logical clock stamps `created` / `last_used`, and `uses`. Writing a lesson
  that is already there (same env id and text) refreshes it instead.
- Retrieval, once per episode at turn 0: lessons of the same env id, ranked by
  lexical overlap (shared words of >= 3 letters, stopwords aside) between the lesson's text and
  keywords and the task (first observation), ties to the most recently used;
  the top `top_k`. They are pinned in the trajectory's metadata
  (`metadata["memory_lessons"]`), so every turn of the episode shows the same
  ones and the saved episode records what it was shown.
- Prompt: the lessons are appended to the system prompt (created if the env
  has none) as "Lessons from earlier episodes:\\n- ...". Prompt tokens, mask 0.
- Cap and eviction: at most `capacity` lessons; beyond it the least recently
  used (lowest `last_used`, then oldest) go first.
- Checkpoints: the trainer saves the store (`state_dict`) in every checkpoint and
  puts it back on resume, so lessons written after the last checkpoint by a
  killed run are dropped and the resumed run is exact. Its held-out
  evaluations run inside `frozen()`: they read the lessons but write none and
  count no uses, so held-out tasks never leak into the store.

Training: the base strategy's samples (the lessons are part of the recorded
prompt ids).

Departures from MUSE (from its abstract and summaries; code not read):
1. one flat store instead of its hierarchy (strategic / procedural / tool
   memory), and lessons per episode rather than per sub-task;
2. rule-based lessons by default (MUSE's reflect agent is an LLM: pass
   `generate` for that), lexical ranking instead of LLM-driven retrieval;
3. episodes started in the same batch cannot see each other's lessons (they
   all retrieve at turn 0); lessons help the next rollout.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from longhorizon.context.base import EpisodeView, StrategyWrapper
from longhorizon.io import atomic_write
from longhorizon.types import Trajectory

KEY = "memory_lessons"
HEADER = "Lessons from earlier episodes:"
WORD_RE = re.compile(r"[a-z]{3,}")
STOPWORDS = frozenset("the and you your for with that this are was were not but all any can from have has into "
                      "its out our per than then them they what when which who will each".split())
MAX_KEYWORDS = 256


def words(text: str) -> set[str]:
    """Lower-case words of >= 3 letters, minus a few stopwords (the vocabulary of lexical overlap)."""
    return set(WORD_RE.findall(text.lower())) - STOPWORDS


@dataclass
class Lesson:
    """One stored lesson."""

    text: str
    env_id: str
    keywords: list[str] = field(default_factory=list)  # words of the task it was learned on
    created: int = 0  # logical clock
    last_used: int = 0
    uses: int = 0  # times retrieved into a prompt

    def overlap(self, task_words: set[str]) -> int:
        return len((words(self.text) | set(self.keywords)) & task_words)


class LessonStore:
    """A capped list of lessons, saved as JSON lines; least recently used evicted first."""

    def __init__(self, path: str | Path | None = None, capacity: int = 200):
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"option capacity must be an integer >= 1, got {capacity!r}")
        self.path, self.capacity = (Path(path) if path else None), capacity
        self.lessons: list[Lesson] = []
        self.clock = 0
        if self.path is not None and self.path.exists():
            self.load()

    def load(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            self.lessons = [Lesson(**json.loads(line)) for line in f if line.strip()]
        self.clock = max((max(x.created, x.last_used) for x in self.lessons), default=0)

    def save(self) -> None:
        """Rewrite the file through a temporary one (a crash never leaves half a file)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, "".join(json.dumps(asdict(x), ensure_ascii=False) + "\n" for x in self.lessons))

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def add(self, texts: list[str], env_id: str, task: str) -> None:
        """Store new lessons (refreshing identical ones), then evict down to the cap."""
        keywords = sorted(words(task))[:MAX_KEYWORDS]
        for text in texts:
            now = self.tick()
            same = next((x for x in self.lessons if x.env_id == env_id and x.text == text), None)
            if same is not None:
                same.last_used, same.keywords = now, sorted(set(same.keywords) | set(keywords))[:MAX_KEYWORDS]
            else:
                self.lessons.append(Lesson(text, env_id, keywords, created=now, last_used=now))
        self.evict()

    def evict(self) -> None:
        """Least recently used first (then oldest) until at most `capacity` remain."""
        self.lessons.sort(key=lambda x: (x.last_used, x.created), reverse=True)
        del self.lessons[self.capacity:]

    def retrieve(self, env_id: str, task: str, k: int, mark: bool = True) -> list[Lesson]:
        """The k lessons of this env with the most words in common with the task (ties: most recently used).

        With `mark`, they count as used (clock, `last_used`, `uses`); without, the store is left as it was.
        """
        task_words = words(task)
        same_env = [x for x in self.lessons if x.env_id == env_id]
        ranked = sorted(same_env, key=lambda x: (x.overlap(task_words), x.last_used, x.created), reverse=True)[:k]
        if not mark:
            return ranked
        now = self.tick()
        for x in ranked:
            x.last_used, x.uses = now, x.uses + 1
        return ranked


# ---------------------------------------------------------------- writing lessons
def normalise_error(message: str) -> str:
    """One kind of error, one text: quoted parts become '...' and numbers N."""
    return re.sub(r"\d+", "N", re.sub(r"'[^']*'|\"[^\"]*\"", "'...'", message)).strip()


def outcome_line(trajectory: Trajectory) -> str:
    n, r = len(trajectory.turns), trajectory.total_reward
    if trajectory.success:
        return f"An earlier episode succeeded in {n} turns (reward {r:g}); the same approach works."
    wrong = next((i + 1 for i, t in enumerate(trajectory.turns) if t.info.get("correct") is False), None)
    first = f"; the first wrong answer was at turn {wrong}" if wrong else ""
    return f"An earlier episode failed after {n} turns (reward {r:g}){first}."


def error_lines(trajectory: Trajectory, top: int = 2) -> list[str]:
    errors = Counter(normalise_error(str(t.info["error"])) for t in trajectory.turns if t.info.get("error"))
    return [f"Rejected {c} time{'s' if c > 1 else ''}: {e}. Avoid it." for e, c in errors.most_common(top)]


def rule_lessons(trajectory: Trajectory) -> list[str]:
    """The default writer: the outcome, then the env's most frequent errors."""
    return [outcome_line(trajectory), *error_lines(trajectory)]


def reflection_prompt(trajectory: Trajectory) -> str:
    task = trajectory.turns[0].observation if trajectory.turns else ""
    summary = " ".join(rule_lessons(trajectory))
    return (f"You just finished an episode of {trajectory.env_id}.\nTask (start): {task[:400]}\n"
            f"What happened: {summary}\nWrite one short lesson (one sentence) for your next attempt.")


def model_lesson(trajectory: Trajectory, generate: Callable[[str], str]) -> list[str]:
    """One lesson in the model's own words: the first non-empty line of its answer (<= 200 chars)."""
    lines = [line.strip() for line in generate(reflection_prompt(trajectory)).splitlines() if line.strip()]
    return [lines[0][:200]] if lines else []


# ---------------------------------------------------------------- the strategy
class Memory(StrategyWrapper):
    """A base strategy whose system prompt carries the lessons retrieved for this episode."""

    name = "memory"

    def __init__(self, base: str = "full", base_options: dict[str, Any] | None = None, path: str | None = None,
                 capacity: int = 200, top_k: int = 3, generate: Callable[[str], str] | None = None,
                 writer: Callable[[Trajectory], list[str]] = rule_lessons):
        from longhorizon.context import make_strategy  # the registry imports this module

        if base == "memory":
            raise ValueError("option base cannot be 'memory'")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
            raise ValueError(f"option top_k must be an integer >= 0, got {top_k!r}")
        super().__init__(make_strategy(base, **(base_options or {})))
        self.name, self.store, self.top_k = "memory", LessonStore(path, capacity), top_k
        self.generate_text, self.writer = generate, writer
        self.learning = True  # False inside `frozen()`

    def build_prompt(self, episode: EpisodeView, tokenizer: Any) -> list[int]:
        return self.inner.build_prompt(with_lessons(episode, self.lessons_for(episode)), tokenizer)

    def lessons_for(self, episode: EpisodeView) -> list[str]:
        """The lessons pinned to this episode, retrieved at its first prompt."""
        if KEY not in episode.metadata:
            found = self.store.retrieve(episode.env_id, episode.task, self.top_k, mark=self.learning)
            episode.metadata[KEY] = [x.text for x in found]
        return list(episode.metadata[KEY])

    def end_episode(self, trajectory: Trajectory) -> None:
        """Write this episode's lessons and save the store (not while frozen)."""
        self.inner.end_episode(trajectory)
        if not self.learning:
            return
        texts = self.writer(trajectory) + (model_lesson(trajectory, self.generate_text) if self.generate_text else [])
        task = trajectory.turns[0].observation if trajectory.turns else ""
        self.store.add(texts, trajectory.env_id, task)
        self.store.save()

    def state_dict(self) -> dict[str, Any]:
        """The whole store: lessons and clock (a training checkpoint saves it)."""
        return {"lessons": [asdict(x) for x in self.store.lessons], "clock": self.store.clock,
                "inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put the store back as `state_dict` saw it, and rewrite its file to match ({}: keep the store as is)."""
        if not state:
            return  # a checkpoint written before stores were saved in it
        self.store.lessons = [Lesson(**x) for x in state["lessons"]]
        self.store.clock = int(state["clock"])
        self.inner.load_state_dict(state.get("inner", {}))
        self.store.save()

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Read the store, write nothing: no new lessons, no use counts (held-out evaluation)."""
        before, self.learning = self.learning, False
        try:
            with self.inner.frozen():
                yield
        finally:
            self.learning = before

    def attach(self, run_dir: str | Path) -> None:
        """Keep the store in `run_dir/memory.jsonl` unless a `path` was given."""
        self.inner.attach(run_dir)
        if self.store.path is None:
            self.store.path = Path(run_dir) / "memory.jsonl"
            if self.store.path.exists():
                self.store.load()


def with_lessons(episode: EpisodeView, lessons: list[str]) -> EpisodeView:
    """The view with the lessons appended to its system prompt (unchanged if there are none)."""
    if not lessons:
        return episode
    block = HEADER + "".join(f"\n- {x}" for x in lessons)
    system = f"{episode.system_prompt}\n\n{block}" if episode.system_prompt else block
    return replace(episode, system_prompt=system)
