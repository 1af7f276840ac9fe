"""The stored curation analysis: one pass over a project whose results outlive it, for `studio curate`,
the service's curate job and the Curate tab alike.

`analyse(project)` runs `studio.curate.report.curate`, adds the embedding map's coordinates and writes
`cache/curate/report.json` (atomically) and `cache/curate/features.npz` (the flip-averaged features it
used, for active learning), so a reopened Curate tab shows the last analysis, wherever it was run,
without loading a backbone. Features come from the engine's cache: a second pass only extracts images
added since. Heavy modules are imported when a pass runs, so reading a stored report stays cheap.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studio.durable import atomic_write_bytes, atomic_write_json

CURATE_FOLDER = "curate"  # under the project's cache folder (safe to delete: Analyse writes it again)
REPORT_FILE = "report.json"
FEATURES_FILE = "features.npz"


def curation_folder(project_root: str | Path) -> Path:
    return Path(project_root) / "cache" / CURATE_FOLDER


def analyse(project: Any, features: Any = None, *, backbone: str | None = None, weights: str | None = None,
            device: str = "auto", label_issue_limit: int | None = None,
            should_stop: Callable[[], bool] | None = None, on_batch: Callable[[int, int], None] | None = None,
            on_stage: Callable[[str, str], None] | None = None) -> dict[str, Any] | None:
    """One curation pass, stored; returns the report, or None (nothing stored) when `should_stop` said
    stop during feature extraction. `on_stage(name, message)` hears each stage start (the job's stages)."""
    from studio.curate import features as curate_features
    from studio.curate.embedding import embedding_frame
    from studio.curate.report import curate

    started = time.perf_counter()
    if features is None:
        if on_stage is not None:
            on_stage("features",
                     f"Extracting {backbone or 'default backbone'} features (cached ones are reused).")
        features = curate_features.project_features(project, backbone or None, weights=weights, device=device,
                                                    should_stop=should_stop, on_batch=on_batch)
    if should_stop is not None and should_stop():
        return None
    if on_stage is not None:
        on_stage("analysis", "Looking for near-duplicates, label issues and outliers.")
    report = curate(project, features, label_issue_limit=label_issue_limit)
    frame = embedding_frame(project, features)
    report["embedding"] = {"image_id": frame["image_id"].tolist(), "x": frame["x"].tolist(),
                           "y": frame["y"].tolist()}
    report["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["seconds"] = round(time.perf_counter() - started, 2)
    folder = curation_folder(project.root)
    folder.mkdir(parents=True, exist_ok=True)
    _save_features(folder / FEATURES_FILE, features)
    atomic_write_json(folder / REPORT_FILE, report)
    return report


def curation_summary(report: dict[str, Any]) -> dict[str, Any]:
    """Counts of what a report found (the job's result and the UI's headline)."""
    return {
        "backbone": report.get("backbone"),
        "images": report.get("images", 0),
        "excluded": report.get("excluded", 0),
        "duplicate_groups": len(report.get("duplicates", [])),
        "leakage_groups": sum(1 for g in report.get("duplicates", []) if g.get("leakage")),
        "leakage_pairs": len(report.get("leakage", [])),
        "label_issues": sum(1 for i in report.get("label_issues", []) if i.get("flagged", True)),
        "labels_ranked": len(report.get("label_issues", [])),
        "outliers": len(report.get("outliers", [])),
        "warnings": len(report.get("warnings", [])),
        "finished_at": report.get("finished_at"),
        "seconds": report.get("seconds"),
    }


def read_curation_report(project_root: str | Path) -> dict[str, Any] | None:
    """The last curation report of the project, or None if it was never analysed (or the file is bad)."""
    path = curation_folder(project_root) / REPORT_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


def read_curation_features(project_root: str | Path):
    """The FeatureSet the last curation pass used, or None."""
    import numpy as np

    from studio.curate.features import FeatureSet

    path = curation_folder(project_root) / FEATURES_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            return FeatureSet(data["image_ids"], data["features"], str(data["backbone"]))
    except (OSError, ValueError, KeyError):
        return None


def _save_features(path: Path, features: Any) -> None:
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, image_ids=features.image_ids, features=features.features, backbone=features.backbone)
    atomic_write_bytes(path, buffer.getvalue())
