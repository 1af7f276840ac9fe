"""Stored files are checked against their import hash; verified ones are not hashed again until touched."""

from __future__ import annotations

import hashlib
import os

from studio.data import integrity


def _files(tmp_path, n=3):
    paths, digests = [], []
    for i in range(n):
        data = f"image bytes {i}".encode()
        digest = hashlib.sha256(data).hexdigest()
        path = tmp_path / f"{digest}.png"
        path.write_bytes(data)
        paths.append(str(path))
        digests.append(digest)
    return paths, digests


def test_damaged_files_and_the_verified_cache(tmp_path, monkeypatch):
    paths, digests = _files(tmp_path)
    hashed = []
    real = integrity.is_intact
    monkeypatch.setattr(integrity, "is_intact", lambda p, d: hashed.append(p) or real(p, d))
    cache = tmp_path / "cache"
    assert integrity.damaged_files(paths, digests, cache) == [False, False, False]
    assert len(hashed) == 3
    hashed.clear()
    assert integrity.damaged_files(paths, digests, cache) == [False, False, False]
    assert hashed == []  # all verified before, untouched since
    with open(paths[1], "ab") as handle:  # changed after import
        handle.write(b"!")
    os.remove(paths[2])  # gone
    assert integrity.damaged_files(paths, digests, cache) == [False, True, True]
    assert hashed == [paths[1]]  # the missing one needs no hashing, the untouched one none either
    (cache / integrity.CACHE_NAME).write_text("{not json")
    hashed.clear()
    assert integrity.damaged_files(paths, digests, cache) == [False, True, True]
    assert sorted(hashed) == sorted(paths[:2])  # a broken cache only costs the hashing
