"""Importing what the browser uploaded, and summarizing import reports for display (no Gradio here).

Uploaded files arrive one per temporary folder, so they are gathered into one scratch folder first:
a CSV then finds the images uploaded with it by file name, and loose images can share a class folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from studio.data.importers import ImportReport, import_source
from studio.data.store import Project, check_class_name
from studio.errors import StudioError

REPORT_COLUMNS = ["status", "file", "detail"]


def import_uploads(
    project: Project,
    files: Sequence[str | os.PathLike],
    *,
    label: str | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Import uploaded images, zips and CSVs; returns one merged report dict (see `merge_reports`).

    Zips are imported one by one. With a CSV, the CSV's rows name the uploaded images. Otherwise the loose
    images are imported unlabeled, or all as `label` when one is given.
    """
    paths = [Path(f) for f in files or []]
    if not paths:
        raise StudioError("no files uploaded: drop images, a .zip or a .csv on the upload box first")
    zips = [p for p in paths if p.suffix.lower() == ".zip"]
    csvs = [p for p in paths if p.suffix.lower() == ".csv"]
    loose = [p for p in paths if p not in zips and p not in csvs]
    if csvs and label:
        raise StudioError("a CSV brings its own labels: clear the 'label for uploaded images' field")
    label = check_class_name(label) if label and label.strip() else None  # it becomes a folder name below
    reports = [
        import_source(project, z, "auto", val_fraction=val_fraction, seed=seed, progress=progress)
        for z in zips
    ]
    if csvs or loose:
        with tempfile.TemporaryDirectory(prefix="studio-upload-") as scratch:
            root = Path(scratch)
            folder = root / label if label else root
            folder.mkdir(parents=True, exist_ok=True)
            for path in loose:
                shutil.copyfile(path, _unique(folder / path.name))
            if csvs:
                for csv in csvs:
                    target = _unique(root / csv.name)
                    shutil.copyfile(csv, target)
                    reports.append(import_source(project, target, "csv", val_fraction=val_fraction, seed=seed,
                                                 progress=progress, confine_csv=True))
            else:
                layout = "class-folders" if folder != root else "flat"
                reports.append(import_source(project, root, layout, val_fraction=val_fraction, seed=seed,
                                             progress=progress))
    return merge_reports(reports)


def _unique(path: Path) -> Path:
    """`path`, or `name-2.ext`, ... when two uploads share a file name."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


def _file_entries(entries: list[dict]) -> list[dict]:
    """`path` keys renamed `file`: gradio_client would take any dict with a `path` for a file to download."""
    return [{("file" if key == "path" else key): value for key, value in entry.items()} for entry in entries]


def merge_reports(reports: Sequence[ImportReport]) -> dict:
    """One report dict: imported, duplicates, rejected [{file, reason}], warnings, layout,
    conflicts [{file, image_id, kept, ignored}]."""
    merged = {"imported": 0, "duplicates": 0, "rejected": [], "warnings": [], "conflicts": [], "layout": ""}
    layouts = []
    for report in reports:
        data = report.to_dict()
        merged["imported"] += data["imported"]
        merged["duplicates"] += data["duplicates"]
        merged["rejected"] += _file_entries(data["rejected"])
        merged["warnings"] += data["warnings"]
        merged["conflicts"] += _file_entries(data.get("conflicts", []))
        layouts.append(data["layout"])
    merged["layout"] = ", ".join(dict.fromkeys(layouts))
    return merged


def report_summary(report: dict) -> str:
    """One Markdown line: what the import did."""
    parts = [f"**{report['imported']}** imported"]
    parts.append(f"**{report['duplicates']}** duplicates skipped")
    parts.append(f"**{len(report['rejected'])}** rejected")
    if report.get("conflicts"):
        parts.append(f"**{len(report['conflicts'])}** label conflicts (existing labels kept)")
    layout = f" (layout: {report['layout']})" if report.get("layout") else ""
    return "Import finished" + layout + ": " + ", ".join(parts) + "."


def report_table(report: dict) -> pd.DataFrame:
    """Rows worth a look: rejected files with their reasons, conflicts and warnings."""
    rows = [("rejected", r.get("file", ""), r.get("reason", "")) for r in report.get("rejected", [])]
    rows += [
        ("label conflict", c.get("file", ""), f"kept {c.get('kept')!r}, ignored {c.get('ignored')!r}")
        for c in report.get("conflicts", [])
    ]
    rows += [("warning", "", text) for text in report.get("warnings", [])]
    return pd.DataFrame(rows, columns=REPORT_COLUMNS)
