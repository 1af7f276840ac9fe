"""In a real browser (headless Chromium): a page of another site tries to relabel an image through the
signed-in owner's session, the attack `studio.sharing.same_origin` stops. The browser profile sends cookies
with cross-site requests, as Chrome does by default outside incognito windows (Playwright's default
contexts are incognito-like and would hide the attack: Gradio's cookie is `SameSite=None`). And a domain
rebound to 127.0.0.1 opens no studio that runs without accounts."""

from __future__ import annotations

import http.server
import json
import sys
import threading
from pathlib import Path

from browser import fn_index
from conftest import USERS

sys.path.insert(0, str(Path(__file__).parents[1] / "ui"))  # browser_env: Chromium and Playwright, or skip
from browser_env import ARGS, CHROMIUM, needs_chromium, sync_api

from studio.data.store import Project
from studio.sharing.same_origin import REFUSAL

pytestmark = needs_chromium


def _attack_page(studio_url: str, body: dict) -> bytes:
    """The other site's page: POSTs the event with the visitor's cookies, puts the answer in its title."""
    return f"""<html><body><script>
fetch({json.dumps(studio_url + "/gradio_api/queue/join")}, {{method: "POST", credentials: "include",
      headers: {{"Content-Type": "application/json"}}, body: {json.dumps(json.dumps(body))}}})
  .then(async r => document.title = "answer " + r.status + " " + await r.text())
  .catch(e => document.title = "error " + e);
</script></body></html>""".encode()


def test_another_sites_page_cannot_relabel_through_the_owners_browser(studio, tmp_path):
    with Project.open(studio["project"]) as project:
        labels = project.dataset().set_index("image_id")["label"].to_dict()
    image_id = min(labels)
    target = "dog" if labels[image_id] != "dog" else "cat"
    page_bytes = _attack_page(studio["url"].rstrip("/"), {
        "data": [studio["project"], image_id, target], "fn_index": fn_index(studio["app"], "set_label"),
        "session_hash": "attack", "event_data": None, "trigger_id": None})

    class AttackSite(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page_bytes)

        def log_message(self, *args):
            pass

    # the studio is at 127.0.0.1; "localhost" is another site to the browser
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AttackSite)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = tmp_path / "profile"
    (profile / "Default").mkdir(parents=True)
    (profile / "Default" / "Preferences").write_text(json.dumps(
        {"profile": {"cookie_controls_mode": 0, "block_third_party_cookies": False}}))  # allow them
    try:
        with sync_api.sync_playwright() as play:
            browser = play.chromium.launch_persistent_context(str(profile), executable_path=str(CHROMIUM),
                                                              args=ARGS)
            try:
                page = browser.new_page()
                page.goto(studio["url"])
                page.fill("input[type=text]", "olga")
                page.fill("input[type=password]", USERS["olga"][1])
                page.keyboard.press("Enter")
                page.wait_for_url(lambda url: "login" not in url, timeout=30_000)
                page.wait_for_timeout(1000)  # signed in: the cookie is set
                assert any(c["name"].startswith("access-token") for c in browser.cookies())
                attack = browser.new_page()
                attack.goto(f"http://localhost:{server.server_address[1]}/")
                attack.wait_for_function("document.title.length > 0", timeout=30_000)
                title = attack.title()
            finally:
                browser.close()
    finally:
        server.shutdown()
    assert title.startswith("answer 403") and REFUSAL[:40] in title, title
    with Project.open(studio["project"]) as project:
        assert project.dataset().set_index("image_id")["label"].to_dict() == labels



def test_a_rebound_domain_is_refused_by_a_studio_without_accounts(tmp_path):
    # DNS rebinding as the browser sees it: the attacker's domain resolves to 127.0.0.1
    from studio.ui.context import AppContext
    from studio.ui.launcher import start

    context = AppContext(workspace=tmp_path / "workspace")
    app, url = start(context, "")  # the default launch: loopback, no share link, no accounts
    port = url.rstrip("/").rsplit(":", 1)[1]
    try:
        with sync_api.sync_playwright() as play:
            browser = play.chromium.launch(executable_path=str(CHROMIUM),
                                           args=[*ARGS, "--host-resolver-rules=MAP rebind.example 127.0.0.1"])
            try:
                page = browser.new_page()
                rebound = page.goto(f"http://rebind.example:{port}/")
                text = page.inner_text("body")
                own = page.goto(f"http://127.0.0.1:{port}/")
            finally:
                browser.close()
    finally:
        app.close()
        context.close()
    assert rebound.status == 403 and f"open http://127.0.0.1:{port}" in text
    assert own.status == 200
