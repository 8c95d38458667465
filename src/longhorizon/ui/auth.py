"""Who may read and write: one secret token, printed at start-up, compared in constant time.

- Writes need the token in the `X-Longhorizon-Token` header (the JSON API, the
  simulated annotator) or in the `token` form field (the pages' forms). A
  cookie alone never authorises a write, so another site cannot forge one
  (and the cookie is `SameSite=Strict` besides).
- Reads need the token too (header, cookie or `?token=`), unless the server
  runs with `--open-reads`. Opening `/?token=...` once stores it in an
  HttpOnly cookie and redirects to the same page without it.
- Pages embed the token in their forms only for a request that already
  carried it, so an open-reads visitor without it sees no token.
- Requests whose Host header is not the address the server listens on are
  refused (`TrustedHostMiddleware`), which stops DNS-rebinding pages from
  reading a loopback server.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request

TOKEN_HEADER = "X-Longhorizon-Token"
TOKEN_COOKIE = "longhorizon_token"
ANNOTATOR_COOKIE = "longhorizon_annotator"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]


def new_token() -> str:
    return secrets.token_urlsafe(24)


def same(given: str | None, token: str) -> bool:
    """Constant-time comparison (hmac.compare_digest on bytes)."""
    return given is not None and hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def read_token(request: Request) -> str | None:
    """The token a read request carries: header, cookie, or query parameter."""
    return (request.headers.get(TOKEN_HEADER) or request.cookies.get(TOKEN_COOKIE)
            or request.query_params.get("token"))


def can_read(request: Request) -> bool:
    settings = request.app.state.settings
    return settings.open_reads or same(read_token(request), settings.token)


def has_token(request: Request) -> bool:
    """The request carries the token (so its page may embed it in forms)."""
    return same(read_token(request), request.app.state.settings.token)


def allowed_hosts(host: str) -> list[str]:
    """Host headers to accept: the loopback names, plus the listening address unless it is a wildcard."""
    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    return sorted(set(LOOPBACK_HOSTS + [host]))
