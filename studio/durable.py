"""Atomic, durable file writes: a reader sees the old file or the new one, never half of one, and a
power loss after the call returns keeps the new one (file and folder entry both fsynced)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"
# A temp file lives for one write (milliseconds to seconds); one this old was left by a killed process.
STALE_TEMP_AGE_S = 3600


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a unique temp file beside `path`, fsync it, rename it over `path`, fsync the folder."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str))


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # folders cannot be opened on some platforms (Windows): the rename is all we get
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temp_files(root: str | os.PathLike, older_than_s: float = STALE_TEMP_AGE_S) -> int:
    """Delete the temp files under `root` that a process killed mid-write left behind (a `kill -9` during an
    import leaves one in images/), when older than `older_than_s`, so that a write in progress elsewhere
    keeps its own. Returns how many were removed."""
    cutoff = time.time() - older_than_s
    removed = 0
    for folder, _, names in os.walk(root):
        for name in names:
            if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
                continue
            path = Path(folder) / name
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:  # gone already, or not ours to remove: leave it
                continue
    return removed
