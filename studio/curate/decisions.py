"""The expert's curation decisions, stored in the project database (table `curation_decisions`).

One row per (image, kind of review): `label_issue` (accepted / kept / ambiguous / excluded) or
`duplicate` (kept / excluded). A decided item is not asked again; a new decision of the same kind
replaces the old one. Nothing is deleted: an excluded image keeps its file and its label and is only
left out of training (`excluded_image_ids`), and `clear` brings it back.

The table is created by the store's schema migration 2 (`studio/data/schema.py`): every `Project`
passed here was opened through the store, which migrates older projects on open. Every query runs in
the store's own transactions (`Project.transaction` / `Project.reading`), under its lock; a decision
recorded inside a caller's `project.transaction()` commits together with the label change it causes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import pandas as pd

from studio.data.store import Project
from studio.errors import StudioError

KINDS = ("label_issue", "duplicate")
OUTCOMES = ("accepted", "kept", "ambiguous", "excluded")
# The expert's answers to a label issue (the Curate tab's buttons, `studio review`'s choices) -> outcome.
REVIEW_DECISIONS = {"accept": "accepted", "keep": "kept", "ambiguous": "ambiguous", "exclude": "excluded"}

COLUMNS = ["image_id", "kind", "outcome", "label", "detail", "at", "by"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _check(kind: str, outcome: str) -> None:
    if kind not in KINDS:
        raise StudioError(f"decision kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if outcome not in OUTCOMES:
        raise StudioError(f"decision must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    if kind == "duplicate" and outcome not in ("kept", "excluded"):
        raise StudioError(f"a duplicate is either kept or excluded, not {outcome!r}")


def record(project: Project, image_ids: Sequence[int], kind: str, outcome: str, *, by: str = "user",
           detail: dict | None = None) -> None:
    """Store one decision for each image, all in one transaction (replacing earlier ones of this kind)."""
    record_many(project, [(int(i), outcome) for i in image_ids], kind, by=by, detail=detail)


def record_many(project: Project, items: Iterable[tuple[int, str]], kind: str, *, by: str = "user",
                detail: dict | None = None) -> None:
    """(image_id, outcome) pairs of one kind in one transaction: a duplicate group resolved at once."""
    items = [(int(i), outcome) for i, outcome in items]
    for _, outcome in items:
        _check(kind, outcome)
    text = json.dumps(detail or {}, sort_keys=True, default=str)
    with project.transaction() as conn:
        now = _now()
        for image_id, outcome in items:
            row = conn.execute(
                "SELECT c.name FROM images i LEFT JOIN labels l ON l.image_id = i.id "
                "LEFT JOIN classes c ON c.id = l.class_id WHERE i.id=?", (image_id,)
            ).fetchone()
            if row is None:
                raise StudioError(f"no image with id {image_id} in this project (see `studio info`)")
            conn.execute(
                "INSERT INTO curation_decisions(image_id, kind, outcome, label, detail, at, by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(image_id, kind) DO UPDATE SET "
                "outcome=excluded.outcome, label=excluded.label, detail=excluded.detail, "
                "at=excluded.at, by=excluded.by",
                (image_id, kind, outcome, row[0], text, now, by),
            )


def clear(project: Project, image_ids: Sequence[int], kind: str | None = None) -> int:
    """Forget decisions (of one kind, or all): the images are asked about, and trained on, again."""
    if kind is not None and kind not in KINDS:
        raise StudioError(f"decision kind must be one of {', '.join(KINDS)}, got {kind!r}")
    ids = [int(i) for i in image_ids]
    with project.transaction() as conn:
        removed = 0
        for image_id in ids:
            if kind is None:
                cursor = conn.execute("DELETE FROM curation_decisions WHERE image_id=?", (image_id,))
            else:
                cursor = conn.execute("DELETE FROM curation_decisions WHERE image_id=? AND kind=?",
                                      (image_id, kind))
            removed += cursor.rowcount
        return removed


def decisions(project: Project, kind: str | None = None) -> pd.DataFrame:
    """All stored decisions (columns COLUMNS, `detail` parsed to a dict), ordered by image id."""
    with project.reading() as conn:
        query = "SELECT image_id, kind, outcome, label, detail, at, by FROM curation_decisions"
        rows = conn.execute(query + (" WHERE kind=?" if kind else "") + " ORDER BY image_id, kind",
                            (kind,) if kind else ()).fetchall()
    frame = pd.DataFrame(rows, columns=COLUMNS, dtype=object)  # object: a missing label stays None
    frame["detail"] = [json.loads(text) for text in frame["detail"]]
    return frame.astype({"image_id": "int64"})


def decided_ids(project: Project, kind: str) -> set[int]:
    """Images that already have a decision of this kind (not to be asked again)."""
    with project.reading() as conn:
        rows = conn.execute("SELECT image_id FROM curation_decisions WHERE kind=?", (kind,)).fetchall()
    return {row[0] for row in rows}


def excluded_image_ids(project: Project, *, ambiguous: bool = False) -> set[int]:
    """Images the expert excluded from training (by any review); with `ambiguous`, those marked so too.

    The engine should drop these from its training (and validation) snapshot. Ambiguous images keep
    their label (the expert's best guess) and are trained on unless `ambiguous=True`.
    """
    return project.excluded_image_ids(ambiguous=ambiguous)
