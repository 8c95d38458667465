"""`longhorizon feedback export RUNS_DIR --out DIR`: the labels as Hugging Face `datasets`.

Writes two datasets with `Dataset.save_to_disk` (read back with
`datasets.load_from_disk`):

`DIR/preferences`: TRL's conversational preference format, one row per
pairwise label (the latest per annotator and pair; ties are left out, TRL has
no tie):
- `prompt`: `[{"role": "user", "content": first observation}]` (the system
  prompt and tool schemas are not in a trajectory, so they are not here);
- `chosen` / `rejected`: the rest of each episode as messages: each turn's
  action as `assistant`, and the env's reply between two actions as `user`
  (or `tool` when the env said so in `info["role"]`); each ends with the last
  action (the final verdict is not shown to the model);
- `source` (`human`, or the simulated annotator's kind: `verifier`, `judge`,
  `model`), `annotator`, `label_id`, `created_at`, `note` (the label's text),
  `env_id`, `seed`, `horizon`, `chosen_run`, `chosen_episode`,
  `rejected_run`, `rejected_episode` (episode ids `FILE#INDEX`),
  `chosen_return`, `rejected_return`.
These load with `longhorizon.feedback.preferences.from_dataset` (extra columns
go to each record's metadata) and with TRL's DPO/reward trainers.

`DIR/critiques`: one row per critique, turn rating and stage rating (ratings:
the latest per annotator and turn or stage; critiques: all), for the
language-feedback trainers, in TRL's conversational prompt-completion shape:
- `prompt`: the episode up to the labelled part (first observation, then the
  earlier actions and replies), as messages;
- `completion`: the labelled part as messages: one turn's action (turn
  labels), the actions and replies of the stage's turns (stage ratings), or
  the whole episode after the first observation (episode critiques);
- `kind` (`critique`, `turn_rating`, `stage_rating`), `critique` (the text,
  "" when none), `rating` (`good`, `bad`, `first_mistake`, or "" for a
  critique), `label` (TRL's unpaired-preference boolean: True for `good`,
  False for `bad`/`first_mistake`, None for a critique), `turn` (-1 for a
  whole episode), `turns` (the turns the label covers), `stage` ("" unless a
  stage rating), `reward` (the turn's reward, or the episode's return),
  `success`, `source`, `annotator`, `label_id`, `created_at`, `run`,
  `episode` (`FILE#INDEX`), `env_id`, `seed`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from longhorizon.store.feedback import FEEDBACK_DB, FeedbackStore, Label, episode_stages, latest
from longhorizon.types import Trajectory

Loader = Callable[[str, str, int], Trajectory]
MESSAGE = {"role": "string", "content": "string"}


def messages(traj: Trajectory, turns: list[int] | None = None) -> list[dict[str, str]]:
    """The episode after its first observation (or only `turns`): action, reply, action, ..., ending on an action."""
    chosen = list(range(len(traj.turns)) if turns is None else turns)
    out: list[dict[str, str]] = []
    for k, t in enumerate(chosen):
        out.append({"role": "assistant", "content": traj.turns[t].action})
        if k + 1 < len(chosen):  # the env's reply to t, unless t is the last action shown
            out.append({"role": str(traj.turns[t].info.get("role", "user")), "content": traj.turns[t + 1].observation})
    return out


def prefix(traj: Trajectory, turn: int) -> list[dict[str, str]]:
    """What the agent had seen before acting at `turn`: first observation, then earlier actions and replies."""
    first = [{"role": "user", "content": traj.turns[0].observation}] if traj.turns else []
    return first + messages(traj, list(range(turn))) + ([{"role": str(traj.turns[turn - 1].info.get("role", "user")),
                                                          "content": traj.turns[turn].observation}] if turn else [])


def episode_id(source: str, index: int) -> str:
    return f"{source}#{index}"


def preference_row(label: Label, load: Loader) -> dict[str, Any] | None:
    if label.value == "tie":
        return None
    ck, rk = (label.episode_key, label.other_key) if label.value == "a" else (label.other_key, label.episode_key)
    chosen, rejected = load(*ck), load(*rk)
    return {"prompt": prefix(chosen, 0), "chosen": messages(chosen), "rejected": messages(rejected),
            **_common(label), "note": label.text or "", "env_id": chosen.env_id, "seed": chosen.seed,
            "horizon": chosen.horizon, "chosen_run": ck[0], "chosen_episode": episode_id(ck[1], ck[2]),
            "rejected_run": rk[0], "rejected_episode": episode_id(rk[1], rk[2]),
            "chosen_return": chosen.total_reward, "rejected_return": rejected.total_reward}


def _common(label: Label) -> dict[str, Any]:
    return {"source": label.source_kind, "annotator": label.annotator, "label_id": label.label_id,
            "created_at": label.created_at}


def critique_row(label: Label, load: Loader) -> dict[str, Any]:
    traj = load(*label.episode_key)
    turns = label.turns if label.kind == "stage_rating" else ([label.turn] if label.turn is not None else None)
    start = turns[0] if turns else 0
    reward = sum(traj.turns[t].reward for t in turns) if turns else traj.total_reward
    return {"prompt": prefix(traj, start), "completion": messages(traj, turns), "kind": label.kind,
            "critique": label.text or "", "rating": label.value or "",
            "label": None if label.value is None else label.value == "good", "turn": -1 if label.turn is None else label.turn,
            "turns": turns if turns is not None else list(range(len(traj.turns))), "stage": label.stage or "",
            "reward": float(reward), "success": traj.success, **_common(label), "run": label.run,
            "episode": episode_id(label.source, label.episode), "env_id": traj.env_id, "seed": traj.seed}


def features(kind: str) -> Any:
    from datasets import Features, List, Value

    msgs = List({"role": Value("string"), "content": Value("string")})
    common = {"source": Value("string"), "annotator": Value("string"), "label_id": Value("string"),
              "created_at": Value("string"), "env_id": Value("string"), "seed": Value("int64")}
    if kind == "preferences":
        return Features({"prompt": msgs, "chosen": msgs, "rejected": msgs, **common, "note": Value("string"),
                         "horizon": Value("int64"), "chosen_run": Value("string"), "chosen_episode": Value("string"),
                         "rejected_run": Value("string"), "rejected_episode": Value("string"),
                         "chosen_return": Value("float64"), "rejected_return": Value("float64")})
    return Features({"prompt": msgs, "completion": msgs, "kind": Value("string"), "critique": Value("string"),
                     "rating": Value("string"), "label": Value("bool"), "turn": Value("int64"),
                     "turns": List(Value("int64")), "stage": Value("string"), "reward": Value("float64"),
                     "success": Value("bool"), **common, "run": Value("string"), "episode": Value("string")})


def export_rows(labels: list[Label], load: Loader) -> dict[str, list[dict[str, Any]]]:
    """{"preferences": rows, "critiques": rows} from stored labels (module docstring)."""
    kept = latest(labels)
    prefs = [row for label in kept if label.kind == "preference" and (row := preference_row(label, load))]
    crits = [critique_row(label, load) for label in kept if label.kind != "preference"]
    return {"preferences": prefs, "critiques": crits}


def export_feedback(runs_dir: str | Path, out: str | Path) -> dict[str, int]:
    """Write OUT/preferences and OUT/critiques; return the row counts."""
    from datasets import Dataset, disable_progress_bars

    from longhorizon.ui.catalog import Catalog

    disable_progress_bars()
    catalog = Catalog(runs_dir)
    labels = FeedbackStore(Path(runs_dir) / FEEDBACK_DB).labels()
    rows = export_rows(labels, lambda run, source, index: catalog.episode(run, source, index)[2])
    for name, table in rows.items():
        feats = features(name)
        columns = {key: [row[key] for row in table] for key in feats}  # from_list cannot build an empty table
        # one shard: labels are small, and datasets cannot load an empty table saved in 0 shards
        Dataset.from_dict(columns, features=feats).save_to_disk(str(Path(out) / name), num_shards=1)
    return {name: len(table) for name, table in rows.items()}
