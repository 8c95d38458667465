"""The viewer's routes: HTML pages (browse, label) and a small JSON API (read, write labels).

Pages: `/` runs, `/run` episodes of a run (filters), `/episode` one episode
turn by turn, `/pair` two episodes of one task side by side, `/login`.
API: `GET /api/runs`, `/api/episodes`, `/api/episode`, `/api/labels`;
`POST /api/labels` (JSON `Label`, header token; 201 new, 200 a retry of a
stored label, 409 an id re-used for another label, 401 no or wrong token,
404 an unknown run/episode/turn, 422 a malformed label). The pages' forms
post to `/labels/form` with the token as a form field and are redirected
back (303) to the page they came from.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.middleware.trustedhost import TrustedHostMiddleware

from longhorizon.store.feedback import FEEDBACK_DB, FeedbackStore
from longhorizon.ui import auth
from longhorizon.ui.catalog import Catalog, NotFound
from longhorizon.ui.render import episode_id

HERE = Path(__file__).parent
PAGE_SIZE = 200
SECURITY_HEADERS = {
    # No script at all, styles only from our own file: even a rendering bug cannot run a model's output.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass
class Settings:
    token: str
    open_reads: bool


def make_app(runs_dir: str | Path, token: str, *, open_reads: bool = False, host: str = "127.0.0.1") -> FastAPI:
    """The viewer for one runs directory; labels go to RUNS_DIR/feedback.sqlite."""
    app = FastAPI(title="longhorizon view", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = Settings(token=token, open_reads=open_reads)
    app.state.catalog = Catalog(runs_dir)
    app.state.store = FeedbackStore(Path(runs_dir) / FEEDBACK_DB)
    app.state.templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                             undefined=jinja2.StrictUndefined)
    app.state.templates.globals.update(href=href, episode_id=episode_id, fmt=fmt)
    app.middleware("http")(guard)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=auth.allowed_hosts(host))  # added last: runs first
    add_routes(app)
    return app


async def guard(request: Request, call_next: Any) -> Response:
    """Security headers on every answer; `?token=` becomes a cookie; reads need the token unless open."""
    reading = request.method != "POST"  # GET, HEAD (and anything else, which the router refuses anyway)
    if reading and auth.same(request.query_params.get("token"), request.app.state.settings.token):
        response: Response = RedirectResponse(href(request.url.path, **{k: v for k, v in request.query_params.items()
                                                                         if k != "token"}), status_code=303)
        response.set_cookie(auth.TOKEN_COOKIE, request.query_params["token"], httponly=True, samesite="strict")
    elif reading and request.url.path not in ("/login", "/static/app.css") and not auth.can_read(request):
        response = unauthorized(request)
    else:
        response = await call_next(request)
    response.headers.update(SECURITY_HEADERS)
    return response


def unauthorized(request: Request) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": "this server needs its token (header X-Longhorizon-Token)"}, status_code=401)
    return RedirectResponse(href("/login", next=local_path(str(request.url.path) + _query(request))), status_code=303)


def _query(request: Request) -> str:
    return "?" + request.url.query if request.url.query else ""


def href(path: str, **params: Any) -> str:
    """A local URL with its query string (None values left out)."""
    query = urlencode({k: v for k, v in params.items() if v is not None and v != ""})
    return f"{path}?{query}" if query else path


def local_path(target: str | None) -> str:
    """A redirect target that stays on this server (no scheme, host, or protocol-relative `//`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def fmt(x: Any) -> str:
    """Numbers for display: 3 significant digits; None as an em dash."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.3g}" if math.isfinite(x) else str(x)
    return str(x)


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    template = request.app.state.templates.get_template(name)
    context.update(request=request, token=request.app.state.settings.token if auth.has_token(request) else None,
                   annotator=request.cookies.get(auth.ANNOTATOR_COOKIE, ""), new_id=lambda: uuid.uuid4().hex)
    return HTMLResponse(template.render(**context), status_code=status)


def add_routes(app: FastAPI) -> None:
    from longhorizon.ui import routes

    for method, path, fn in routes.ROUTES:
        app.add_api_route(path, fn, methods=[method], include_in_schema=False)
    app.add_exception_handler(NotFound, lambda request, err: not_found(request, err))


def not_found(request: Request, err: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": str(err)}, status_code=404)
    return page(request, "error.html", status=404, message=str(err))
