"""Rules without a server: every callback names its role, passwords, confinement, limits, quotas."""

from __future__ import annotations

import asyncio
import zipfile
from pathlib import Path

import pytest

from studio.errors import StudioError
from studio.sharing.accounts import hash_password, load_users, verify_password
from studio.sharing.confinement import REFUSED, PathPolicy, is_remote
from studio.sharing.limits import check_zip
from studio.sharing.quotas import JobQuota


def test_every_named_callback_declares_its_role(tmp_path):
    from studio.ui.access import ROLE_ATTRIBUTE
    from studio.ui.app import build_app
    from studio.ui.context import AppContext

    app = build_app(AppContext(workspace=tmp_path))
    unmarked = sorted(
        {
            fn.fn.__name__
            for fn in app.fns.values()
            if fn.fn is not None and fn.fn.__name__ != "<lambda>" and not hasattr(fn.fn, ROLE_ATTRIBUTE)
        }
    )
    assert unmarked == []  # lambdas only forward to marked functions, which check again


def test_passwords_are_salted_scrypt_hashes(tmp_path):
    stored = hash_password("s3cret")
    assert stored.startswith("scrypt$") and stored != hash_password("s3cret")
    assert verify_password("s3cret", stored) and not verify_password("wrong", stored)
    users = tmp_path / "users.json"
    users.write_text(f'[{{"name": "ann", "password_hash": "{stored}", "role": "labeler"}}]')
    accounts = load_users(users)
    assert accounts.authenticate("ann", "s3cret") and not accounts.authenticate("ann", "x")
    assert accounts.role_of("ann") == "labeler" and accounts.role_of("bob") is None
    users.write_text('[{"name": "ann", "password": "p", "role": "admin"}]')
    with pytest.raises(StudioError, match="unknown role"):
        load_users(users)



def test_an_unknown_name_costs_one_password_check_like_a_known_one(tmp_path, monkeypatch):
    """Sign-in time must not tell which account names exist: one scrypt run either way."""
    import hashlib

    users = tmp_path / "users.json"
    users.write_text('[{"name": "ann", "password": "s3cret", "role": "labeler"}]')
    accounts = load_users(users)
    accounts.authenticate("nobody", "warm-up")  # the unknown-name hash is made once, at first use
    runs = []
    real = hashlib.scrypt
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: runs.append(1) or real(*a, **k))
    for name in ("ann", "nobody", "ghost"):
        runs.clear()
        assert not accounts.authenticate(name, "wrong")
        assert len(runs) == 1, name

def test_confinement_follows_symlinks_and_hides_existence(tmp_path):
    workspace, elsewhere = tmp_path / "ws", tmp_path / "elsewhere"
    workspace.mkdir()
    elsewhere.mkdir()
    (workspace / "out").symlink_to(elsewhere)
    policy = PathPolicy(workspace, remote=True)
    assert policy.check(workspace / "a") == (workspace / "a").resolve()
    for path in (elsewhere, workspace / "out", workspace / ".." / "elsewhere", tmp_path / "missing"):
        with pytest.raises(StudioError) as refused:
            policy.check(path)
        assert str(refused.value) == REFUSED
    assert PathPolicy(workspace).check(elsewhere) == elsewhere.resolve()  # loopback owner: anywhere
    with pytest.raises(StudioError):
        PathPolicy(workspace).check(elsewhere, role="labeler")
    assert is_remote("0.0.0.0", False) and is_remote("127.0.0.1", True) and not is_remote("::1", False)


def test_zip_limits_come_from_the_directory(tmp_path):
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as archive:
        for number in range(11):
            archive.writestr(f"{number}.png", b"x")
    with zipfile.ZipFile(many) as archive, pytest.raises(StudioError, match="11 files"):
        check_zip(archive, many, max_entries=10)



@pytest.mark.parametrize("entries, entry_bytes", [(50, 1024**2), (1100, 60 * 1024)])
def test_zip_of_many_small_bomb_entries_is_refused(tmp_path, entries, entry_bytes):
    """1 MiB of zeros per entry passed a per-entry check that began above 1 MiB (a 56 KB zip held 50 MB);
    entries under the per-entry threshold are caught by the zip's overall ratio."""
    from studio.sharing.limits import check_zip_file

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for number in range(entries):
            archive.writestr(f"{number}.png", bytes(entry_bytes))
    with pytest.raises(StudioError, match="zip bomb"):
        check_zip_file(bomb)


def test_zip_of_photos_passes_the_bomb_checks(tmp_path):
    from helpers_images import jpeg_bytes

    from studio.sharing.limits import check_zip_file

    photos = tmp_path / "photos.zip"
    with zipfile.ZipFile(photos, "w", zipfile.ZIP_DEFLATED) as archive:
        for number in range(20):
            archive.writestr(f"cat/{number}.jpg", jpeg_bytes(size=256, seed=number))
    check_zip_file(photos)
    (tmp_path / "not.zip").write_bytes(b"plain text")
    with pytest.raises(StudioError, match="not a readable zip"):
        check_zip_file(tmp_path / "not.zip")

def test_oversized_image_is_not_read(tmp_path, monkeypatch):
    from studio.data.ingest import prepare_image

    big = tmp_path / "big.png"
    with open(big, "wb") as handle:
        handle.truncate(200 * 1024 * 1024)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("the oversized file was read"))
    with pytest.raises(StudioError, match="limit"):
        prepare_image(big, tmp_path / "images")


class _Job:
    def __init__(self, job_id):
        self.id, self.kind = job_id, "train"


class _Service:
    def __init__(self):
        self.jobs = []

    def queued_jobs(self):
        return list(self.jobs)


def test_quota_bounds_the_queue_and_trainings_per_user():
    service, quota = _Service(), JobQuota(max_queued=2)

    def submit():
        service.jobs.append(_Job(f"job{len(service.jobs)}"))
        return service.jobs[-1]

    quota.admit(service, "ann", "train", submit)
    with pytest.raises(StudioError, match="already have a training waiting"):
        quota.admit(service, "ann", "train", submit)
    quota.admit(service, "bob", "train", submit)
    with pytest.raises(StudioError, match="the queue is full"):
        quota.admit(service, "cy", "train", submit)


def test_launch_flags_build_the_accounts_and_the_path_policy(tmp_path):
    from studio.ui.launcher import launch_kwargs, parse_args

    users = tmp_path / "users.toml"
    users.write_text('[[user]]\nname = "lena"\npassword = "pw"\nrole = "labeler"\n')
    options = parse_args(
        [
            "--auth",
            "ann:one",
            "--auth",
            "bob:two",
            "--users",
            str(users),
            "--host",
            "0.0.0.0",
            "--import-root",
            str(tmp_path),
            "--workspace",
            str(tmp_path / "ws"),
        ]
    )
    accounts = options.accounts
    assert [accounts.role_of(n) for n in ("ann", "bob", "lena")] == ["owner", "owner", "labeler"]
    assert options.remote and options.import_roots == (tmp_path.resolve(),)
    auth = launch_kwargs(options)["auth"]  # a coroutine: Gradio awaits it
    assert asyncio.run(auth("lena", "pw")) and not asyncio.run(auth("lena", "no"))
    assert not parse_args(["--workspace", str(tmp_path)]).remote
    users.write_text('[[user]]\nname = "x"\nrole = "owner"\n')
    with pytest.raises(StudioError, match="needs a password"):
        parse_args(["--users", str(users)])


@pytest.mark.parametrize("name", ["user", "import", "Curation"])
def test_names_the_label_history_uses_cannot_be_accounts(tmp_path, name):
    # an account named "import" could undo every imported label as its own change
    users = tmp_path / "users.toml"
    users.write_text(f'[[user]]\nname = "{name}"\npassword = "pw"\nrole = "labeler"\n')
    with pytest.raises(StudioError, match="reserved"):
        load_users(users)


def test_one_account_cannot_fill_the_shared_queue():
    from types import SimpleNamespace

    from studio.ui.access import PER_USER_EVENTS, limit_queue_per_user

    async def push(body, request, username):
        return True, "event-id", "success"

    def event(user):
        return SimpleNamespace(username=user)

    waiting = [event("vic")] * (PER_USER_EVENTS - 1) + [event("olga")]
    queue = SimpleNamespace(push=push, event_queue_per_concurrency_id={"fn": SimpleNamespace(queue=waiting)},
                            active_jobs=[None, [event("vic")]])
    limit_queue_per_user(SimpleNamespace(_queue=queue))
    ok, message, state = asyncio.run(queue.push(None, None, "vic"))  # 15 waiting + 1 running: full
    assert not ok and state == "queue_full" and "16 requests waiting or running" in message
    assert asyncio.run(queue.push(None, None, "olga"))[0]  # the others still get in


def test_the_running_studio_limits_the_queue_per_user(studio):
    assert hasattr(studio["app"]._queue.push, "__wrapped__")  # installed by the launcher with accounts
