"""studio.durable: whole files or none, unique temp names, nothing left behind on failure."""

from __future__ import annotations

import json
import threading

import pytest

from studio import durable


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
