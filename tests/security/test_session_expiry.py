"""A sign-in nobody uses ends: Gradio keeps its session tokens until the server stops, so a session left
open on a shared computer, or a copied cookie, would otherwise work for weeks (`studio.sharing.sessions`)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from browser import Browser
from conftest import USERS

from studio.sharing.sessions import SessionExpiry

IDLE_S = 2.0  # this module's studio ends sessions unused for 2 s (12 hours by default)


@pytest.fixture(scope="module", autouse=True)
def short_sessions():
    # autouse: set before the module's studio starts (its middleware reads the default when built)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("studio.sharing.sessions.SESSION_IDLE_S", IDLE_S)
        yield


def test_an_idle_session_ends_and_a_busy_one_does_not(studio):
    idle = Browser(studio["url"], "vic", USERS["vic"][1])
    busy = Browser(studio["url"], "lena", USERS["lena"][1])
    try:
        assert idle.http.get("/config").status_code == 200
        start = time.monotonic()
        while time.monotonic() - start < IDLE_S + 1.0:
            assert busy.http.get("/config").status_code == 200  # used every half second: stays
            time.sleep(0.5)
        assert idle.http.get("/config").status_code == 401  # Gradio asks it to sign in again
        assert "vic" not in studio["app"].server_app.tokens.values()
        signed_in = idle.http.post("/login", data={"username": "vic", "password": USERS["vic"][1]})
        assert signed_in.status_code == 200
        assert idle.http.get("/config").status_code == 200
    finally:
        idle.close()
        busy.close()


async def _app_behind(scope, receive, send) -> None:
    """What the middleware passes requests on to (Gradio, in the app)."""


def _request(app, token: str | None) -> dict:
    cookie = [(b"cookie", f"access-token-c={token}".encode())] if token else []
    return {"type": "http", "app": app, "headers": cookie}


def test_tokens_nobody_presents_are_swept_too():
    now = [0.0]
    app = SimpleNamespace(tokens={"t-lena": "lena", "t-vic": "vic"}, cookie_id="c")
    expiry = SessionExpiry(_app_behind, idle_s=100.0, clock=lambda: now[0])

    seen = []
    for t in (0.0, 70.0, 150.0, 230.0):  # lena's browser keeps asking; vic's never comes back
        now[0] = t
        asyncio.run(expiry(_request(app, "t-lena"), None, None))
        seen.append(set(app.tokens.values()))
    # vic's token is first noticed by the sweep at 70 s and dropped by the first sweep 100 s later (230 s)
    assert seen == [{"lena", "vic"}, {"lena", "vic"}, {"lena", "vic"}, {"lena"}]
    assert set(expiry.last_used) == {"t-lena"}


def test_a_busy_session_still_ends_after_the_longest_lifetime():
    now = [0.0]
    app = SimpleNamespace(tokens={"t-lena": "lena"}, cookie_id="c")
    expiry = SessionExpiry(_app_behind, idle_s=100.0, max_s=1000.0, clock=lambda: now[0])
    for t in range(0, 1001, 50):  # used every 50 s, never idle
        now[0] = float(t)
        asyncio.run(expiry(_request(app, "t-lena"), None, None))
    assert app.tokens == {"t-lena": "lena"}  # 1000 s: not yet over the lifetime
    now[0] = 1050.0
    asyncio.run(expiry(_request(app, "t-lena"), None, None))
    assert app.tokens == {} and not expiry.first_seen and not expiry.last_used
