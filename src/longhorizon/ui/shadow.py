"""The simulated annotator (NExT-Search's "shadow user", methods-2.md §8): rule-based labels through the HTTP API.

    longhorizon feedback shadow-user --url http://127.0.0.1:8765 --token TOKEN [--run eval-demo]

It reads episodes with the JSON API and writes every label with
`POST /api/labels` and the token, exactly as a person's browser does, so the
feedback loop can be tested and run with nobody at the keyboard. Its labels
carry `source_kind="verifier"` (its rules read the env's rewards, as the
preference records' verifier source does) and the annotator name
`shadow-user`.

Rules (ours; the paper has no algorithm):
- preference: within a run, the episodes of each task (env, seed, horizon)
  are paired in order (1st with 2nd, 3rd with 4th, ...); the higher return is
  preferred, equal returns are a tie;
- turn ratings: in an episode that did not succeed, `good` for a turn whose
  reward is the episode's maximum; the first turn whose reward is below the
  maximum is the `first_mistake`, later ones `bad`; when every turn has the
  same reward, nothing is rated (no turn stands out). Every turn of a
  successful episode is `good` (its low-reward turns are steps toward a
  sparse final reward, not mistakes);
- an episode critique naming the return, the outcome and the first drop;
- stage ratings (multi-stage episodes): a stage is `good` when all its turns
  are rated `good`, else `bad`.
Label ids are a UUID5 of the label's target, so running it again adds nothing.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any, Protocol

from longhorizon.ui.auth import TOKEN_HEADER

ANNOTATOR = "shadow-user"
NAMESPACE = uuid.UUID("6f1d6c1e-31b7-4f0e-9a55-2f4c1f0b7a10")


class Client(Protocol):
    """An HTTP client with a base URL: httpx's Client or FastAPI's TestClient."""

    def get(self, url: str, **kwargs: Any) -> Any: ...

    def post(self, url: str, **kwargs: Any) -> Any: ...


def label_id(*parts: Any) -> str:
    return uuid.uuid5(NAMESPACE, "|".join(str(p) for p in (ANNOTATOR, *parts))).hex


def turn_ratings(rewards: list[float], success: bool | None) -> list[str | None]:
    """One rating per turn by the rules above (None: not rated)."""
    if not rewards:
        return []
    top = max(rewards)
    if success:
        return ["good"] * len(rewards)
    if min(rewards) == top:
        return [None] * len(rewards)
    first = next(t for t, r in enumerate(rewards) if r < top)
    return ["good" if r == top else ("first_mistake" if t == first else "bad") for t, r in enumerate(rewards)]


def critique(episode: dict[str, Any]) -> str:
    rewards = [turn["reward"] for turn in episode["turns"]]
    ratings = turn_ratings(rewards, episode["success"])
    text = f"Return {sum(rewards):.3g} over {len(rewards)} turns; success: {episode['success']}."
    if "first_mistake" in ratings:
        t = ratings.index("first_mistake")
        text += f" The first reward drop is at turn {t} ({rewards[t]:.3g} < {max(rewards):.3g})."
    return text


def pairs(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Consecutive episodes of the same task, paired in listing order."""
    by_task: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_task[(row["env_id"], row["seed"], row["horizon"])].append(row)
    return [(group[i], group[i + 1]) for group in by_task.values() for i in range(0, len(group) - 1, 2)]


def ids(row: dict[str, Any]) -> dict[str, Any]:
    return {"run": row["run"], "source": row["source"], "episode": row["episode"]}


def preference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    ra, rb = a["total_reward"], b["total_reward"]
    value = "a" if ra > rb else "b" if rb > ra else "tie"
    return {"kind": "preference", **ids(a), "other_run": b["run"], "other_source": b["source"],
            "other_episode": b["episode"], "value": value, "text": f"return {ra:.3g} vs {rb:.3g}",
            "label_id": label_id("preference", *ids(a).values(), *ids(b).values())}


def episode_labels(row: dict[str, Any], episode: dict[str, Any]) -> list[dict[str, Any]]:
    """Turn ratings, a critique and stage ratings for one episode."""
    ratings = turn_ratings([turn["reward"] for turn in episode["turns"]], episode["success"])
    key = tuple(ids(row).values())
    out = [{"kind": "turn_rating", **ids(row), "turn": t, "value": value, "label_id": label_id("turn", *key, t)}
           for t, value in enumerate(ratings) if value]
    out.append({"kind": "critique", **ids(row), "text": critique(episode), "label_id": label_id("critique", *key)})
    for stage, turns in episode["stages"].items():
        good = all(ratings[t] == "good" for t in turns)
        out.append({"kind": "stage_rating", **ids(row), "stage": stage, "turns": turns, "value": "good" if good else "bad",
                    "label_id": label_id("stage", *key, stage)})
    return out


def run_shadow_user(client: Client, token: str, runs: list[str] | None = None, max_episodes: int | None = None) -> dict[str, int]:
    """Label the runs (all by default) through the API; counts of labels created and already stored."""
    headers = {TOKEN_HEADER: token}
    names = runs or [run["name"] for run in _json(client.get("/api/runs", headers=headers))]
    counts = {"created": 0, "already_stored": 0}
    for name in names:
        rows = _json(client.get("/api/episodes", params={"run": name}, headers=headers))[:max_episodes]
        labels = [preference(a, b) for a, b in pairs(rows)]
        for row in rows:
            episode = _json(client.get("/api/episode", params={"run": name, "src": row["source"], "i": row["episode"]},
                                       headers=headers))
            labels += episode_labels(row, episode)
        for label in labels:
            _post(client, headers, {**label, "annotator": ANNOTATOR, "source_kind": "verifier"}, counts)
    return counts


def _post(client: Client, headers: dict[str, str], label: dict[str, Any], counts: dict[str, int]) -> None:
    response = client.post("/api/labels", json=label, headers=headers)
    if response.status_code not in (200, 201):
        raise RuntimeError(f"the server refused label {label['label_id']}: {response.status_code} {response.text}")
    counts["created" if response.status_code == 201 else "already_stored"] += 1


def _json(response: Any) -> Any:
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return response.json()
