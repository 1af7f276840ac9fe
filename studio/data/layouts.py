"""Find the files of a source folder and what each one is (label, split), for every supported layout.

Layouts: `class-folders` (root/<class>/**), `pre-split` (root/train|val|valid|validation|test/<class>/**),
`flat` (unlabeled images anywhere under root) and `csv` (path,label[,split] relative to the CSV).
Hidden files and folders, `__MACOSX`, `.DS_Store`, `Thumbs.db` and `desktop.ini` are skipped quietly
(only counted): they are never images a user meant to import.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from studio.data.imaging import is_image_name
from studio.data.splits import SPLIT_ALIASES, normalize_split
from studio.errors import StudioError

LAYOUTS = ("class-folders", "pre-split", "flat", "csv")
_JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini", "__macosx"}


@dataclass(frozen=True)
class Candidate:
    """One file to import: where it is, what it is, and how to name it in the report."""

    path: Path
    label: str | None
    split: str | None
    shown: str


@dataclass
class Listing:
    candidates: list[Candidate] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0


def _is_junk(name: str) -> bool:
    return name.startswith(".") or name.lower() in _JUNK_NAMES


def walk_files(folder: Path) -> tuple[list[Path], int]:
    """All regular files under `folder` in a stable order, minus junk; returns (files, junk skipped)."""
    files: list[Path] = []
    skipped = 0
    for current, dirs, names in os.walk(folder):
        skipped += sum(1 for d in dirs if _is_junk(d))
        dirs[:] = sorted(d for d in dirs if not _is_junk(d))
        for name in sorted(names):
            if _is_junk(name):
                skipped += 1
            else:
                files.append(Path(current) / name)
    return files, skipped


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _is_junk(p.name))


def _junk_count(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if _is_junk(p.name))


def _top_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not _is_junk(p.name))


def find_label_csv(folder: Path) -> Path | None:
    """The one CSV at the top of `folder` whose header has path and label columns, if any."""
    found = [p for p in _top_files(folder) if p.suffix.lower() == ".csv" and _has_label_header(p)]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise StudioError(f"{folder} has several label CSVs ({names}); import the one you mean directly")
    return found[0] if found else None


def _has_label_header(csv_path: Path) -> bool:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    columns = {column.strip().lower() for column in header}
    return {"path", "label"} <= columns


def detect_layout(folder: Path) -> str:
    """Guess the layout of a folder: a label CSV wins, then train/val folders, class folders, flat."""
    if find_label_csv(folder) is not None:
        return "csv"
    subfolders = _subfolders(folder)
    by_name = {p.name.lower(): p for p in subfolders}
    split_named = [p for p in subfolders if p.name.lower() in SPLIT_ALIASES]
    train_has_classes = "train" in by_name and bool(_subfolders(by_name["train"]))
    if split_named and (len(split_named) == len(subfolders) or train_has_classes):
        return "pre-split"
    for sub in subfolders:
        if any(is_image_name(f) for f in walk_files(sub)[0]):
            return "class-folders"
    if any(is_image_name(f) for f in walk_files(folder)[0]):
        return "flat"
    raise StudioError(
        f"found no image files in {folder}; expected class folders, train/val folders, images or a CSV"
    )


def list_source(
    folder: Path, layout: str, *, csv_path: Path | None = None, shown_prefix: str = "",
    confine_to: Path | None = None,
) -> Listing:
    """List the candidates of `folder` for the given (already decided) layout."""
    if layout == "class-folders":
        return _class_folders(folder, shown_prefix)
    if layout == "pre-split":
        return _pre_split(folder, shown_prefix)
    if layout == "flat":
        return _flat(folder, shown_prefix)
    if layout == "csv":
        csv_path = csv_path or find_label_csv(folder)
        if csv_path is None:
            raise StudioError(f"no CSV with a path,label header row at the top of {folder}")
        return _csv(csv_path, shown_prefix, confine_to=folder if shown_prefix else confine_to)
    raise StudioError(f"unknown layout {layout!r}; use auto, {', '.join(LAYOUTS)}")


def _shown(path: Path, base: Path, prefix: str) -> str:
    return f"{prefix}{path.relative_to(base).as_posix()}" if prefix else str(path)


def _add_tree(listing: Listing, folder: Path, base: Path, prefix: str, label: str | None, split: str | None):
    files, skipped = walk_files(folder)
    listing.skipped += skipped
    for path in files:
        listing.candidates.append(Candidate(path, label, split, _shown(path, base, prefix)))


def _note_loose_files(listing: Listing, folder: Path, base: Path, prefix: str, split: str | None) -> None:
    """Images sitting next to the class folders have no class: import them unlabeled and say so."""
    loose = [p for p in _top_files(folder) if is_image_name(p)]
    for path in loose:
        listing.candidates.append(Candidate(path, None, split, _shown(path, base, prefix)))
    if loose:
        where = f"folder {folder.relative_to(base).as_posix()!r}" if folder != base else "the top folder"
        listing.warnings.append(
            f"{len(loose)} image(s) directly in {where} are outside any class folder: imported unlabeled"
        )
    listing.skipped += sum(1 for p in _top_files(folder) if not is_image_name(p))


def _class_folders(folder: Path, prefix: str) -> Listing:
    listing = Listing(skipped=_junk_count(folder))
    for sub in _subfolders(folder):
        _add_tree(listing, sub, folder, prefix, sub.name.strip(), None)
    _note_loose_files(listing, folder, folder, prefix, None)
    return listing


def _pre_split(folder: Path, prefix: str) -> Listing:
    listing = Listing(skipped=_junk_count(folder))
    for split_dir in _subfolders(folder):
        split = SPLIT_ALIASES.get(split_dir.name.lower())
        if split is None:
            listing.warnings.append(f"folder {split_dir.name!r} is not train, val or test: ignored")
            continue
        listing.skipped += _junk_count(split_dir)
        for sub in _subfolders(split_dir):
            _add_tree(listing, sub, folder, prefix, sub.name.strip(), split)
        _note_loose_files(listing, split_dir, folder, prefix, split)
    listing.skipped += sum(1 for p in _top_files(folder) if not is_image_name(p))
    return listing


def _flat(folder: Path, prefix: str) -> Listing:
    listing = Listing()
    _add_tree(listing, folder, folder, prefix, None, None)
    return listing


def _csv(csv_path: Path, prefix: str, confine_to: Path | None) -> Listing:
    listing = Listing()
    base = csv_path.parent
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise StudioError(f"cannot read {csv_path} as a UTF-8 CSV ({error})") from error
    header = [column.strip().lower() for column in rows[0]] if rows else []
    if "path" not in header or "label" not in header:
        raise StudioError(f"{csv_path} needs a header row with path and label columns (and optionally split)")
    at = {name: header.index(name) for name in ("path", "label", "split") if name in header}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        raw_path, label = _cell(row, at, "path").replace("\\", "/"), _cell(row, at, "label")
        shown = f"{prefix}{csv_path.name}:{line}:{raw_path}" if prefix else f"{csv_path}:{line}:{raw_path}"
        if not raw_path:
            listing.rejected.append({"path": shown, "reason": f"CSV row {line} has an empty path"})
            continue
        path = (base / raw_path).resolve()
        if confine_to is not None and not path.is_relative_to(confine_to.resolve()):
            listing.rejected.append(
                {"path": shown, "reason": "CSV path leaves the archive's folder; not imported"}
            )
            continue
        if not path.is_file():
            listing.rejected.append(
                {
                    "path": shown,
                    "reason": f"file not found (CSV row {line}; paths are relative to the CSV's folder)",
                }
            )
            continue
        if not label:
            listing.rejected.append({"path": shown, "reason": f"CSV row {line} has an empty label"})
            continue
        try:
            split = normalize_split(_cell(row, at, "split"))
        except StudioError as error:
            listing.warnings.append(f"{shown}: {error}; imported without a split")
            split = None
        listing.candidates.append(Candidate(path, label, split, shown))
    return listing


def _cell(row: list[str], columns: dict[str, int], name: str) -> str:
    """The stripped value of column `name` in a CSV row; empty when the column or the cell is missing."""
    index = columns.get(name)
    return row[index].strip() if index is not None and index < len(row) else ""
