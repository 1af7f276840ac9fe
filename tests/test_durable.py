"""studio.durable: whole files or none, unique temp names, nothing left behind on failure or after a kill."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from studio import durable
from studio.data.store import Project


def test_writes_replace_whole_files(tmp_path):
    target = tmp_path / "a.json"
    durable.atomic_write_json(target, {"x": 1})
    durable.atomic_write_text(target, "hello")
    assert target.read_text() == "hello"
    durable.atomic_write_json(target, [1, 2])
    assert json.loads(target.read_text()) == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_concurrent_writers_never_share_a_temp_file(tmp_path):
    target = tmp_path / "shared.bin"
    payloads = [bytes([n]) * 200_000 for n in range(8)]
    threads = [threading.Thread(target=durable.atomic_write_bytes, args=(target, p)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_bytes() in payloads  # one writer's whole file, never a mix
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "keep.txt"
    durable.atomic_write_text(target, "old")
    monkeypatch.setattr(durable.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        durable.atomic_write_text(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def _age(path, seconds):
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_stale_temp_files_of_killed_writers_are_removed_and_fresh_ones_kept(tmp_path):
    # the names atomic_write_bytes gives its temp files, as a kill -9 mid-write leaves them
    (tmp_path / "images").mkdir()
    stale = tmp_path / "images" / ".ab12.jpg.x7k2.tmp"
    fresh = tmp_path / "images" / ".cd34.jpg.q9z1.tmp"
    user_file = tmp_path / "images" / "notes.tmp"  # not a name the studio writes: never touched
    for path in (stale, fresh, user_file):
        path.write_bytes(b"half")
    _age(stale, durable.STALE_TEMP_AGE_S + 60)
    _age(user_file, durable.STALE_TEMP_AGE_S + 60)
    assert durable.remove_stale_temp_files(tmp_path) == 1
    assert not stale.exists() and fresh.exists() and user_file.exists()


def test_opening_a_project_sweeps_what_a_killed_import_left(tmp_path):
    Project.create(tmp_path / "p").close()
    left = tmp_path / "p" / "images" / ".ab12.jpg.x7k2.tmp"
    left.write_bytes(b"half an image")
    _age(left, durable.STALE_TEMP_AGE_S + 60)
    with Project.open(tmp_path / "p"):
        assert not left.exists()
