"""Another web site's page cannot use a signed-in user's browser to act on the studio (cross-site request
forgery). Gradio's sign-in cookie is `SameSite=None`, and on a share link (not reached as localhost) its CORS
answer allows any origin: without `studio.sharing.same_origin` such a page could run the owner's callbacks.

The requests carry the headers a browser sets; `Host` is a share link's, as the tunnel forwards it."""

from __future__ import annotations

import pytest
from browser import Browser, fn_index
from conftest import USERS

from studio.data.store import Project
from studio.sharing.same_origin import REFUSAL, is_cross_site, is_loopback_host

SHARE_HOST = "0123456789abcdef.gradio.live"
OWN_PAGE = {"Host": SHARE_HOST, "Origin": f"https://{SHARE_HOST}", "Sec-Fetch-Site": "same-origin",
            "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
EVIL_PAGE = {**OWN_PAGE, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
OTHER_SHARE_LINK = {**OWN_PAGE, "Origin": "https://fedcba9876543210.gradio.live",
                    "Sec-Fetch-Site": "same-site"}


@pytest.fixture
def owner(studio):
    browser = Browser(studio["url"], "olga", USERS["olga"][1])  # signed in: the cookie an attack would ride
    yield browser
    browser.close()


def _labels(studio) -> dict[int, str]:
    with Project.open(studio["project"]) as project:
        return project.dataset().set_index("image_id")["label"].to_dict()


@pytest.mark.parametrize("page", [EVIL_PAGE, OTHER_SHARE_LINK], ids=["other-site", "other-share-link"])
def test_another_sites_page_cannot_act_as_the_signed_in_owner(studio, owner, page):
    labels = _labels(studio)
    image_id = min(labels)
    owner.http.headers.update(page)
    ok, message = owner.call(fn_index(studio["app"], "set_label"), [studio["project"], image_id, "dog"])
    assert not ok and REFUSAL in message
    assert _labels(studio) == labels
    stream = owner.http.get("/gradio_api/queue/data", params={"session_hash": "any"})
    assert stream.status_code == 403  # nor read what the user's own events answered
    upload = owner.http.post("/gradio_api/upload", files=[("files", ("x.bin", b"\0" * 1000))])
    assert upload.status_code == 403
    login = owner.http.post("/login", data={"username": "olga", "password": USERS["olga"][1]})
    assert login.status_code == 403  # nor sign the browser in under an account the page chose


def test_the_studios_own_page_still_acts_and_a_link_from_elsewhere_still_opens(studio, owner):
    labels = _labels(studio)
    image_id = min(labels)
    new_label = "dog" if labels[image_id] != "dog" else "cat"
    owner.http.headers.update(OWN_PAGE)
    ok, output = owner.call(fn_index(studio["app"], "set_label"), [studio["project"], image_id, new_label])
    assert ok, output
    assert _labels(studio)[image_id] == new_label
    # a link to the studio in a mail or on another site opens its page (a navigation runs no callback) ...
    navigation = {**EVIL_PAGE, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    opened = owner.http.get("/", headers=navigation)
    assert opened.status_code == 200
    # browsers without Sec-Fetch-Dest are told the same by headers
    assert opened.headers["x-frame-options"] == "SAMEORIGIN"
    assert opened.headers["content-security-policy"] == "frame-ancestors 'self'"
    # ... but another site may not frame it
    framed = {**navigation, "Sec-Fetch-Dest": "iframe"}
    assert owner.http.get("/", headers=framed).status_code == 403
    # nor sign the user out: Gradio's /logout is a GET that ends every session of the user
    assert owner.http.get("/logout", headers=navigation, follow_redirects=False).status_code == 403
    assert owner.http.get("/config", headers=OWN_PAGE).status_code == 200  # still signed in


def _scope(method="POST", **headers) -> dict:
    return {"type": "http", "method": method,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}


def test_older_browsers_are_judged_by_their_origin_and_programs_pass():
    # no Sec-Fetch-* headers (browsers before 2020-2023): the Origin must name the host asked
    assert is_cross_site(_scope(Host=SHARE_HOST, Origin="https://evil.example"))
    assert is_cross_site(_scope(Host=SHARE_HOST, Origin="null"))
    assert not is_cross_site(_scope(Host=SHARE_HOST, Origin=f"https://{SHARE_HOST}"))
    assert not is_cross_site(_scope(Host="127.0.0.1:7860", Origin="http://127.0.0.1:7860"))
    assert is_cross_site(_scope(Host="127.0.0.1:7860", Origin="http://127.0.0.1:8000"))  # another local app
    # behind a proxy that rewrites Host, the host the browser asked is in X-Forwarded-Host
    assert not is_cross_site(_scope(**{"Host": "127.0.0.1:7860", "Origin": "https://studio.lab.example",
                                       "X-Forwarded-Host": "studio.lab.example"}))
    # gradio_client, curl: neither header; the sign-in and role checks apply as always
    assert not is_cross_site(_scope(Host=SHARE_HOST))
    # the browser's own word wins over Origin
    assert not is_cross_site(_scope(**{"Host": "127.0.0.1:7860", "Origin": "https://studio.lab.example",
                                       "Sec-Fetch-Site": "same-origin"}))
    assert not is_cross_site(_scope(method="GET", **{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}))
    form_post = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    assert is_cross_site(_scope(method="POST", **form_post))  # a form another site submits


def test_a_studio_without_accounts_answers_only_at_a_loopback_address(tmp_path):
    # DNS rebinding: a page whose domain an attacker pointed at 127.0.0.1 is, to the browser, the same origin
    # as the studio it reaches there; without accounts nothing else would stop it
    import httpx

    from studio.ui.context import AppContext
    from studio.ui.launcher import start

    context = AppContext(workspace=tmp_path / "workspace")
    app, url = start(context, "")  # the default launch: loopback, no share link, no accounts
    try:
        http = httpx.Client(base_url=url, timeout=60)
        port = httpx.URL(url).port
        rebound = {"Host": f"rebind.example:{port}", "Origin": f"http://rebind.example:{port}",
                   "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
        refused = http.get("/gradio_api/info", headers=rebound)
        assert refused.status_code == 403 and f"http://127.0.0.1:{port}" in refused.json()["detail"]
        opened = http.get("/", headers={**rebound, "Accept": "text/html,*/*", "Sec-Fetch-Mode": "navigate"})
        assert opened.status_code == 403 and opened.text.startswith("This studio runs on this machine only")
        assert http.post("/gradio_api/upload", headers=rebound,
                         files=[("files", ("x.bin", b"\0"))]).status_code == 403
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            assert http.get("/gradio_api/info", headers={"Host": host}).status_code == 200, host
    finally:
        app.close()
        context.close()


def test_loopback_names():
    assert all(is_loopback_host(h) for h in ("127.0.0.1:7860", "localhost", "LOCALHOST:1", "app.localhost:80",
                                             "[::1]:7860", "127.1.2.3"))
    assert not any(is_loopback_host(h) for h in (None, "", "rebind.example:7860", "192.168.1.5:7860",
                                                 "localhost.evil.example", "[::1"))
