"""Sign-in that an attacker can neither brute-force nor use to stall the server.

Gradio calls its `auth=` function inside its async `/login` handler: a synchronous check (scrypt, ~90 ms)
would hold the whole server for every guess, and nothing limits the guesses. `LoginGuard` fixes both:

- `authenticate` is a coroutine (Gradio awaits it) that runs the password check in a worker thread, at
  most `MAX_CONCURRENT_CHECKS` at a time, so the server goes on answering while guesses are checked;
- failed sign-ins are counted per client address (`LoginThrottle`, an ASGI middleware in front of
  `/login`; an attempt counts from its start, so parallel guesses are held too) and per user name. Over
  `per_client` failures within `window_s` from one address, that address gets 429 (with Retry-After)
  until its oldest failure leaves the window; over `per_user` failures of one name from anywhere (a
  spread-out guess at one account), that name is refused without a check for the same time, except
  from an address that signed in as that name before (`KNOWN_PLACES_PER_USER` kept per name): a stranger's
  wrong guesses cannot lock the owner out of their own machine. A successful sign-in clears its address's
  count.

The client address is the peer's; behind a proxy on this machine (Gradio's share tunnel) it is the last
X-Forwarded-For entry, the one the proxy itself wrote (earlier entries are whatever the client sent). The
tunnel is an frp http proxy, whose server appends the client's address there (frp's
pkg/util/vhost/http.go: `SetXForwarded` after copying the incoming header).
No Gradio here: the launcher hands these to Gradio.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from studio.sharing.windows import SlidingWindow, too_many_requests

PER_CLIENT_FAILURES = 5  # wrong passwords from one address per window
PER_USER_FAILURES = 20  # wrong passwords for one name, from all addresses together, per window
WINDOW_S = 300.0
MAX_CONCURRENT_CHECKS = 2  # scrypt checks at once (each ~16 MB and ~90 ms of one core)
LOGIN_PATHS = ("/login", "/login/")
KNOWN_PLACES_PER_USER = 8  # addresses remembered per name (the newest), which a name's lock lets through
# The address of the sign-in being handled: `LoginThrottle` sets it, `LoginGuard.authenticate` (which
# Gradio calls with a name and a password only) reads it.
SIGNING_IN_FROM: contextvars.ContextVar[str | None] = contextvars.ContextVar("signing_in_from", default=None)
SIGN_IN_MESSAGE = (f"Sign in. After {PER_CLIENT_FAILURES} wrong passwords, sign-in from this place pauses "
                   f"for up to {WINDOW_S / 60:g} minutes.")


class FailureWindow(SlidingWindow):
    """Failed attempts per key (a client address, a user name): `limit` of them within the window refuse
    the key until the oldest of those leaves it."""

    def failed(self, key: str) -> None:
        self.add(key)


class LoginGuard:
    """Throttled, non-blocking sign-in around a synchronous `check(username, password) -> bool`."""

    def __init__(self, check: Callable[[str, str], bool], *, per_client: int = PER_CLIENT_FAILURES,
                 per_user: int = PER_USER_FAILURES, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.check = check
        self.clients = FailureWindow(per_client, window_s, clock)
        self.users = FailureWindow(per_user, window_s, clock)
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_CHECKS)
        self._known: dict[str, list[str]] = {}  # name -> addresses it signed in from, newest last
        self._known_lock = threading.Lock()

    async def authenticate(self, username: str, password: str) -> bool:
        """Gradio's `auth=` (a coroutine: Gradio awaits it instead of blocking its event loop)."""
        name = str(username or "")
        place = SIGNING_IN_FROM.get()
        if self.users.retry_after(name) and not self.known_place(name, place):
            return False  # this name is under a spread-out guessing attack: no check until the window frees
        ok = await asyncio.to_thread(self._check, name, str(password or ""))
        if not ok:
            self.users.failed(name)
        elif place:
            with self._known_lock:
                places = [p for p in self._known.get(name, []) if p != place] + [place]
                self._known[name] = places[-KNOWN_PLACES_PER_USER:]
        return ok

    def known_place(self, name: str, place: str | None) -> bool:
        """Whether `name` signed in from `place` before (its own per-address limit still applies there)."""
        with self._known_lock:
            return place is not None and place in self._known.get(name, ())

    def _check(self, username: str, password: str) -> bool:
        with self._slots:  # a flood of guesses waits here, in worker threads, not on the event loop
            return bool(self.check(username, password))


def client_address(scope: dict[str, Any]) -> str:
    """The caller's address: the peer, or for a peer on this machine (a local proxy such as Gradio's share
    tunnel) the last X-Forwarded-For entry, which that proxy wrote."""
    peer = (scope.get("client") or ("", 0))[0] or ""
    try:
        local = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        local = False
    if local:
        for name, value in scope.get("headers") or []:
            if name.lower() == b"x-forwarded-for":
                last = value.decode("latin-1").split(",")[-1].strip()
                if last:
                    return last
    return peer


class LoginThrottle:
    """ASGI middleware: refuses sign-ins from an address with too many recent failures (429); every other
    attempt counts as a failure until the sign-in route answers 200, which clears the address's count."""

    def __init__(self, app: Callable[..., Awaitable[None]], guard: LoginGuard) -> None:
        self.app, self.guard = app, guard

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or not str(
            scope.get("path", "")
        ).endswith(LOGIN_PATHS):
            await self.app(scope, receive, send)
            return
        client = client_address(scope)
        wait = self.guard.clients.retry_after(client)
        if wait:
            await too_many_requests(send, wait, "Too many failed sign-ins from this address: try again in "
                                    f"{max(1, math.ceil(wait))} s.")
            return
        # Counted as a failure before it is checked, so a burst of parallel guesses from one address is
        # held to the limit too; a sign-in that succeeds clears the count.
        self.guard.clients.failed(client)
        status: dict[str, int] = {}

        async def watch(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                status["code"] = int(message.get("status", 0))
            await send(message)

        token = SIGNING_IN_FROM.set(client)
        try:
            await self.app(scope, receive, watch)
        finally:
            SIGNING_IN_FROM.reset(token)
        if status.get("code") == 200:
            self.guard.clients.clear(client)
