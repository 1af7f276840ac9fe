"""With accounts, every route needs a signed-in session except the sign-in page's own: deny by default.

Gradio checks sign-in route by route (`Depends(login_check)`), and some routes go without it: `/cancel`,
`/reset`, `/stream/{event_id}` and `/heartbeat/{session}` answer anyone who can reach a shared link, and a
Gradio upgrade may add more. `SignedInOnly` (an ASGI middleware in front of every route) answers 401 to a
request that is not signed in, unless it asks for what the sign-in page itself loads (the page at `/`, its
scripts, styles, fonts and icons) or signs in or out. Measured in Chromium: a signed-out browser fetches
nothing else before its sign-in succeeds.

Gradio's monitoring dashboard (`/monitoring...`: per-function call counts and timings of every user) is
the owner's: other roles get 403.

No Gradio here: the launcher hands the middleware to Gradio; who is signed in is read from Gradio's token
table on the request's app (`sessions.signed_in_user`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from studio.sharing.accounts import role_allows
from studio.sharing.responses import send_error
from studio.sharing.sessions import signed_in_user

# What a signed-out browser may fetch: the sign-in page and what it loads, sign-in and sign-out; and
# Gradio's launch handshake (`launch()` calls /startup-events once, signed out; later calls do nothing).
OPEN_PATHS = frozenset({"/", "/login", "/login/", "/logout", "/logout/", "/theme.css", "/favicon.ico",
                        "/manifest.json", "/robots.txt", "/gradio_api/theme.css",
                        "/gradio_api/startup-events"})
OPEN_PREFIXES = ("/assets/", "/static/", "/pwa_icon", "/svelte/")
OWNER_PREFIXES = ("/monitoring",)


def route_path(scope: dict[str, Any]) -> str:
    """The request's path inside the app (without the root path a proxy mounts it under)."""
    path = scope.get("path") or "/"
    root = (scope.get("root_path") or "").rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root):] or "/"
    return path


def open_to_anyone(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def owner_only(path: str) -> bool:
    return path.startswith(OWNER_PREFIXES)


class SignedInOnly:
    """ASGI middleware: 401 for a signed-out request outside the sign-in page, 403 for a non-owner's request
    to the monitoring dashboard. `role_of(name)` is the accounts' role lookup (None: no such user)."""

    def __init__(self, app: Callable[..., Awaitable[None]],
                 role_of: Callable[[str | None], str | None]) -> None:
        self.app = app
        self.role_of = role_of

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if open_to_anyone(path):
            await self.app(scope, receive, send)
            return
        user = signed_in_user(scope)
        role = self.role_of(user) if user is not None else None
        if role is None:
            # A removed user's token is ended elsewhere (`sessions.end_sessions`); till then it opens nothing.
            await self._refuse(scope, send, 401, "Not authenticated: sign in first (open the app's page).")
            return
        if owner_only(path) and not role_allows(role, "owner"):
            await self._refuse(scope, send, 403,
                               f"Gradio's monitoring is the owner's: you are signed in as {user!r} ({role}).")
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: dict[str, Any], send: Callable, status: int, detail: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send_error(send, status, detail)
