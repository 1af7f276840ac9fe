"""In a real browser (headless Chromium): the header says who is signed in, and Sign out ends the session on
the server, not only in this browser (a shared computer)."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import USERS

sys.path.insert(0, str(Path(__file__).parents[1] / "ui"))  # browser_env: Chromium and Playwright, or skip
from browser_env import ARGS, CHROMIUM, needs_chromium, sync_api

pytestmark = needs_chromium


def test_the_header_names_the_user_and_sign_out_ends_the_session(studio):
    tokens = studio["app"].server_app.tokens
    with sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 800})
            page.goto(studio["url"])
            page.fill("input[type=text]", "lena")
            page.fill("input[type=password]", USERS["lena"][1])
            page.keyboard.press("Enter")
            page.wait_for_selector("text=Signed in as", timeout=30_000)
            header = page.inner_text("#studio-account")
            assert "lena" in header and "labeler" in header
            assert "lena" in tokens.values()
            page.click("#studio-account >> text=Sign out")
            page.wait_for_selector("input[type=password]", timeout=30_000)  # the sign-in page again
        finally:
            browser.close()
    assert "lena" not in tokens.values()  # every session of lena's ended on the server


def test_without_accounts_the_header_shows_no_account():
    from studio.ui.app import _account_view

    box, _ = _account_view()  # outside a request: the local owner, no sign-in
    assert box["visible"] is False
