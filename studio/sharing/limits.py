"""Size limits checked before anything is read: a huge file or a zip bomb is refused from its metadata."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from studio.errors import StudioError

MAX_FILE_BYTES = 100 * 1024**2  # one image file (the largest camera files are a few tens of MB)
MAX_ZIP_ENTRIES = 100_000
MAX_ZIP_TOTAL_BYTES = 20 * 1024**3
MAX_ZIP_RATIO = 200  # uncompressed / compressed per entry: images barely compress, bombs compress ~1000x
BOMB_CHECK_BYTES = 64 * 1024  # entries above this (and zips above 1024x this) are held to MAX_ZIP_RATIO


def check_file_size(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> int:
    """The file's size from `stat`; StudioError when it is over `max_bytes` (the file is not read)."""
    size = os.stat(path).st_size
    if size > max_bytes:
        raise StudioError(
            f"file is {size / 1024**2:.0f} MB, over the {max_bytes / 1024**2:.0f} MB limit per image"
        )
    return size


def check_zip(
    archive: zipfile.ZipFile,
    name: str | os.PathLike,
    *,
    max_entries: int = MAX_ZIP_ENTRIES,
    max_total: int = MAX_ZIP_TOTAL_BYTES,
    max_entry: int = MAX_FILE_BYTES,
) -> None:
    """Refuse a zip from its central directory alone: too many entries, too much data, or an entry that
    would unpack beyond the per-file limit or at a bomb-like compression ratio, alone or all together
    (many small bomb entries: 20,000 entries of 1 MiB of zeros fit in 20 MB)."""
    name = Path(name).name
    entries = [info for info in archive.infolist() if not info.is_dir()]
    if len(entries) > max_entries:
        raise StudioError(f"{name} holds {len(entries)} files, over the limit of {max_entries} per zip; "
                          "split it into smaller zips")
    total = sum(info.file_size for info in entries)
    if total > max_total:
        raise StudioError(f"{name} would unpack to {total / 1024**3:.1f} GiB, over the "
                          f"{max_total / 1024**3:.0f} GiB limit; unzip it yourself and import the folder")
    for info in entries:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > max_entry or (info.file_size > BOMB_CHECK_BYTES and ratio > MAX_ZIP_RATIO):
            raise StudioError(f"{name} holds {info.filename!r}, which would unpack to "
                              f"{info.file_size / 1024**2:.1f} MB (compressed {ratio:.0f} to 1): "
                              "refused as a possible zip bomb")
    packed = sum(info.compress_size for info in entries)
    if total > BOMB_CHECK_BYTES * 1024 and total / max(packed, 1) > MAX_ZIP_RATIO:
        raise StudioError(f"{name} would unpack to {total / 1024**2:.0f} MB from {packed / 1024**2:.1f} MB "
                          f"(compressed {total / max(packed, 1):.0f} to 1): refused as a possible zip bomb")


def open_checked_zip(path: str | os.PathLike) -> zipfile.ZipFile:
    """The zip at `path`, opened and passed by `check_zip`; StudioError when it is not a readable zip."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise StudioError(f"{Path(path).name} is not a readable zip file ({error})") from error
    try:
        check_zip(archive, path)
    except BaseException:
        archive.close()
        raise
    return archive


def check_zip_file(path: str | os.PathLike) -> None:
    """`check_zip` on a zip file by its path, before it is unpacked elsewhere (a queued job)."""
    open_checked_zip(path).close()
