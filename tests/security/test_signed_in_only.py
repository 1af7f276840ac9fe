"""With accounts, nothing but the sign-in page answers a request that is not signed in, on every route the
app has (Gradio leaves some without its own check: /cancel, /reset, /stream, /heartbeat), and Gradio's
monitoring dashboard is the owner's (`studio.sharing.signed_in_only`). Over HTTP, as a browser or script."""

from __future__ import annotations

import asyncio
import copy
import re

import httpx
import pytest
from browser import Browser
from conftest import USERS

from studio.sharing.signed_in_only import SignedInOnly, open_to_anyone, route_path

# Gradio routes that have no sign-in check of their own (Gradio 6): the reason for the middleware.
UNCHECKED_BY_GRADIO = [("POST", "/gradio_api/cancel"), ("POST", "/gradio_api/reset"),
                       ("POST", "/gradio_api/stream/abc"), ("POST", "/gradio_api/stream/abc/close"),
                       ("GET", "/gradio_api/heartbeat/abc"), ("GET", "/monitoring/abc")]


def _route_requests(app) -> list[tuple[str, str]]:
    """(method, path) for every route of the running app, path parameters filled in."""
    requests = []
    routes = list(app.server_app.routes)
    while routes:
        route = routes.pop()
        included = getattr(route, "original_router", None)  # FastAPI's lazily included router (/gradio_api)
        if included is not None:
            routes += [_with_prefix(r, included.prefix) for r in included.routes]
            continue
        path = getattr(route, "path", None)
        if not path:
            continue
        methods = sorted(getattr(route, "methods", None) or {"GET"})
        filled = re.sub(r"\{[^}]+\}", "x", path)
        requests.append(("POST" if "POST" in methods else methods[0], filled))
    return sorted(set(requests))


def _with_prefix(route, prefix: str):
    path = getattr(route, "path", "")
    if prefix and path and not path.startswith(prefix + "/") and path != prefix:
        route = copy.copy(route)
        route.path = prefix + path
    return route


def _status(http: httpx.Client, method: str, path: str) -> int:
    """The status of one request, without reading the body (some routes answer with an endless stream)."""
    body = {"event_id": "abc", "session_hash": "abc"} if method == "POST" else None
    with http.stream(method, path, json=body) as response:
        return response.status_code


@pytest.fixture
def anonymous(studio):
    with httpx.Client(base_url=studio["url"].rstrip("/"), timeout=30) as http:
        yield http


def test_every_route_but_the_sign_in_page_refuses_a_request_not_signed_in(studio, anonymous):
    routes = _route_requests(studio["app"])
    assert len(routes) > 40 and ("POST", "/gradio_api/queue/join") in routes  # the whole table
    answered = {}
    for method, path in routes + UNCHECKED_BY_GRADIO:
        if open_to_anyone(path):
            continue
        status = _status(anonymous, method, path)
        if status != 401:
            answered[f"{method} {path}"] = status
    assert answered == {}


@pytest.mark.parametrize("method, path", UNCHECKED_BY_GRADIO)
def test_routes_gradio_leaves_open_need_a_sign_in(anonymous, method, path):
    assert _status(anonymous, method, path) == 401
    assert "sign in" in anonymous.request(method, path, json={"event_id": "abc"}).json()["detail"]


def test_the_sign_in_page_and_what_it_loads_still_open(studio, anonymous):
    page = anonymous.get("/")
    assert page.status_code == 200
    scripts = re.findall(r'(?:src|href)="[^"]*?(/assets/[^"]+)"', page.text)
    assert scripts, "the page names its scripts"
    assert anonymous.get(scripts[0]).status_code == 200
    assert anonymous.get("/theme.css").status_code == 200
    signed_in = Browser(studio["url"], "vic", USERS["vic"][1])  # /login answers (asserted inside)
    signed_in.close()


def test_a_signed_in_user_reaches_the_app_and_only_the_owner_the_monitoring(studio):
    viewer = Browser(studio["url"], "vic", USERS["vic"][1])
    owner = Browser(studio["url"], "olga", USERS["olga"][1])
    try:
        assert viewer.http.get("/config").status_code == 200
        assert _status(viewer.http, "POST", "/gradio_api/reset") != 401
        refused = viewer.http.get("/monitoring/summary")
        assert refused.status_code == 403 and "owner" in refused.json()["detail"]
        assert owner.http.get("/monitoring/summary").status_code not in (401, 403)
    finally:
        viewer.close()
        owner.close()


def test_a_token_whose_user_left_the_accounts_opens_nothing():
    async def app(scope, receive, send):
        raise AssertionError("should not be reached")

    sent = []

    async def send(message):
        sent.append(message)

    class FakeApp:
        def __init__(self) -> None:
            self.tokens = {"t0k3n": "gone"}
            self.cookie_id = "c1"

    guard = SignedInOnly(app, role_of=lambda name: None)  # "gone" is no longer in the accounts
    scope = {"type": "http", "path": "/gradio_api/queue/join", "app": FakeApp(),
             "headers": [(b"cookie", b"access-token-c1=t0k3n")]}
    asyncio.run(guard(scope, None, send))
    assert sent[0]["status"] == 401


def test_paths_under_a_proxys_root_path_are_matched_inside_the_app():
    assert route_path({"path": "/studio/assets/x.js", "root_path": "/studio"}) == "/assets/x.js"
    assert route_path({"path": "/studio", "root_path": "/studio/"}) == "/"
    assert route_path({"path": "/gradio_api/reset", "root_path": ""}) == "/gradio_api/reset"
    assert not open_to_anyone(route_path({"path": "/studio/gradio_api/reset", "root_path": "/studio"}))
