"""An owner edits the users file while the studio runs: a removed user is out at their next request, a new
user signs in, a new role applies at once, a new password ends the old sign-ins; a broken file changes
nothing. No restart (which would stop a training in progress)."""

from __future__ import annotations

import os

import httpx
import pytest
from browser import Browser, fn_index
from conftest import free_port
from helpers_images import make_image_folder

from studio.data.importers import import_source
from studio.data.store import Project
from studio.sharing.accounts import Accounts, LiveAccounts


def write_users(path, users: dict[str, tuple[str, str]]) -> None:
    """`users`: name -> (role, password). The modification time moves on each write, as an editor's would."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text("".join(f'[[user]]\nname = "{name}"\npassword = "{password}"\nrole = "{role}"\n\n'
                            for name, (role, password) in users.items()))
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_the_users_file_is_read_again_when_it_changes(tmp_path, capsys):
    users = tmp_path / "users.toml"
    write_users(users, {"olga": ("owner", "o-pass"), "lena": ("labeler", "l-pass"),
                        "vic": ("viewer", "v-pass")})
    live = LiveAccounts(users, fixed=Accounts.from_pairs([("admin", "a-pass")]), interval_s=0)
    ended: list[set[str]] = []
    live.on_change = ended.append
    assert live.role_of("lena") == "labeler" and live.authenticate("admin", "a-pass")

    write_users(users, {"olga": ("owner", "o-pass"), "vic": ("labeler", "v-pass2"), "nina": ("viewer", "n")})
    assert live.role_of("lena") is None  # removed: refused at the next action
    assert live.role_of("vic") == "labeler"  # a new role applies at once
    assert live.authenticate("nina", "n") and live.authenticate("vic", "v-pass2")
    assert not live.authenticate("vic", "v-pass")
    assert live.authenticate("admin", "a-pass")  # --auth accounts stay
    assert ended == [{"lena", "vic"}]  # removed, or a new password: their sign-ins end; olga's do not
    assert "read again" in capsys.readouterr().err

    users.write_text("[[user]\nname = ")  # half saved
    os.utime(users, ns=(users.stat().st_mtime_ns + 10**9,) * 2)
    assert live.role_of("nina") == "viewer" and live.role_of("olga") == "owner"  # the last good accounts
    assert "stay in force" in capsys.readouterr().err
    assert ended == [{"lena", "vic"}]


def test_the_file_is_looked_at_once_per_interval(tmp_path):
    users = tmp_path / "users.toml"
    write_users(users, {"olga": ("owner", "o-pass")})
    now = [0.0]
    live = LiveAccounts(users, interval_s=1.0, clock=lambda: now[0])
    write_users(users, {"olga": ("owner", "o-pass"), "nina": ("viewer", "n")})
    assert live.role_of("nina") is None  # within the interval: not looked at yet
    now[0] = 1.5
    assert live.role_of("nina") == "viewer"


@pytest.fixture
def live_studio(tmp_path, monkeypatch):
    from studio.sharing import accounts
    from studio.ui.launcher import build_context, parse_args, start

    monkeypatch.setattr(accounts, "USERS_FILE_CHECK_S", 0.0)  # every request looks at the file
    with Project.create(tmp_path / "ws" / "p") as project:
        import_source(project, make_image_folder(tmp_path / "src", ["cat", "dog"], 2, size=24))
    users = tmp_path / "users.toml"
    write_users(users, {"olga": ("owner", "o-pass"), "lena": ("labeler", "l-pass")})
    options = parse_args(["--workspace", str(tmp_path / "ws"), "--users", str(users), "--no-browser",
                          "--port", str(free_port())])
    context, _ = build_context(options)
    app, url = start(context, "", options=options)
    yield app, url, users, str(tmp_path / "ws" / "p")
    app.close()
    context.close()


def test_a_removed_user_is_signed_out_of_the_running_studio(live_studio):
    app, url, users, project = live_studio
    history = fn_index(app, "label_history")
    lena = Browser(url, "lena", "l-pass")
    try:
        assert lena.call(history, [project, 5])[0]
        write_users(users, {"olga": ("owner", "o-pass"), "nina": ("viewer", "n-pass")})
        assert not lena.call(history, [project, 5])[0]  # refused at the role check, which ends the session
        assert lena.http.get("/config").status_code == 401  # the session itself is gone
        assert lena.http.post("/login", data={"username": "lena", "password": "l-pass"}).status_code == 400
    finally:
        lena.close()
    with httpx.Client(base_url=url) as nina:  # added while it ran
        assert nina.post("/login", data={"username": "nina", "password": "n-pass"}).status_code == 200


def test_the_header_shows_a_new_role_at_the_next_tab_switch(live_studio):
    app, url, users, _ = live_studio
    # the header's account view runs on page load and again on every tab switch
    found = [index for index, block_fn in app.fns.items()
             if getattr(block_fn.fn, "__name__", "") == "_account_view"]
    tab_box = next(block for block in app.blocks.values() if getattr(block, "elem_id", None) == "current-tab")
    triggers = {(target[0], target[1]) for index in found for target in app.fns[index].targets}
    assert (tab_box._id, "change") in triggers
    lena = Browser(url, "lena", "l-pass")
    try:
        ok, shown = lena.call(found[0], [])
        assert ok and "(labeler)" in shown[1]["value"]
        write_users(users, {"olga": ("owner", "o-pass"), "lena": ("viewer", "l-pass")})
        ok, shown = lena.call(found[-1], [])
        assert ok and "(viewer)" in shown[1]["value"]
    finally:
        lena.close()
