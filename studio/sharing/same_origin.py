"""Refuse requests that another web site makes through a signed-in user's browser (cross-site request
forgery).

Gradio signs a user in with a cookie marked `SameSite=None`, so the browser attaches it to requests that
any other site's page sends to the studio. And when the studio is not reached as localhost (a share link,
a LAN address), Gradio's CORS answer allows every origin with credentials. Together: a page the owner
opens in another tab could run any callback as the owner (delete classes, train, export) and read the
answers. Browsers say where a request comes from, so `SameOriginOnly` (an ASGI middleware in front of
every route) lets through only what the studio's own page sends:

- `Sec-Fetch-Site` (every current browser sets it): `same-origin` and `none` (typed in the address bar,
  a bookmark) pass. `cross-site` and `same-site` are refused (every share link is a subdomain of the same
  site, so another share link is `same-site`), except a plain top-level navigation (GET of a page: a link
  to the studio from a mail or a chat), which runs nothing and cannot be read by the linking page;
  `/logout` is no such page (it ends the user's sessions), so another site's link to it is refused.
- Older browsers send no `Sec-Fetch-Site` but an `Origin` on cross-site requests: it must name the host
  the request was sent to (`Host`, or `X-Forwarded-Host` behind a proxy that rewrites it).
- Requests with neither header come from programs (`gradio_client`, curl), which hold only the cookies
  their user gave them: they pass, and the sign-in and role checks apply as always.

A studio on this machine alone (loopback, no share link, no accounts) has no sign-in to stop a page whose
own domain an attacker pointed at 127.0.0.1 (DNS rebinding: to the browser that page and the studio are one
origin). With `loopback_only` the middleware also refuses any `Host` that is not a loopback name or
address, as Jupyter does; the studio's page is always opened at one.

No Gradio here: the launcher hands the middleware to Gradio.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from studio.sharing.responses import send_error
from studio.sharing.signed_in_only import route_path

ALLOWED_SITES = {"same-origin", "none"}
# Pages whose GET changes something: another site's link must not run them (Gradio's /logout ends every
# session of the user).
STATE_CHANGING_PAGES = {"/logout"}
FRAME_HEADERS = [(b"x-frame-options", b"SAMEORIGIN"), (b"content-security-policy", b"frame-ancestors 'self'")]
REFUSAL = ("This request came from another web site, not from the studio's own page, so it was refused: "
           "open the studio's address directly in the browser.")
NOT_LOOPBACK = ("This studio runs on this machine only and answers at localhost or 127.0.0.1, not at {host}: "
                "open http://127.0.0.1:{port} (to reach it from elsewhere, start it with --share or --host "
                "and accounts).")


def header(scope: dict[str, Any], name: bytes) -> str | None:
    """The first value of a request header (`name` in lower case), decoded as latin-1."""
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _host_of(value: str) -> str:
    """`host[:port]` in lower case, from a Host header or an origin URL."""
    value = value.strip().lower()
    return urlsplit(value).netloc if "://" in value else value


def is_loopback_host(host: str | None) -> bool:
    """True for a Host header naming this machine: localhost (or *.localhost), 127.x.x.x, ::1."""
    if not host:
        return False
    try:
        name = urlsplit(f"//{host.strip()}").hostname or ""
    except ValueError:  # a malformed Host (bad port, brackets)
        return False
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_cross_site(scope: dict[str, Any]) -> bool:
    """True when a browser sent this request for a page of another origin (see the module docstring)."""
    site = header(scope, b"sec-fetch-site")
    if site is not None:
        if site.strip().lower() in ALLOWED_SITES:
            return False
        top_level_page = (scope.get("method") in ("GET", "HEAD")
                          and header(scope, b"sec-fetch-mode") == "navigate"
                          and header(scope, b"sec-fetch-dest") in (None, "document")
                          and route_path(scope) not in STATE_CHANGING_PAGES)
        return not top_level_page
    origin = header(scope, b"origin")
    if origin is None:
        return False
    if origin.strip().lower() == "null":  # sandboxed frames and local files: never the studio's own page
        return True
    hosts = {_host_of(h) for h in (header(scope, b"host"), header(scope, b"x-forwarded-host")) if h}
    return _host_of(origin) not in hosts


class SameOriginOnly:
    """ASGI middleware: 403 for requests another site's page sent through the user's browser."""

    def __init__(self, app: Callable[..., Awaitable[None]], loopback_only: bool = False) -> None:
        self.app = app
        self.loopback_only = loopback_only

    def refusal(self, scope: dict[str, Any]) -> str | None:
        if self.loopback_only and not is_loopback_host(host := header(scope, b"host")):
            port = (scope.get("server") or (None, "PORT"))[1]
            return NOT_LOOPBACK.format(host=host or "no address", port=port)
        return REFUSAL if is_cross_site(scope) else None

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        message = self.refusal(scope) if scope.get("type") in ("http", "websocket") else None
        if message is None and scope.get("type") == "http":
            await self.app(scope, receive, functools.partial(_no_framing, send=send))
        elif message is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            # a page opened in the browser shows the sentence; the app's own requests get Gradio's JSON shape
            await send_error(send, 403, message, as_text="text/html" in (header(scope, b"accept") or ""))


async def _no_framing(message: dict[str, Any], send: Callable) -> None:
    """Browsers without Sec-Fetch-Dest (the check above) are told not to show the studio's pages inside
    another site's page, where they could be clicked through without the user seeing it."""
    if message["type"] == "http.response.start":
        message.setdefault("headers", [])
        message["headers"] = [*message["headers"], *FRAME_HEADERS]
    await send(message)

