"""The feedback store: human (and simulated) labels on episodes, in SQLite (WAL mode) in the runs directory.

    store = FeedbackStore(runs_dir / FEEDBACK_DB)
    created = store.add(Label(label_id="7f3a...", kind="turn_rating", annotator="ana", run="quick",
                              source="trajectories.jsonl", episode=3, turn=2, value="first_mistake"))
    store.labels(run="quick")

One table, `labels`, one row per label. Every row names its annotator, the
server's UTC time (`created_at`) and the exact ids of what it labels: the run
(its directory relative to the runs directory), the trajectory file inside the
run (`source`, e.g. `trajectories.jsonl` or `trajectories/step_000003.jsonl`),
the episode (line index in that file) and, for turn labels, the turn index.

Kinds (`kind`) and what they need:
- `preference`: two episodes of the same task. `run/source/episode` is side A,
  `other_run/other_source/other_episode` side B; `value` is `a`, `b` or `tie`.
- `turn_rating`: `turn` and `value` in `good`, `bad`, `first_mistake`.
- `critique`: free `text`, of a whole episode (`turn` empty) or of one turn.
- `stage_rating`: NExT-Search's process-level feedback (methods-2.md §8):
  `stage` in `query`, `retrieval`, `answer`, `value` `good` or `bad`, and
  `turns`, the turn indices the stage covers (see `episode_stages`).
Any kind may carry a `text` note. `source_kind` says who labelled: `human`, or
for a simulated annotator the preference records' vocabulary (`verifier`,
`judge`, `model`; src/longhorizon/feedback/).

Writes are idempotent: the client supplies `label_id`. Re-sending the same
label (a retry) changes nothing and `add` returns False; re-using an id for a
different label raises `LabelConflict`. Labels are never updated in place: a
new rating of the same turn is a new row, and readers take the latest
(`latest`). Writers in one process are serialised by a lock (SQLite allows one
writer at a time; queueing on a lock is fairer than its busy-wait); other
processes wait up to `busy_timeout`. `synchronous=FULL`: a label is on disk
when `add` returns.

Stages (`episode_stages`, our mapping; the paper is a perspective with no
code): an env may name a turn's stage in `turn.info["stage"]` (one of
`STAGES`; other names are ignored). Otherwise a
turn whose action is a tool call belongs to `query` (the call's arguments are
the query the agent wrote) and to `retrieval` (what the tool sent back, the
next observation), and every other turn, plus the last turn always, to
`answer`. An episode is multi-stage when it has at least one tool-call turn
before its last.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from longhorizon.types import Trajectory

FEEDBACK_DB = "feedback.sqlite"  # inside the runs directory
STAGES = ("query", "retrieval", "answer")
VALUES = {
    "preference": ("a", "b", "tie"),
    "turn_rating": ("good", "bad", "first_mistake"),
    "stage_rating": ("good", "bad"),
    "critique": (None,),
}
SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    label_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    annotator TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    created_at TEXT NOT NULL,
    run TEXT NOT NULL,
    source TEXT NOT NULL,
    episode INTEGER NOT NULL,
    turn INTEGER,
    other_run TEXT,
    other_source TEXT,
    other_episode INTEGER,
    value TEXT,
    stage TEXT,
    turns TEXT,
    text TEXT
);
CREATE INDEX IF NOT EXISTS labels_episode ON labels (run, source, episode);
"""
COLUMNS = ("label_id", "kind", "annotator", "source_kind", "created_at", "run", "source", "episode", "turn",
           "other_run", "other_source", "other_episode", "value", "stage", "turns", "text")


class LabelConflict(ValueError):
    """A label id that is already stored with different content."""


class Label(BaseModel):
    """One label, as a client sends it (`created_at` is set by the store)."""

    model_config = ConfigDict(extra="forbid")

    label_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{8,100}$", description="client-chosen unique id (a UUID); a retry re-sends it")
    kind: Literal["preference", "turn_rating", "critique", "stage_rating"] = Field(description="what the label says")
    annotator: str = Field(min_length=1, max_length=100, description="who labelled (a name the person types, or the simulated annotator's)")
    source_kind: Literal["human", "verifier", "judge", "model"] = Field("human", description="a person, or which kind of simulated annotator")
    run: str = Field(min_length=1, max_length=500, description="the run directory, relative to the runs directory")
    source: str = Field(min_length=1, max_length=500, description="the trajectory file inside the run")
    episode: int = Field(ge=0, description="the episode's line index in `source`")
    turn: int | None = Field(None, ge=0, description="the turn index (turn ratings, turn critiques)")
    other_run: str | None = Field(None, max_length=500, description="preference: side B's run")
    other_source: str | None = Field(None, max_length=500, description="preference: side B's trajectory file")
    other_episode: int | None = Field(None, ge=0, description="preference: side B's episode index")
    value: str | None = Field(None, description="preference a/b/tie; rating good/bad(/first_mistake)")
    stage: Literal["query", "retrieval", "answer"] | None = Field(None, description="stage_rating: which stage")
    turns: list[int] | None = Field(None, max_length=10_000, description="stage_rating: the turns the stage covers")
    text: str | None = Field(None, max_length=20_000, description="critique text, or a note on any label")
    created_at: str | None = Field(None, description="UTC time the store accepted it (ISO 8601); set by the store")

    @model_validator(mode="after")
    def _fits_kind(self) -> "Label":
        if self.value not in VALUES[self.kind]:
            raise ValueError(f"value for {self.kind} must be one of {[v for v in VALUES[self.kind] if v]}, got {self.value!r}")
        needs = {"preference": ("other_run", "other_source", "other_episode"), "turn_rating": ("turn",),
                 "stage_rating": ("stage", "turns"), "critique": ("text",)}[self.kind]
        missing = [name for name in needs if getattr(self, name) in (None, "")]
        if missing:
            raise ValueError(f"a {self.kind} label needs {', '.join(missing)}")
        return self

    @property
    def episode_key(self) -> tuple[str, str, int]:
        return (self.run, self.source, self.episode)

    @property
    def other_key(self) -> tuple[str, str, int] | None:
        return None if self.other_run is None else (self.other_run, self.other_source, self.other_episode)

    def content(self) -> dict[str, Any]:
        """Everything but the store's timestamp: two sends of one label have equal content."""
        return self.model_dump(exclude={"created_at"})


class FeedbackStore:
    """Labels in one SQLite file (WAL). Thread-safe: one writer connection behind a lock, one reader per thread.

    Connections stay open: closing the last connection to a WAL database
    checkpoints and deletes the WAL, which made a connection per call ~10 ms.
    """

    def __init__(self, path: str | Path, busy_timeout_ms: int = 10_000):
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._write_lock = threading.Lock()
        self._readers = threading.local()
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA synchronous=FULL")
        return db

    def _reader(self) -> sqlite3.Connection:
        if getattr(self._readers, "db", None) is None:
            self._readers.db = self._connect()
        return self._readers.db

    def add(self, label: Label) -> bool:
        """Store `label`; True if new, False if this exact label was already stored (a retry)."""
        row = {**label.content(), "turns": _dump_turns(label.turns), "created_at": _now()}
        with self._write_lock:
            cur = self._writer.execute(f"INSERT OR IGNORE INTO labels ({', '.join(COLUMNS)}) "
                                       f"VALUES ({', '.join(':' + c for c in COLUMNS)})", row)
            if cur.rowcount == 1:
                return True
            stored = _fetch(self._writer, "WHERE label_id = ?", (label.label_id,))[0]
        if stored.content() != label.content():
            raise LabelConflict(f"label id {label.label_id!r} is already used by a different label")
        return False

    def labels(self, run: str | None = None, source: str | None = None, episode: int | None = None) -> list[Label]:
        """Labels in the order they were stored, optionally those touching one run / file / episode (either side)."""
        where, args = _filters(run, source, episode)
        return _fetch(self._reader(), where, args)

    def count(self) -> int:
        return self._reader().execute("SELECT COUNT(*) FROM labels").fetchone()[0]


def _filters(run: str | None, source: str | None, episode: int | None) -> tuple[str, tuple]:
    """A WHERE clause matching side A or side B on the given ids."""
    sides = []
    args: list[Any] = []
    for prefix in ("", "other_"):
        parts = [(f"{prefix}{name} = ?", value) for name, value in (("run", run), ("source", source), ("episode", episode))
                 if value is not None]
        if parts:
            sides.append("(" + " AND ".join(p for p, _ in parts) + ")")
            args += [v for _, v in parts]
    return ("WHERE " + " OR ".join(sides) if sides else ""), tuple(args)


def _fetch(db: sqlite3.Connection, where: str, args: tuple) -> list[Label]:
    rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM labels {where} ORDER BY rowid", args).fetchall()
    return [Label(**{**dict(zip(COLUMNS, row)), "turns": _load_turns(row[COLUMNS.index("turns")])}) for row in rows]


def _dump_turns(turns: list[int] | None) -> str | None:
    return None if turns is None else json.dumps(turns)


def _load_turns(text: str | None) -> list[int] | None:
    return None if text is None else json.loads(text)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def latest(labels: list[Label]) -> list[Label]:
    """Per annotator and target, the last label stored; critiques are all kept.

    Targets: a turn (turn ratings), a stage of an episode (stage ratings), an
    unordered pair of episodes (preferences). `labels` must be in store order.
    """
    keep: dict[tuple, Label] = {}
    for i, label in enumerate(labels):
        keep[_target(label, i)] = label  # a later label of the same target replaces the earlier
    return list(keep.values())


def _target(label: Label, i: int) -> tuple:
    if label.kind == "preference":
        return (label.annotator, label.kind, frozenset([label.episode_key, label.other_key]))
    if label.kind == "critique":
        return (i,)
    return (label.annotator, label.kind, label.episode_key, label.turn, label.stage)


# ------------------------------------------------------------------- stages
def tool_call_names(action: str) -> list[str]:
    """The tools an action calls (empty if it is not a well-formed tool call)."""
    if "<tool_call>" not in action and not action.lstrip().startswith("{"):
        return []  # cannot be a call; spares importing the envs (seconds) for plain-text episodes
    from longhorizon.envs.core.tools import parse_tool_calls

    calls, error = parse_tool_calls(action)
    return [] if error else [call.name for call in calls]


def episode_stages(traj: Trajectory) -> dict[str, list[int]]:
    """Stage name -> the turn indices it covers (module docstring); empty if the episode is not multi-stage."""
    last = len(traj.turns) - 1
    stages: dict[str, list[int]] = {}
    has_calls = False
    for t, turn in enumerate(traj.turns):
        named = turn.info.get("stage") if isinstance(turn.info, dict) else None
        named = named if named in STAGES else None
        calls = t < last and bool(tool_call_names(turn.action))
        has_calls |= calls or named is not None
        names = [str(named)] if named is not None else (["query", "retrieval"] if calls else ["answer"])
        for name in names:
            stages.setdefault(name, []).append(t)
    return stages if has_calls else {}
