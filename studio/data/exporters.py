"""Export a project's labeled images as a class-folder tree plus `labels.csv` (path,label,split).

`labels.csv` carries every label and split, so importing the exported folder (auto layout picks the CSV)
gives back exactly the same labels and splits, with or without split folders.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from studio.data.store import Project
from studio.errors import StudioError, cannot_create

UNSPLIT_FOLDER = "unsplit"  # labeled images that have no split yet, when exporting with split folders


def export_project(project: Project, dest: str | Path, *, split_folders: bool = True) -> dict:
    """Copy labeled images to `dest/<split>/<class>/` (or `dest/<class>/`) and write `dest/labels.csv`.

    `dest` must be new or empty. Unlabeled images are not exported (they are counted in the result).
    Returns {dest, exported, unlabeled_skipped, classes, csv}.
    """
    dest = Path(dest).expanduser()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise StudioError(
            f"{dest} already exists and is not an empty folder; choose a new folder to export to"
        )
    table = project.dataset()
    labeled = table[table["label"].notna()]
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise cannot_create(dest, error) from None
    used: set[str] = set()
    rows = []
    for record in labeled.itertuples(index=False):
        folder = Path(record.split or UNSPLIT_FOLDER, record.label) if split_folders else Path(record.label)
        relative = _unique_name(folder, record.original_name, record.hash, used)
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(record.path, target)
        rows.append((relative.as_posix(), record.label, record.split or ""))
    csv_path = dest / "labels.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    return {
        "dest": str(dest),
        "exported": len(rows),
        "unlabeled_skipped": int(len(table) - len(labeled)),
        "classes": project.classes(),
        "csv": str(csv_path),
    }


def _unique_name(folder: Path, original_name: str, digest: str, used: set[str]) -> Path:
    """Keep the original file name; add a short hash when two images in a folder share one."""
    name = Path(original_name).name or f"{digest[:12]}"
    candidate = folder / name
    if candidate.as_posix().lower() in used:
        stem, suffix = Path(name).stem, Path(name).suffix
        candidate = folder / f"{stem}-{digest[:12]}{suffix}"
    used.add(candidate.as_posix().lower())
    return candidate
