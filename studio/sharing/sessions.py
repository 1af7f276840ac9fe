"""Who a request is signed in as, and the end of sign-ins nobody uses.

Gradio signs a user in with a random token in a cookie and keeps the token in its app (`app.tokens`) until
the server stops: a session left open on a shared computer, or a copied cookie, would work for weeks.
`SessionExpiry` (an ASGI middleware in front of every route) drops a token from Gradio's table once it has
not been used for `SESSION_IDLE_S` (12 hours), and any token `SESSION_MAX_S` (7 days) after it was first
seen, however busy; its next request gets Gradio's "sign in" answer. Any request counts as use (a click, a
page load, the app's own polling).

No Gradio here: the launcher hands the middleware to Gradio; the token table is read from the request's app.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from http.cookies import CookieError, SimpleCookie
from typing import Any

SESSION_IDLE_S = 12 * 3600.0
SESSION_MAX_S = 7 * 24 * 3600.0
SWEEP_EVERY_S = 60.0  # how often the whole table is looked through for idle tokens


def session_token(scope: dict[str, Any]) -> tuple[str, str] | None:
    """(token, user) of a request signed in through Gradio's login (its access-token cookie), else None."""
    app = scope.get("app")
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if not tokens or not cookie_id:
        return None
    header = b"; ".join(value for name, value in scope.get("headers") or [] if name.lower() == b"cookie")
    cookies = SimpleCookie()
    try:
        cookies.load(header.decode("latin-1"))
    except (CookieError, ValueError):  # a malformed Cookie header: not signed in as anyone
        return None
    for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
        if name in cookies and cookies[name].value in tokens:
            token = cookies[name].value
            return token, str(tokens[token])
    return None


def end_sessions(tokens: dict[str, str], names: set[str]) -> None:
    """Forget the sign-ins in Gradio's token table (`app.tokens`) of the users `names`: their next request
    asks them to sign in."""
    for token, name in list(tokens.items()):
        if name in names:
            tokens.pop(token, None)


def signed_in_user(scope: dict[str, Any]) -> str | None:
    """The user of a request signed in through Gradio's login, else None."""
    found = session_token(scope)
    return found[1] if found else None


class SessionExpiry:
    """ASGI middleware: Gradio session tokens unused for `idle_s`, or older than `max_s`, are dropped from
    the app's table."""

    def __init__(self, app: Callable[..., Awaitable[None]], idle_s: float | None = None,
                 max_s: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.idle_s = SESSION_IDLE_S if idle_s is None else idle_s
        self.max_s = SESSION_MAX_S if max_s is None else max_s
        self.clock = clock
        self.last_used: dict[str, float] = {}
        self.first_seen: dict[str, float] = {}
        self.swept = clock()

    def ended(self, token: str, now: float) -> bool:
        """True when `token` ran out (idle or too old); a token not seen before starts its clocks now."""
        return (now - self.last_used.setdefault(token, now) > self.idle_s
                or now - self.first_seen.setdefault(token, now) > self.max_s)

    def forget(self, token: str, tokens: dict[str, str]) -> None:
        tokens.pop(token, None)
        self.last_used.pop(token, None)
        self.first_seen.pop(token, None)

    def expire(self, tokens: dict[str, str], now: float) -> None:
        """Drop the tokens that ran out, and the clocks of tokens gone (signed out, or expired)."""
        for token in list(tokens):
            if self.ended(token, now):
                self.forget(token, tokens)
        for token in [t for t in self.last_used if t not in tokens]:
            self.forget(token, tokens)
        self.swept = now

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope.get("type") == "http":
            now = self.clock()
            tokens = getattr(scope.get("app"), "tokens", None)
            found = session_token(scope)
            if found and self.ended(found[0], now):
                self.forget(found[0], tokens)  # this request's own session ran out: Gradio asks it to sign in
            elif found:
                self.last_used[found[0]] = now
            if isinstance(tokens, dict) and now - self.swept >= min(SWEEP_EVERY_S, self.idle_s):
                self.expire(tokens, now)
        await self.app(scope, receive, send)

