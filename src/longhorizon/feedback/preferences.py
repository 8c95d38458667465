"""Preference records: a context, two continuations, which one is preferred.

    pair = PreferencePair(context=[{"role": "user", "content": "2+2?"}],
                          a=[{"role": "assistant", "content": "4"}], b=[{"role": "assistant", "content": "5"}],
                          preferred="a", source="verifier")
    append_pairs(run_dir / PREFERENCES_FILE, [pair]);  load_pairs(run_dir / PREFERENCES_FILE)
    pairs = from_dataset(datasets.load_dataset(...)["train"], source="human");  to_dataset(pairs)

A context is a prompt: plain text, or chat messages (an episode prefix up to
turn k: system, observations and the agent's earlier actions). A continuation
is plain text, or a message list (one reply, or the rest of an episode: the
agent's actions and the env's observations in between). Both sides of a pair
have the same kind as each other and as a non-empty context.

The sides are called `a` and `b` (not chosen / rejected) so that a tie and
Think-RM's signed strength (-3..3, negative: `a` is better; methods-2.md §1)
need no special case; `pair.chosen` / `pair.rejected` read the preferred side.

Hugging Face `datasets` in TRL's preference format (the "preference" type of
TRL's dataset-formats guide): columns `prompt` / `chosen` / `rejected`, each a
string (standard) or a list of `{"role", "content"}` messages (conversational);
without `prompt` the prompt is implicit, the longest shared prefix of chosen
and rejected (TRL's `extract_prompt`: whole messages, or characters, with a
space just before the split left in the completions). Any other column is kept
in the record's `metadata` and written back as a column, so
`to_dataset(from_dataset(ds)) == ds` (with `implicit_prompt=True` for an
implicit-prompt dataset). Our own fields (source, strength, ties) travel only
with `extras=True`, as one JSON string column `longhorizon`; TRL ignores it.

Files: one JSON object per line. `append_pairs` writes all its lines with one
`write` under an exclusive `flock` and fsyncs, so concurrent writers never
interleave; `load_pairs` skips a torn last line (a crash mid-append) and
fails on any other bad line. `write_pairs` replaces a file atomically.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterable, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from longhorizon.errors import UserError
from longhorizon.io import atomic_write, fsync
from longhorizon.types import jsonable

PREFERENCES_FILE = "feedback/preferences.jsonl"  # where a run directory keeps its pairs
TRL_COLUMNS = ("prompt", "chosen", "rejected")
EXTRAS_COLUMN = "longhorizon"
Source = Literal["verifier", "judge", "human", "model"]
SOURCES = get_args(Source)


class Message(BaseModel):
    """One chat message; keys besides role and content (name, tool_calls, ...) are kept as given."""

    model_config = ConfigDict(extra="allow")

    role: str = Field(description="system, user, assistant, tool, ...")
    content: str = Field(description="the message text")


Text = str | list[Message]


class PreferencePair(BaseModel):
    """Two continuations of one context, and which one is preferred."""

    model_config = ConfigDict(extra="forbid")

    context: Text = Field(description="the prompt: plain text or chat messages (an episode prefix up to turn k)")
    a: Text = Field(description="first continuation: a reply, or the rest of an episode as messages")
    b: Text = Field(description="second continuation, of the same kind as `a`")
    preferred: Literal["a", "b", "tie"] = Field(description="which continuation is better, or a tie")
    strength: int | None = Field(None, ge=-3, le=3, description="Think-RM's signed strength: -3..-1 a is better, 0 tie, 1..3 b is better")
    source: Source = Field(description="who labelled the pair: verifier, judge, human or model")
    metadata: dict[str, Any] = Field(default_factory=dict, description="anything else (env id, seed, returns, turn k, dataset columns)")

    @model_validator(mode="after")
    def _consistent(self) -> "PreferencePair":
        if self.a == self.b:
            raise ValueError("the two sides of the pair are identical")
        if isinstance(self.a, str) != isinstance(self.b, str):
            raise ValueError("one side is plain text and the other chat messages")
        if self.context and isinstance(self.context, str) != isinstance(self.a, str):
            raise ValueError("the context and the continuations mix plain text and chat messages")
        if self.strength is not None and _sign(self.strength) != {"a": -1, "tie": 0, "b": 1}[self.preferred]:
            raise ValueError(f"strength {self.strength} contradicts preferred={self.preferred!r} (negative means a)")
        return self

    @property
    def chosen(self) -> Text:
        """The preferred continuation (`a` for a tie)."""
        return self.b if self.preferred == "b" else self.a

    @property
    def rejected(self) -> Text:
        return self.a if self.preferred == "b" else self.b

    @property
    def conversational(self) -> bool:
        return not isinstance(self.a, str)


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def make_pair(context: Text, a: Text, b: Text, preferred: str, source: str, **fields: Any) -> PreferencePair:
    """A validated pair, or a one-line UserError naming what is wrong."""
    try:
        return PreferencePair(context=context, a=a, b=b, preferred=preferred, source=source, **fields)
    except ValidationError as err:
        raise UserError(f"bad preference pair: {_first_error(err)}") from None


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"].removeprefix("Value error, ")


# ------------------------------------------------------------------ files


def pair_line(pair: PreferencePair) -> str:
    return json.dumps(pair.model_dump(mode="json"), ensure_ascii=False) + "\n"


def append_pairs(path: str | Path, pairs: Iterable[PreferencePair]) -> Path:
    """Append pairs to a JSONL file (created with its directory): one locked write, then fsync."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(pair_line(p) for p in pairs).encode("utf-8")
    with open(path, "ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    return path


def write_pairs(path: str | Path, pairs: Iterable[PreferencePair]) -> Path:
    """Replace the file with these pairs, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "".join(pair_line(p) for p in pairs))
    fsync(path.parent)
    return path


def load_pairs(path: str | Path) -> list[PreferencePair]:
    """Read a JSONL file of pairs; a torn last line (no newline: a crash mid-append) is skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"cannot read preference pairs {path}: {err.strerror}") from None
    complete = text.split("\n")[:-1]  # what follows the last "\n" is "" or an unfinished line
    return [_parse_line(line, path, i + 1) for i, line in enumerate(complete) if line.strip()]


def _parse_line(line: str, path: str | Path, lineno: int) -> PreferencePair:
    try:
        return PreferencePair.model_validate_json(line)
    except ValidationError as err:
        raise UserError(f"{path}:{lineno}: bad preference pair: {_first_error(err)}") from None


# ------------------------------------------------------------------ Hugging Face datasets (TRL format)


def from_dataset(dataset: Any, source: Source = "human") -> list[PreferencePair]:
    """Pairs from a `datasets.Dataset` in TRL's preference format (explicit or implicit prompt).

    `chosen` becomes `a` (preferred), `rejected` becomes `b`; other columns go to `metadata`.
    A `longhorizon` column (written by `to_dataset(..., extras=True)`) restores our own fields. A row's own
    `source` column (the web app's export writes one) names its labeller when it holds a labeller kind
    (verifier, judge, human, model); `source` is the default, and any other value (a dataset's origin) stays
    in `metadata`.
    """
    missing = [c for c in ("chosen", "rejected") if c not in dataset.column_names]
    if missing:
        raise UserError(f"dataset lacks the {' and '.join(map(repr, missing))} column(s) of TRL's preference format "
                        f"(prompt/chosen/rejected); it has {', '.join(dataset.column_names) or 'no columns'}")
    return [_row_pair(row, i, source) for i, row in enumerate(dataset)]


def _row_pair(row: dict[str, Any], index: int, source: str) -> PreferencePair:
    row = dict(row)
    extras = json.loads(row.pop(EXTRAS_COLUMN) or "{}") if EXTRAS_COLUMN in row else {}
    if "prompt" not in row:
        row.update(extract_prompt(row["chosen"], row["rejected"]))
    prompt, chosen, rejected = (row.pop(c) for c in TRL_COLUMNS)
    labeller = row.pop("source") if row.get("source") in SOURCES else source  # other values stay metadata
    fields = {"preferred": "a", "source": labeller, **extras, "metadata": row}
    if fields.pop("swapped", False):  # written by `to_rows` with chosen = b
        chosen, rejected = rejected, chosen
    try:
        return PreferencePair(context=prompt, a=chosen, b=rejected, **fields)
    except ValidationError as err:
        raise UserError(f"dataset row {index}: {_first_error(err)}") from None


def extract_prompt(chosen: Any, rejected: Any) -> dict[str, Any]:
    """TRL's implicit prompt: the longest shared prefix of messages (or characters, a space before the split
    staying in the completions); returns {"prompt", "chosen", "rejected"}."""
    idx = 0
    for idx in range(min(len(chosen), len(rejected)) + 1):
        if idx == min(len(chosen), len(rejected)) or chosen[idx] != rejected[idx]:
            break
    if isinstance(chosen, str) and idx > 0 and chosen[idx - 1] == " ":
        idx -= 1
    return {"prompt": chosen[:idx], "chosen": chosen[idx:], "rejected": rejected[idx:]}


def to_rows(pairs: Iterable[PreferencePair], implicit_prompt: bool = False, extras: bool = False,
            ties: Literal["drop", "keep"] = "drop") -> list[dict[str, Any]]:
    """TRL preference rows (chosen = the preferred side). Ties have no chosen side in TRL: dropped unless `keep`."""
    return [_pair_row(p, implicit_prompt, extras) for p in pairs if ties == "keep" or p.preferred != "tie"]


def _pair_row(pair: PreferencePair, implicit_prompt: bool, extras: bool) -> dict[str, Any]:
    dump = pair.model_dump(mode="json")
    prompt = dump["context"]
    chosen, rejected = (dump["b"], dump["a"]) if pair.preferred == "b" else (dump["a"], dump["b"])
    row = {"chosen": prompt + chosen, "rejected": prompt + rejected} if implicit_prompt else \
        {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    row.update(dump["metadata"])
    if extras:
        own = {"preferred": pair.preferred, "strength": pair.strength, "source": pair.source,
               "swapped": pair.preferred == "b"}  # chosen = b was written first: swap back on reading
        row[EXTRAS_COLUMN] = json.dumps(own)
    return row


def to_dataset(pairs: Iterable[PreferencePair], implicit_prompt: bool = False, extras: bool = False,
               ties: Literal["drop", "keep"] = "drop") -> Any:
    """A `datasets.Dataset` in TRL's preference format (see `to_rows`)."""
    datasets = _datasets()
    rows = to_rows(pairs, implicit_prompt, extras, ties)
    if not rows:
        raise UserError("no preference pairs to export (ties are dropped unless ties='keep')")
    return datasets.Dataset.from_list(jsonable(rows))


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise UserError("exporting to Hugging Face datasets needs the `datasets` package: pip install datasets") from None
    return datasets


def read_preferences(path: str | Path, source: Source = "human") -> list[PreferencePair]:
    """Pairs from a JSONL file, a run directory holding `PREFERENCES_FILE` (`longhorizon prefs build`), or a
    `datasets` directory written by `Dataset.save_to_disk` in TRL's format (labelled `source`)."""
    path = Path(path)
    if path.is_dir() and (path / PREFERENCES_FILE).exists():
        return load_pairs(path / PREFERENCES_FILE)
    if path.is_dir() and (path / "dataset_info.json").exists():
        return from_dataset(_datasets().load_from_disk(str(path)), source=source)
    if path.is_file():
        return load_pairs(path)
    raise UserError(f"no preference pairs at {path}: give a pairs JSONL file, a run directory of `longhorizon prefs "
                    f"build`, or a datasets directory saved with save_to_disk")
