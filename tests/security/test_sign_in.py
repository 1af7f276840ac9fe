"""Sign-in over HTTP, as a browser posts it: guesses are throttled per address and per name, and the
password check does not run on the server's event loop (a flood of guesses would stall every user)."""

from __future__ import annotations

import inspect

import httpx
import pytest
from conftest import USERS

from studio.sharing.login_guard import PER_CLIENT_FAILURES, PER_USER_FAILURES, WINDOW_S, FailureWindow
from studio.ui.launcher import launch_kwargs, parse_args


def _sign_in(url: str, user: str, password: str, address: str | None = None) -> httpx.Response:
    # The test server listens on loopback, where the last X-Forwarded-For entry names the client (as
    # Gradio's share tunnel writes it): one header per simulated address.
    headers = {"X-Forwarded-For": f"198.51.100.99, {address}"} if address else {}
    with httpx.Client(base_url=url.rstrip("/"), timeout=60) as http:
        return http.post("/login", data={"username": user, "password": password}, headers=headers)


def test_guesses_from_one_address_are_throttled(studio):
    url, (_, password) = studio["url"], USERS["olga"]
    for _ in range(PER_CLIENT_FAILURES):
        assert _sign_in(url, "olga", "wrong", "203.0.113.1").status_code == 400
    refused = _sign_in(url, "olga", password, "203.0.113.1")  # even the right password, for a while
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= WINDOW_S
    assert "try again in" in refused.json()["detail"]
    assert _sign_in(url, "olga", password, "203.0.113.2").status_code == 200  # others still sign in
    # A client cannot shed its count by writing its own X-Forwarded-For: only the proxy's last entry counts
    assert _sign_in(url, "olga", password, "203.0.113.1").status_code == 429


def test_a_burst_of_parallel_guesses_is_held_to_the_limit(studio):
    import concurrent.futures

    url = studio["url"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: _sign_in(url, "lena", "wrong", "203.0.113.3").status_code, range(16)))
    assert codes.count(400) <= PER_CLIENT_FAILURES and codes.count(429) >= 16 - PER_CLIENT_FAILURES


def test_a_name_guessed_from_many_addresses_is_refused_but_not_where_its_user_signs_in(studio):
    url, (_, password) = studio["url"], USERS["vic"]
    assert _sign_in(url, "vic", password, "198.18.250.1").status_code == 200  # vic's own place
    for number in range(PER_USER_FAILURES):
        assert _sign_in(url, "vic", "wrong", f"198.18.{number}.1").status_code == 400
    assert _sign_in(url, "vic", password, "198.18.200.1").status_code == 400  # not even checked now
    assert _sign_in(url, "lena", USERS["lena"][1], "198.18.201.1").status_code == 200  # other names work
    # a stranger's guesses cannot lock vic out where vic signed in before (that place's own limit holds)
    assert _sign_in(url, "vic", password, "198.18.250.1").status_code == 200
    assert _sign_in(url, "vic", "wrong", "198.18.250.1").status_code == 400


def test_the_password_check_is_awaited_not_run_on_the_event_loop(tmp_path):
    users = tmp_path / "users.toml"
    users.write_text('[[user]]\nname = "olga"\npassword = "pw"\nrole = "owner"\n')
    kwargs = launch_kwargs(parse_args(["--workspace", str(tmp_path / "w"), "--users", str(users)]))
    assert inspect.iscoroutinefunction(kwargs["auth"])  # Gradio awaits it; the check runs in a thread
    assert kwargs["app_kwargs"]["middleware"]  # the per-address throttle sits in front of /login
    assert launch_kwargs(parse_args(["--workspace", str(tmp_path / "w")]))["auth"] is None  # no accounts


@pytest.mark.parametrize("limit", [1, 3])
def test_failures_leave_the_window_and_memory_stays_bounded(limit, monkeypatch):
    now = [0.0]
    window = FailureWindow(limit, 60.0, clock=lambda: now[0])
    for _ in range(limit):
        assert window.retry_after("a") == 0
        window.failed("a")
    assert window.retry_after("a") == pytest.approx(60.0)
    now[0] = 45.0
    assert window.retry_after("a") == pytest.approx(15.0)
    now[0] = 60.0
    assert window.retry_after("a") == 0
    window.failed("b")
    window.clear("b")
    assert window.retry_after("b") == 0
    monkeypatch.setattr("studio.sharing.windows.MAX_TRACKED", 5)
    for number in range(20):
        window.failed(f"k{number}")
    assert window.tracked() <= 5
