"""Which stored image files still hold the bytes they were imported with (files are named by their sha256).

Hashing every file before each training run would cost seconds on a project of large photos, so a file
once verified is remembered by its size and modification time in the project's cache; only new or touched
files are hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from studio.durable import atomic_write_text
from studio.system import cpu_count

CACHE_NAME = "verified-files.json"


def is_intact(path: str | Path, digest: str) -> bool:
    """True when the file still holds the bytes imported under `digest` (missing or changed: False)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest
    except OSError:
        return False


def damaged_files(paths: Sequence[str], digests: Sequence[str], cache_dir: Path | None = None) -> list[bool]:
    """For each file, True when it went missing or no longer matches its digest since it was imported."""
    cache_path = Path(cache_dir) / CACHE_NAME if cache_dir is not None else None
    verified = _read(cache_path)
    stamps: list[list[int] | None] = []
    for path in paths:
        try:
            info = os.stat(path)
            stamps.append([info.st_size, info.st_mtime_ns])
        except OSError:
            stamps.append(None)
    todo = [i for i, stamp in enumerate(stamps) if stamp is not None and verified.get(digests[i]) != stamp]
    damaged = [stamp is None for stamp in stamps]
    with ThreadPoolExecutor(max_workers=max(1, min(4, cpu_count()))) as pool:  # hashlib frees the GIL
        for i, intact in zip(todo, pool.map(lambda i: is_intact(paths[i], digests[i]), todo)):
            damaged[i] = not intact
            if intact:
                verified[digests[i]] = stamps[i]
    if cache_path is not None and todo:
        _write(cache_path, verified)
    return damaged


def _read(path: Path | None) -> dict[str, list[int]]:
    try:
        data = json.loads(path.read_text()) if path is not None else {}
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: everything is hashed again
    return data if isinstance(data, dict) else {}


def _write(path: Path, verified: dict[str, list[int]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(verified))
    except OSError:
        pass  # a read-only cache only costs the next run the hashing
