"""Import images into a project from a folder, a CSV or a zip of either, and report what happened.

Every file is hashed, decoded (validation) and copied once, on a small thread pool; the database gets
them in batches of `batch_size` per transaction. Files that can't be used are listed with a plain reason
and the rest imports. Labels already in the project are never overwritten: a duplicate arriving with a
different label keeps the existing one and is reported as a conflict.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from studio.data.archive import extract_zip
from studio.data.imaging import MAX_PIXELS
from studio.data.ingest import PreparedImage, prepare_image
from studio.data.layouts import LAYOUTS, Candidate, Listing, detect_layout, list_source, walk_files
from studio.data.store import Project
from studio.errors import StudioError
from studio.system import cpu_count

BATCH_SIZE = 200
MAX_LISTED_WARNINGS = 20  # conflicts beyond this are summed up in one line (all are in `conflicts`)


@dataclass
class ImportReport:
    layout: str
    imported: int = 0
    duplicates: int = 0
    rejected: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    duplicate_files: list[dict] = field(default_factory=list)  # {path, image_id}
    conflicts: list[dict] = field(default_factory=list)  # {path, image_id, kept, ignored}
    skipped: int = 0  # hidden / system files passed over quietly

    def to_dict(self) -> dict:
        return asdict(self)


def import_source(
    project: Project,
    source: str | os.PathLike,
    layout: str = "auto",
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_pixels: int = MAX_PIXELS,
    workers: int | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
    confine_csv: bool = False,
) -> ImportReport:
    """Import `source` (folder, .csv or .zip) into `project`; `layout` is auto or one of LAYOUTS.

    `confine_csv`: a CSV's rows must stay inside the CSV's folder (uploads, and a shared app).

    Images without a split afterwards get a stratified train/val split (`val_fraction`, `seed`).
    `progress(done, total)` is called after each batch.
    """
    if layout != "auto" and layout not in LAYOUTS:
        raise StudioError(f"unknown layout {layout!r}; use auto, {', '.join(LAYOUTS)}")
    if not 0.0 <= val_fraction < 1.0:
        raise StudioError(f"validation fraction must be at least 0 and below 1, got {val_fraction}")
    source = Path(source).expanduser()
    if not source.exists():
        raise StudioError(f"{source} does not exist; give a folder, a .csv or a .zip to import")
    if source.is_file() and source.suffix.lower() == ".zip":
        # Unpack inside the project's cache (same disk as images/, safe to delete), not in /tmp.
        with tempfile.TemporaryDirectory(prefix="import-", dir=project.cache_dir) as scratch:
            rejected, skipped = extract_zip(source, Path(scratch))
            root = _unwrap(Path(scratch))
            try:
                listing, chosen = _list(
                    root, layout, shown_prefix=f"{source.name}:{_relative_prefix(root, Path(scratch))}"
                )
            except StudioError as error:  # name the zip, not the scratch folder it was unpacked in
                raise StudioError(str(error).replace(str(root), f"the zip {source.name}")) from None
            listing.rejected[:0] = rejected
            listing.skipped += skipped
            return _run(
                project, listing, chosen, val_fraction, seed, max_pixels, workers, batch_size, progress
            )
    if source.is_file() and source.suffix.lower() == ".csv":
        if layout not in ("auto", "csv"):
            raise StudioError(f"{source} is a CSV; import it with --layout csv (or auto)")
        listing = list_source(source.parent, "csv", csv_path=source,
                              confine_to=source.parent if confine_csv else None)
        return _run(project, listing, "csv", val_fraction, seed, max_pixels, workers, batch_size, progress)
    if not source.is_dir():
        raise StudioError(
            f"{source} is not a folder, a .csv or a .zip; put the images in a folder and import that"
        )
    listing, chosen = _list(source, layout, confine=confine_csv)
    return _run(project, listing, chosen, val_fraction, seed, max_pixels, workers, batch_size, progress)


def _list(root: Path, layout: str, shown_prefix: str = "", confine: bool = False) -> tuple[Listing, str]:
    chosen = detect_layout(root) if layout == "auto" else layout
    listing = list_source(root, chosen, shown_prefix=shown_prefix, confine_to=root if confine else None)
    if confine:  # a symlink inside the folder must not pull in a file from elsewhere
        inside = [c for c in listing.candidates if c.path.resolve().is_relative_to(root.resolve())]
        listing.rejected += [
            {"path": c.shown, "reason": "links to a file outside the imported folder; not imported"}
            for c in listing.candidates
            if c not in inside
        ]
        listing.candidates = inside
    return listing, chosen


def _unwrap(root: Path) -> Path:
    """A zip of a folder holds one top folder: look inside it (repeatedly) for the real layout."""
    while True:
        files, _ = walk_files(root)
        entries = [p for p in root.iterdir() if not p.name.startswith(".") and p.name.lower() != "__macosx"]
        if len(entries) == 1 and entries[0].is_dir() and files:
            root = entries[0]
        else:
            return root


def _relative_prefix(root: Path, scratch: Path) -> str:
    inner = root.relative_to(scratch).as_posix()
    return "" if inner == "." else f"{inner}/"


def _run(
    project: Project,
    listing: Listing,
    layout: str,
    val_fraction: float,
    seed: int,
    max_pixels: int,
    workers: int | None,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> ImportReport:
    report = ImportReport(
        layout=layout,
        rejected=list(listing.rejected),
        warnings=list(listing.warnings),
        skipped=listing.skipped,
    )
    candidates = listing.candidates
    if not candidates and not report.rejected:
        raise StudioError("found no image files to import")
    workers = workers or min(4, cpu_count())

    def prepare(candidate: Candidate) -> PreparedImage | dict:
        try:
            return prepare_image(
                candidate.path,
                project.images_dir,
                label=candidate.label,
                split=candidate.split,
                source=candidate.shown,
                max_pixels=max_pixels,
            )
        except StudioError as error:
            return {"path": candidate.shown, "reason": str(error)}

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(candidates), batch_size):
            batch = candidates[start : start + batch_size]
            outcomes = list(pool.map(prepare, batch))
            good = [(c, o) for c, o in zip(batch, outcomes) if isinstance(o, PreparedImage)]
            report.rejected.extend(o for o in outcomes if isinstance(o, dict))
            results = project.add_images([prepared for _, prepared in good], by="import")
            for (candidate, prepared), result in zip(good, results):
                if result.is_new:
                    report.imported += 1
                else:
                    report.duplicates += 1
                    report.duplicate_files.append({"path": candidate.shown, "image_id": result.image_id})
                if result.conflict is not None:
                    report.conflicts.append(
                        {"path": candidate.shown, "image_id": result.image_id,
                         "kept": result.conflict, "ignored": prepared.label}
                    )  # fmt: skip
            if progress is not None:
                progress(min(start + batch_size, len(candidates)), len(candidates))
    report.warnings.extend(_conflict_warnings(report.conflicts))
    report.warnings.extend(project.assign_splits(val_fraction=val_fraction, seed=seed))
    unlabeled = project.info()["unlabeled"]
    if unlabeled:
        report.warnings.append(
            f"{unlabeled} image(s) in the project have no label yet; label them before training"
        )
    return report


def _conflict_warnings(conflicts: list[dict]) -> list[str]:
    lines = [
        f"{c['path']} is the same image as #{c['image_id']}, already labeled {c['kept']!r}: "
        f"kept {c['kept']!r}, ignored {c['ignored']!r}"
        for c in conflicts[:MAX_LISTED_WARNINGS]
    ]
    if len(conflicts) > MAX_LISTED_WARNINGS:
        lines.append(f"... and {len(conflicts) - MAX_LISTED_WARNINGS} more label conflicts (see `conflicts`)")
    return lines
