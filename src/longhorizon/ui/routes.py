"""Route handlers: pages, forms and the JSON API (see `longhorizon.ui.app` for the list)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from longhorizon.store.feedback import Label, LabelConflict, episode_stages, latest
from longhorizon.ui import auth
from longhorizon.ui.app import HERE, PAGE_SIZE, href, local_path, page
from longhorizon.ui.catalog import Catalog, EpisodeRow, NotFound, task_key
from longhorizon.ui.render import episode_id, replies, turn_views


def catalog(request: Request) -> Catalog:
    return request.app.state.catalog


# ------------------------------------------------------------------- pages
def runs_page(request: Request) -> Response:
    store = request.app.state.store
    runs = catalog(request).runs()
    counts = {run.name: len(store.labels(run=run.name)) for run in runs}
    return page(request, "runs.html", runs=runs, counts=counts, root=str(catalog(request).root))


def run_page(request: Request, run: str) -> Response:
    the_run = catalog(request).run(run)
    rows = catalog(request).episodes(the_run)
    filters = parse_filters(request.query_params)
    shown = [row for row in rows if matches(row, filters)]
    start = max(0, _int(request.query_params.get("start")) or 0)
    envs = sorted({row.traj.env_id for row in rows})
    steps = sorted({row.source.step for row in rows if row.source.step is not None})
    return page(request, "run.html", run=the_run, rows=shown[start:start + PAGE_SIZE], total=len(rows),
                matched=len(shown), start=start, page_size=PAGE_SIZE, filters=filters, envs=envs, steps=steps)


def episode_page(request: Request, run: str, src: str, i: int) -> Response:
    the_run, source, traj = catalog(request).episode(run, src, i)
    tokenizer = catalog(request).tokenizer(the_run)
    labels = request.app.state.store.labels(run=run, source=src, episode=i)
    own = [label for label in labels if label.episode_key == (run, src, i)]
    others = [row for row in catalog(request).same_task(traj) if (row.run, row.source.path, row.index) != (run, src, i)]
    return page(request, "episode.html", run=the_run, source=source, index=i, traj=traj,
                turns=turn_views(traj, tokenizer, own), tokenizer=tokenizer is not None, labels=labels,
                stages=episode_stages(traj), others=others, next=str(request.url.path) + "?" + request.url.query)


def pair_page(request: Request, run: str, src: str, i: int, orun: str | None = None, osrc: str | None = None,
              oi: int | None = None) -> Response:
    a = side_view(request, run, src, i)
    others = [row for row in catalog(request).same_task(a["traj"]) if (row.run, row.source.path, row.index) != (run, src, i)]
    b = side_view(request, orun, osrc, oi) if orun is not None and osrc is not None and oi is not None else None
    labels = [label for label in request.app.state.store.labels(run=run, source=src, episode=i)
              if label.kind == "preference" and b and {label.episode_key, label.other_key} ==
              {(run, src, i), (orun, osrc, oi)}]
    return page(request, "pair.html", sides=[a] + ([b] if b else []), others=others, labels=labels,
                same_task=b is None or task_key(a["traj"]) == task_key(b["traj"]),
                next=str(request.url.path) + "?" + request.url.query)


def side_view(request: Request, run: str, src: str, i: int) -> dict[str, Any]:
    the_run, source, traj = catalog(request).episode(run, src, i)
    return {"run": the_run, "source": source, "index": i, "traj": traj, "replies": replies(traj)}


def login_page(request: Request, next: str = "/") -> Response:
    return page(request, "login.html", next=local_path(next), failed=False)


async def login_submit(request: Request) -> Response:
    form = await request.form()
    target = local_path(str(form.get("next") or "/"))
    if not auth.same(str(form.get("token") or ""), request.app.state.settings.token):
        return page(request, "login.html", status=401, next=target, failed=True)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(auth.TOKEN_COOKIE, str(form["token"]), httponly=True, samesite="strict")
    response.set_cookie(auth.ANNOTATOR_COOKIE, str(form.get("annotator") or "anonymous")[:100], samesite="strict")
    return response


def stylesheet() -> FileResponse:
    return FileResponse(HERE / "static" / "app.css", media_type="text/css")


# ------------------------------------------------------------------- filters
def _int(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def parse_filters(query: Any) -> dict[str, Any]:
    """env, success (yes/no/unknown), min_reward, max_reward, step, split; unparseable values are ignored."""
    return {"env": query.get("env") or None, "success": query.get("success") or None,
            "min_reward": _float(query.get("min_reward")), "max_reward": _float(query.get("max_reward")),
            "step": _int(query.get("step")), "split": query.get("split") or None}


def matches(row: EpisodeRow, f: dict[str, Any]) -> bool:
    reward, success = row.traj.total_reward, row.traj.success
    checks = [
        f["env"] is None or row.traj.env_id == f["env"],
        f["success"] is None or {"yes": success is True, "no": success is False, "unknown": success is None}.get(f["success"], True),
        f["min_reward"] is None or reward >= f["min_reward"],
        f["max_reward"] is None or reward <= f["max_reward"],
        f["step"] is None or row.source.step == f["step"],
        f["split"] is None or row.source.split == f["split"],
    ]
    return all(checks)


# ------------------------------------------------------------------- writes
def check_label(cat: Catalog, label: Label) -> Label:
    """The label, after checking that every id it names exists (and filling a stage's turns); NotFound/ValueError."""
    _, _, traj = cat.episode(label.run, label.source, label.episode)
    if label.turn is not None and label.turn >= len(traj.turns):
        raise NotFound(f"{label.run}/{label.source}#{label.episode} has no turn {label.turn}")
    if label.kind == "preference":
        _, _, other = cat.episode(label.other_run, label.other_source, label.other_episode)
        if label.other_key == label.episode_key:
            raise ValueError("a preference needs two different episodes")
        if task_key(other) != task_key(traj):
            raise ValueError("a preference compares two episodes of the same task (env, seed, horizon)")
    if label.kind == "stage_rating":
        turns = episode_stages(traj).get(label.stage)
        if not turns:
            raise ValueError(f"this episode has no {label.stage} stage")
        if label.turns != turns:
            raise ValueError(f"the {label.stage} stage covers turns {turns}, not {label.turns}")
    return label


def store_label(request: Request, data: dict[str, Any]) -> tuple[int, str]:
    """Validate and store; (HTTP status, message)."""
    try:
        label = check_label(catalog(request), Label(**data))
        created = request.app.state.store.add(label)
    except ValidationError as err:
        first = err.errors()[0]
        return 422, f"{'.'.join(str(p) for p in first['loc']) or 'label'}: {first['msg']}"
    except NotFound as err:
        return 404, str(err)
    except LabelConflict as err:
        return 409, str(err)
    except ValueError as err:
        return 422, str(err)
    return (201, "stored") if created else (200, "already stored")


async def api_add_label(request: Request) -> JSONResponse:
    if not auth.same(request.headers.get(auth.TOKEN_HEADER), request.app.state.settings.token):
        return JSONResponse({"detail": "writes need the token in the X-Longhorizon-Token header"}, status_code=401)
    try:
        data = await request.json()
    except ValueError:
        return JSONResponse({"detail": "the body must be a JSON object"}, status_code=422)
    if not isinstance(data, dict):
        return JSONResponse({"detail": "the body must be a JSON object"}, status_code=422)
    status, message = await run_in_threadpool(store_label, request, data)
    return JSONResponse({"detail": message, "label_id": data.get("label_id")}, status_code=status)


FORM_FIELDS = ("label_id", "kind", "annotator", "run", "source", "episode", "turn", "other_run", "other_source",
               "other_episode", "value", "stage", "text")


async def form_add_label(request: Request) -> Response:
    form = await request.form()
    if not auth.same(str(form.get("token") or request.headers.get(auth.TOKEN_HEADER) or ""),
                     request.app.state.settings.token):
        return page(request, "error.html", status=401, message="Labelling needs the token: log in first.")
    data: dict[str, Any] = {k: str(form[k]) for k in FORM_FIELDS if str(form.get(k) or "").strip()}
    if data.get("kind") == "stage_rating" and "stage" in data:
        data["turns"] = await run_in_threadpool(_stage_turns, request, data)
    status, message = await run_in_threadpool(store_label, request, data)
    if status >= 400:
        return page(request, "error.html", status=status, message=message)
    return RedirectResponse(local_path(str(form.get("next") or "/")), status_code=303)


def _stage_turns(request: Request, data: dict[str, Any]) -> list[int] | None:
    try:
        _, _, traj = catalog(request).episode(data.get("run", ""), data.get("source", ""), int(data.get("episode", "-1")))
    except (NotFound, ValueError):
        return None
    return episode_stages(traj).get(data["stage"])


# ------------------------------------------------------------------- JSON reads
def api_runs(request: Request) -> list[dict[str, Any]]:
    return [{"name": run.name, "kind": run.kind, "sources": [s.path for s in run.sources]} for run in catalog(request).runs()]


def api_episodes(request: Request, run: str) -> list[dict[str, Any]]:
    return [row_json(row) for row in catalog(request).episodes(catalog(request).run(run))]


def row_json(row: EpisodeRow) -> dict[str, Any]:
    t = row.traj
    return {"run": row.run, "source": row.source.path, "episode": row.index, "episode_id": episode_id(row.source.path, row.index),
            "split": row.source.split, "step": row.source.step, "env_id": t.env_id, "seed": t.seed, "horizon": t.horizon,
            "group_id": t.group_id, "success": t.success, "total_reward": t.total_reward, "turns": len(t.turns)}


def api_episode(request: Request, run: str, src: str, i: int) -> dict[str, Any]:
    _, _, traj = catalog(request).episode(run, src, i)
    return {**traj.to_dict(), "stages": episode_stages(traj)}


def api_labels(request: Request, run: str | None = None, src: str | None = None, i: int | None = None,
               only_latest: bool = False) -> list[dict[str, Any]]:
    labels = request.app.state.store.labels(run=run, source=src, episode=i)
    return [label.model_dump() for label in (latest(labels) if only_latest else labels)]


ROUTES = [
    ("GET", "/", runs_page), ("GET", "/run", run_page), ("GET", "/episode", episode_page), ("GET", "/pair", pair_page),
    ("GET", "/login", login_page), ("POST", "/login", login_submit), ("GET", "/static/app.css", stylesheet),
    ("POST", "/labels/form", form_add_label), ("POST", "/api/labels", api_add_label), ("GET", "/api/labels", api_labels),
    ("GET", "/api/runs", api_runs), ("GET", "/api/episodes", api_episodes), ("GET", "/api/episode", api_episode),
]
