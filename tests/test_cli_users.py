"""`studio users add|remove|role|password|list`: a TOML users file kept usable by `launch.py --users`."""

from __future__ import annotations

import io
import json

import pytest

from studio import cli
from studio.sharing.accounts import load_users


def _run(capsys, monkeypatch, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def users(tmp_path):
    path = tmp_path / "users.toml"
    path.write_text('# the lab\'s accounts\n\n'
                    '[[user]]\nname = "olga"\npassword = "o-pass"\nrole = "owner"\n\n'
                    '# lena labels the scans\n'
                    '[[user]]\nname = "lena"\npassword = "l-pass"\nrole = "labeler"\n')
    return path


def test_add_role_password_remove_keep_the_file_readable_and_its_comments(users, capsys, monkeypatch):
    code, out, _ = _run(capsys, monkeypatch, "users", "add", str(users), "vic", "--password-stdin",
                        stdin="v-pass\n")
    assert code == 0 and "vic added as viewer" in out
    assert load_users(users).authenticate("vic", "v-pass") and load_users(users).role_of("vic") == "viewer"
    assert "v-pass" not in users.read_text()  # stored as a hash only
    assert _run(capsys, monkeypatch, "users", "role", str(users), "vic", "labeler")[0] == 0
    assert _run(capsys, monkeypatch, "users", "password", str(users), "lena", "--password-stdin",
                stdin="new-pass\n")[0] == 0
    accounts = load_users(users)
    assert accounts.role_of("vic") == "labeler" and accounts.authenticate("lena", "new-pass")
    assert not accounts.authenticate("lena", "l-pass") and accounts.authenticate("olga", "o-pass")
    assert _run(capsys, monkeypatch, "users", "remove", str(users), "vic")[0] == 0
    text = users.read_text()
    assert "# the lab's accounts" in text and "# lena labels the scans" in text  # the owner's notes stay
    code, out, _ = _run(capsys, monkeypatch, "users", "list", str(users), "--json")
    assert json.loads(out) == [{"name": "olga", "role": "owner"}, {"name": "lena", "role": "labeler"}]
    assert (users.stat().st_mode & 0o777) == 0o600


def test_edits_that_would_lock_the_team_out_are_refused(users, capsys, monkeypatch):
    before = users.read_text()
    for argv, message in (
        (("users", "remove", str(users), "olga"), "without an owner"),
        (("users", "role", str(users), "olga", "viewer"), "without an owner"),
        (("users", "remove", str(users), "nobody"), "no user 'nobody'"),
        (("users", "add", str(users), "lena", "--password-stdin"), "already has a user 'lena'"),
        (("users", "add", str(users), "import", "--password-stdin"), "reserved"),
        (("users", "add", str(users), "new", "--password-stdin"), "password is empty"),
        (("users", "add", str(users), "new"), "--password-stdin"),  # no terminal to ask on
    ):
        code, _, err = _run(capsys, monkeypatch, *argv, stdin="x\n" if "import" in argv else "")
        assert code == 2 and message in err, (argv, err)
    assert users.read_text() == before  # nothing written by a refused edit
    plural = users.with_name("plural.toml")  # [[users]] tables, which the studio reads too
    plural.write_text('[[users]]\nname = "olga"\npassword = "o-pass"\nrole = "owner"\n')
    code, _, err = _run(capsys, monkeypatch, "users", "add", str(plural), "vic", "--password-stdin",
                        stdin="v\n")
    assert code == 2 and "[[users]] tables" in err and "vic" not in plural.read_text()
    json_file = users.with_suffix(".json")
    json_file.write_text('[{"name": "a", "password": "p", "role": "owner"}]')
    code, _, err = _run(capsys, monkeypatch, "users", "remove", str(json_file), "a")
    assert code == 2 and "edit it by hand" in err


def test_a_new_file_gets_its_first_user(tmp_path, capsys, monkeypatch):
    path = tmp_path / "team.toml"
    assert _run(capsys, monkeypatch, "users", "add", str(path), "olga", "--role", "owner", "--password-stdin",
                stdin="o-pass\n")[0] == 0
    assert load_users(path).role_of("olga") == "owner"


def test_removing_a_user_keeps_the_note_written_above_the_next_one(users, capsys, monkeypatch):
    assert _run(capsys, monkeypatch, "users", "add", str(users), "nina", "--role", "owner",
                "--password-stdin", stdin="n-pass\n")[0] == 0
    assert _run(capsys, monkeypatch, "users", "remove", str(users), "olga")[0] == 0  # nina is an owner now
    text = users.read_text()
    assert "olga" not in text and "# lena labels the scans" in text and "# the lab's accounts" in text
    assert [u.name for u in load_users(users).all()] == ["lena", "nina"]
