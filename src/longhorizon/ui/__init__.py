"""`longhorizon view RUNS_DIR`: a local web app to browse runs and episodes and to label them.

Why FastAPI with server-rendered Jinja2 pages, and no front-end build:
- nothing to build or install beyond Python packages (no npm, no bundler, no
  generated assets to keep in sync with the code); the pages are plain HTML
  forms, so they work, and are tested, with any browser;
- Jinja2 runs with `autoescape=True` (and no `|safe` anywhere), so every piece
  of run content (model outputs, observations, tool results: untrusted text)
  is escaped by default; a template has to opt out to emit HTML, and none does;
- the pages need no JavaScript at all, so the Content-Security-Policy forbids
  every script (`default-src 'none'`): a rendering slip still runs nothing;
- FastAPI gives the JSON API (the simulated annotator, the load test) and
  TestClient for the unit tests with the same routes as the pages.

Modules: `catalog` (what the runs directory holds), `render` (an episode as
page data: turns, token heat map), `auth` (the token), `app` (the app
factory), `routes` (pages, forms, API), `shadow` (the simulated annotator).
Labels live in `longhorizon.store.feedback` (SQLite in the runs directory);
`longhorizon.store.feedback_export` turns them into `datasets`.
"""

from __future__ import annotations

from pathlib import Path


def serve(runs_dir: str | Path, token: str, host: str = "127.0.0.1", port: int = 8765, open_reads: bool = False,
          log_level: str = "warning") -> None:
    """Run the viewer with uvicorn until interrupted."""
    import uvicorn

    from longhorizon.ui.app import make_app

    uvicorn.run(make_app(runs_dir, token, open_reads=open_reads, host=host), host=host, port=port,
                log_level=log_level, access_log=False)
