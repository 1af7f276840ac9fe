"""Safe zip extraction: every entry is checked before anything is written.

An entry whose path would land outside the target folder (absolute, `..`, a drive letter: "zip-slip"),
a symbolic link or an encrypted entry is rejected with a reason and never written. macOS resource forks
(`__MACOSX/`) are skipped quietly. Names keep their accents whichever tool made the zip (see `entry_name`).
"""

from __future__ import annotations

import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from studio.sharing.limits import open_checked_zip


def extract_zip(zip_path: Path, target: Path) -> tuple[list[dict], int]:
    """Extract `zip_path` into `target`; returns (rejected entries as {path, reason}, entries skipped)."""
    target = target.resolve()
    label = zip_path.name
    rejected: list[dict] = []
    skipped = 0
    # Entry count and sizes are checked from the directory, before anything is written.
    with open_checked_zip(zip_path) as archive:
        entries = [info for info in archive.infolist() if not info.is_dir()]
        for info in entries:
            name = entry_name(info)
            shown = f"{label}:{name}"
            reason = _unsafe_reason(info, name, target)
            if reason is not None:
                rejected.append({"path": shown, "reason": reason})
                continue
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if parts[0].lower() == "__macosx":
                skipped += 1
                continue
            destination = target.joinpath(*parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink, 1024 * 1024)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as error:
                destination.unlink(missing_ok=True)
                rejected.append(
                    {"path": shown, "reason": f"corrupt entry in the zip, cannot extract ({error})"}
                )
    return rejected, skipped


def entry_name(info: zipfile.ZipInfo) -> str:
    """The entry's file name as its author saw it.

    Without the zip's UTF-8 flag, zipfile decodes names as cp437 (the format's old default), but Info-ZIP
    on Linux and many other tools write UTF-8 bytes without setting the flag: 'été' would read '├⌐t├⌐'
    and class folders would get garbled names. Such names are re-read as UTF-8 when they are
    valid UTF-8 (cp437 text with accents almost never is).
    """
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _unsafe_reason(info: zipfile.ZipInfo, name: str, target: Path) -> str | None:
    name = name.replace("\\", "/")
    parts = PurePosixPath(name).parts
    escapes = (
        not parts
        or name.startswith("/")
        or ".." in parts
        or (len(parts[0]) == 2 and parts[0][1] == ":")  # C:/...
        or not target.joinpath(*parts).resolve().is_relative_to(target)
    )
    if escapes:
        return "entry path leaves the archive's folder (zip-slip); not extracted"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link inside the zip; not extracted"
    if info.flag_bits & 0x1:
        return "encrypted entry; unzip it yourself with the password and import the folder"
    return None
