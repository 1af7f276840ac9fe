"""The project store: one folder holding `project.db` (SQLite) and content-addressed image copies.

Durability choices:
- WAL journal, foreign keys on, every write one `BEGIN IMMEDIATE` transaction (taking the write lock up
  front, so two processes queue on busy_timeout instead of failing half-way with SQLITE_BUSY).
- synchronous=FULL: WAL+NORMAL already survives kill -9 (the WAL is in the OS cache), but can lose the
  last commits on power loss. Labels are hand-made work and label writes are few and small, so the extra
  fsync per commit is worth it; bulk import batches ~200 images per commit to keep that cost low.
- Thread safety: one connection guarded by an RLock. Every public method holds the lock for its whole
  transaction, so a `Project` can be shared by the UI, the trainer service and import threads.
- Every access to `project.db` goes through a `Project` (curation decisions too): `transaction()` is
  the public write transaction, and transactions nest, so several store calls made inside one (a relabel
  and the decision that caused it) commit together or not at all.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from studio.data import schema
from studio.data.imaging import MAX_PIXELS
from studio.data.ingest import PreparedImage, prepare_image
from studio.data.splits import SPLITS, plan_splits
from studio.durable import remove_stale_temp_files
from studio.errors import StudioError

DB_NAME = "project.db"
BUSY_TIMEOUT_S = 30.0
IMPORT_BY = "import"  # the label history's `by` for labels an import set (the CLI's undo skips them)
DATASET_COLUMNS = [
    "image_id", "hash", "path", "label", "split", "width", "height", "original_name", "source",
]  # fmt: skip


# pandas' copy-on-write (always on from pandas 3): a shallow copy of the cached dataset frame is as safe
# to hand out as a deep one (a caller's change copies what it changes), and costs nothing at 20,000 rows.
_COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3 or bool(pd.options.mode.copy_on_write)


@dataclass(frozen=True)
class AddResult:
    image_id: int
    is_new: bool
    label: str | None  # the label the image has after the add
    conflict: str | None = None  # an existing label kept instead of a different incoming one


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _frame(rows: Sequence[tuple], columns: Sequence[str], ints: Sequence[str]) -> pd.DataFrame:
    """A DataFrame whose text columns keep None for missing values (pandas would turn them into NaN)."""
    values = list(zip(*rows)) if rows else [()] * len(columns)
    return pd.DataFrame(
        {
            name: pd.Series(column, dtype="int64" if name in ints else object)
            for name, column in zip(columns, values)
        }
    )


def _check_class_name(name: str) -> str:
    # NFC: 'café' typed (one code point for é) and from a macOS folder name or zip (e + a combining accent)
    # must be one class, not two that look alike.
    clean = unicodedata.normalize("NFC", name.strip()) if isinstance(name, str) else ""
    if not clean:
        raise StudioError("a class name cannot be empty")
    # It becomes a folder name on export (on Windows too) and is shown in every tab: no path or
    # markup characters, no control characters.
    if (clean in (".", "..") or any(c in clean for c in '/\\<>:"|?*') or len(clean) > 100
            or any(ord(c) < 32 or ord(c) == 127 for c in clean)):
        raise StudioError(
            f"class name {name!r} is not allowed: use up to 100 characters without / \\ < > : \" | ? * "
            "or control characters (it becomes a folder name on export)"
        )
    return clean


check_class_name = _check_class_name  # public: upload labels become folder names (studio.ui.importing)


def _check_split(split: str | None) -> str | None:
    if split is not None and split not in SPLITS:
        raise StudioError(f"split must be one of train, val, test or None, got {split!r}")
    return split


class Project:
    """A studio project folder. Open with `Project.open`, `Project.create` or `Project.open_or_create`."""

    def __init__(self, root: str | Path, _connection: sqlite3.Connection):
        self.root = Path(root).resolve()
        self.images_dir = self.root / "images"
        self.runs_dir = self.root / "runs"
        self.cache_dir = self.root / "cache"
        self._conn: sqlite3.Connection | None = _connection
        self._lock = threading.RLock()
        self._depth = 0  # transactions open on the thread holding the lock (nested ones join the outer)
        # dataset() frames by labeled_only, valid while `_revision()` is unchanged (a large project's
        # full read costs ~100 ms; the Label tab reads it on every click).
        self._dataset_cache: dict[bool, tuple[tuple[int, int], pd.DataFrame]] = {}
        self._writes = 0

    # ---- opening and closing -------------------------------------------------------------------

    @classmethod
    def create(cls, root: str | Path) -> Project:
        root = Path(root)
        if (root / DB_NAME).exists():
            raise StudioError(f"{root} is already a studio project; open it instead")
        if root.exists() and not root.is_dir():
            raise StudioError(f"{root} is a file; choose a folder name for the new project")
        if root.exists() and any(root.iterdir()):
            raise StudioError(f"{root} is not empty; choose a new or empty folder for the project")
        root.mkdir(parents=True, exist_ok=True)
        return cls._connect(root)

    @classmethod
    def open(cls, root: str | Path) -> Project:
        root = Path(root)
        if not (root / DB_NAME).is_file():
            raise StudioError(
                f"{root} is not a studio project (no {DB_NAME}); create one with `studio new {root}`"
            )
        return cls._connect(root)

    @classmethod
    def open_or_create(cls, root: str | Path) -> Project:
        return cls.open(root) if (Path(root) / DB_NAME).is_file() else cls.create(root)

    @classmethod
    def _connect(cls, root: Path) -> Project:
        for folder in ("images", "runs", "cache"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(root)
        conn = sqlite3.connect(
            root / DB_NAME, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            schema.migrate(conn)
        except BaseException as error:
            conn.close()
            if isinstance(error, sqlite3.DatabaseError):
                raise StudioError(
                    f"cannot open {root / DB_NAME}: {error}; is it a studio project?"
                ) from error
            raise
        return cls(root, conn)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Project({str(self.root)!r})"

    def transaction(self):
        """One write transaction holding both the thread lock and SQLite's write lock (a context manager
        yielding the connection).

        Store calls made inside it (on this thread) join it: everything commits when the outermost
        block ends, and an exception anywhere inside rolls all of it back."""
        return self._open("BEGIN IMMEDIATE", write=True)

    def reading(self):
        """A read transaction: a consistent snapshot across several queries (and store calls) inside it."""
        return self._open("BEGIN", write=False)

    _write, _read = transaction, reading

    @contextmanager
    def _open(self, begin: str, *, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            if self._depth:  # inside an open transaction: join it
                self._depth += 1
                try:
                    yield conn
                finally:
                    self._depth -= 1
                return
            conn.execute(begin)
            self._depth = 1
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK" if write else "COMMIT")
                raise
            else:
                conn.execute("COMMIT")
            finally:
                self._depth = 0
                if write:  # committed or rolled back: a dataset frame cached meanwhile may be stale
                    self._writes += 1

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StudioError(f"project {self.root} is closed; open it again")
        return self._conn

    # ---- classes -------------------------------------------------------------------------------

    def classes(self) -> list[str]:
        with self._read() as conn:
            return [row[0] for row in conn.execute("SELECT name FROM classes ORDER BY position, id")]

    def add_class(self, name: str) -> str:
        """Add a class (no-op if it exists, names are case-insensitive); returns its stored name."""
        with self._write() as conn:
            return self._class_name(conn, self._ensure_class(conn, name))

    def rename_class(self, old: str, new: str) -> None:
        new = _check_class_name(new)
        with self._write() as conn:
            class_id = self._require_class(conn, old)
            other = self._find_class(conn, new)
            if other is not None and other != class_id:
                raise StudioError(f"class {new!r} already exists; merge {old!r} into it instead of renaming")
            old_name = self._class_name(conn, class_id)
            conn.execute("UPDATE classes SET name=? WHERE id=?", (new, class_id))
            # A rename is not a label change: history keeps pointing at the same class, so undo works.
            conn.execute("UPDATE label_history SET old=? WHERE old=?", (new, old_name))
            conn.execute("UPDATE label_history SET new=? WHERE new=?", (new, old_name))

    def merge_classes(self, sources: Sequence[str], target: str, *, by: str = "user") -> int:
        """Relabel every image of `sources` as `target` (created if new); returns images relabeled."""
        if isinstance(sources, str):
            sources = [sources]
        with self._write() as conn:
            source_ids = [self._require_class(conn, name) for name in sources]
            target_id = self._ensure_class(conn, target)
            moved = 0
            for source_id in dict.fromkeys(source_ids):
                if source_id == target_id:
                    continue
                images = [
                    row[0]
                    for row in conn.execute("SELECT image_id FROM labels WHERE class_id=?", (source_id,))
                ]
                moved += self._apply_labels(conn, [(image_id, target_id) for image_id in images], by)
                conn.execute("DELETE FROM classes WHERE id=?", (source_id,))
            return moved

    def delete_class(self, name: str, *, by: str = "user") -> int:
        """Delete a class; its images stay in the project, unlabeled. Returns images unlabeled."""
        with self._write() as conn:
            class_id = self._require_class(conn, name)
            images = [
                row[0] for row in conn.execute("SELECT image_id FROM labels WHERE class_id=?", (class_id,))
            ]
            count = self._apply_labels(conn, [(image_id, None) for image_id in images], by)
            conn.execute("DELETE FROM classes WHERE id=?", (class_id,))
            return count

    def _find_class(self, conn: sqlite3.Connection, name: str) -> int | None:
        # Both forms: names stored before they were normalized to NFC may be decomposed.
        name = name.strip()
        forms = (unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name))
        row = conn.execute("SELECT id FROM classes WHERE name IN (?, ?) ORDER BY id", forms).fetchone()
        return row[0] if row else None

    def _require_class(self, conn: sqlite3.Connection, name: str) -> int:
        class_id = self._find_class(conn, name)
        if class_id is None:
            known = (
                ", ".join(r[0] for r in conn.execute("SELECT name FROM classes ORDER BY position")) or "none"
            )
            raise StudioError(f"no class named {name!r} (classes: {known})")
        return class_id

    def _ensure_class(self, conn: sqlite3.Connection, name: str) -> int:
        name = _check_class_name(name)
        class_id = self._find_class(conn, name)
        if class_id is None:
            cursor = conn.execute(
                "INSERT INTO classes(name, position) "
                "VALUES (?, (SELECT COALESCE(MAX(position), -1) + 1 FROM classes))",
                (name,),
            )
            class_id = cursor.lastrowid
        return class_id

    def _class_name(self, conn: sqlite3.Connection, class_id: int) -> str:
        return conn.execute("SELECT name FROM classes WHERE id=?", (class_id,)).fetchone()[0]

    # ---- labels and history --------------------------------------------------------------------

    def set_label(self, image_id: int, label: str | None, by: str = "user", *,
                  new_classes: bool = True) -> bool:
        """Label one image (None: remove its label); a new class name creates the class unless
        `new_classes` is False (then StudioError naming the classes there are).

        The split is left as it is. Returns True when the label changed.
        """
        return self.set_labels([(image_id, label)], by=by, new_classes=new_classes) > 0

    def set_labels(self, pairs: Iterable[tuple[int, str | None]], by: str = "user", *,
                   new_classes: bool = True) -> int:
        """Set many labels in one transaction; returns the number of labels that changed. A new class name
        creates the class unless `new_classes` is False (the app: callers who may not edit classes)."""
        pairs = list(pairs)
        with self._lock:
            before = self._revision(self._connection())
            with self._write() as conn:
                resolved = []
                for image_id, label in pairs:
                    self._require_image(conn, image_id)
                    if label is not None and not new_classes and self._find_class(conn, label) is None:
                        known = ", ".join(r[0] for r in conn.execute(
                            "SELECT name FROM classes ORDER BY position")) or "none yet"
                        raise StudioError(f"there is no class {label.strip()!r} (classes: {known}); only an "
                                          "owner can add a class")
                    resolved.append(
                        (int(image_id), None if label is None else self._ensure_class(conn, label))
                    )
                changed = self._apply_labels(conn, resolved, by)
                names = {i: None if c is None else self._class_name(conn, c) for i, c in resolved}
            self._patch_dataset_labels(before, names)
            return changed

    def _patch_dataset_labels(self, before: tuple[int, int], names: dict[int, str | None]) -> None:
        """After this connection's own label write: the cached dataset frame gets the new labels instead
        of a full re-read (a click in the Label tab), unless anything else changed meanwhile."""
        self._dataset_cache.pop(True, None)  # labeled-only membership changed: read it again when asked
        cached = self._dataset_cache.pop(False, None)
        after = self._revision(self._connection())
        if cached is None or cached[0] != before or after[1] != before[1] or after[0] != before[0] + 1:
            return
        frame = cached[1]
        ids = frame["image_id"].to_numpy()  # ascending (ORDER BY i.id)
        wanted = np.fromiter(names, dtype=ids.dtype, count=len(names))
        positions = np.minimum(np.searchsorted(ids, wanted), max(len(ids) - 1, 0))
        if len(ids) == 0 or (ids[positions] != wanted).any():
            return  # an image this frame lacks: read it all again
        labels = frame["label"].to_numpy(dtype=object, copy=True)
        labels[positions] = list(names.values())
        # A new frame sharing every other column: frames handed out before keep their labels.
        self._dataset_cache[False] = (after, frame.assign(label=pd.Series(labels, frame.index, dtype=object)))

    def _apply_labels(
        self, conn: sqlite3.Connection, pairs: Sequence[tuple[int, int | None]], by: str
    ) -> int:
        """Write (image_id, class_id|None) pairs plus a history row for each real change."""
        changed = 0
        now = _now()
        for image_id, class_id in pairs:
            row = conn.execute(
                "SELECT l.class_id, c.name FROM labels l JOIN classes c ON c.id = l.class_id "
                "WHERE l.image_id=?",
                (image_id,),
            ).fetchone()
            old_id, old_name = row if row else (None, None)
            if old_id == class_id:
                continue
            if class_id is None:
                conn.execute("DELETE FROM labels WHERE image_id=?", (image_id,))
                new_name = None
            else:
                conn.execute(
                    "INSERT INTO labels(image_id, class_id) VALUES (?, ?) "
                    "ON CONFLICT(image_id) DO UPDATE SET class_id=excluded.class_id",
                    (image_id, class_id),
                )
                new_name = self._class_name(conn, class_id)
            conn.execute(
                "INSERT INTO label_history(image_id, old, new, at, by) VALUES (?, ?, ?, ?, ?)",
                (image_id, old_name, new_name, now, by),
            )
            changed += 1
        return changed

    def undo(self, n: int = 1, *, by: str | None = None, skip: Sequence[str] = ()) -> int:
        """Undo the last `n` label changes not yet undone (newest first); returns how many were undone."""
        return len(self.undo_changes(n, by=by, skip=skip))

    def undo_changes(self, n: int = 1, *, by: str | None = None, skip: Sequence[str] = ()) -> list[int]:
        """Undo the last `n` changes not yet undone (only those made `by` this user when given, and none made
        by a name in `skip`, e.g. `IMPORT_BY`); returns the image ids reverted, newest change first.

        A change someone else has since overwritten is left alone (undoing it would lose their label).
        Undone rows stay in the history, marked with the time they were undone.
        """
        if n < 0:
            raise StudioError(f"cannot undo a negative number of changes ({n})")
        with self._lock:
            before = self._revision(self._connection())
            with self._write() as conn:
                restored = self._undo_rows(conn, n, by, tuple(skip))
            self._patch_dataset_labels(before, dict(restored))  # an image undone twice: the older wins
        return [image_id for image_id, _ in restored]

    def _undo_rows(self, conn: sqlite3.Connection, n: int, by: str | None,
                   skip: tuple[str, ...] = ()) -> list[tuple[int, str | None]]:
        """Revert up to `n` changes; returns (image id, its label after that revert), newest change first."""
        restored: list[tuple[int, str | None]] = []
        query = "SELECT id, image_id, old, new FROM label_history WHERE undone_at IS NULL"
        params: tuple = ()
        if by is not None:
            query, params = query + " AND by=?", (by,)
        if skip:
            query, params = query + f" AND by NOT IN ({','.join('?' * len(skip))})", (*params, *skip)
        rows = conn.execute(query + " ORDER BY id DESC", params)
        now = _now()
        for change_id, image_id, old, new in rows.fetchall():
            if len(restored) >= n:
                break
            current = conn.execute(
                "SELECT c.name FROM labels l JOIN classes c ON c.id = l.class_id WHERE l.image_id=?",
                (image_id,),
            ).fetchone()
            if (current[0] if current else None) != new:
                continue  # overwritten since by another change
            if old is None:
                conn.execute("DELETE FROM labels WHERE image_id=?", (image_id,))
            else:  # the class may have been deleted since: bring it back
                class_id = self._ensure_class(conn, old)
                conn.execute(
                    "INSERT INTO labels(image_id, class_id) VALUES (?, ?) "
                    "ON CONFLICT(image_id) DO UPDATE SET class_id=excluded.class_id",
                    (image_id, class_id),
                )
                old = self._class_name(conn, class_id)
            conn.execute("UPDATE label_history SET undone_at=? WHERE id=?", (now, change_id))
            restored.append((int(image_id), old))
        return restored

    def label_history(self, limit: int = 100) -> pd.DataFrame:
        """Newest first: change_id, image_id, old, new, at, by, undone (bool)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, image_id, old, new, at, by, undone_at IS NOT NULL FROM label_history "
                "ORDER BY id DESC LIMIT ?",
                (int(limit),),
            ).fetchall()
        columns = ["change_id", "image_id", "old", "new", "at", "by", "undone"]
        frame = _frame(rows, columns, ints=("change_id", "image_id"))
        return frame.astype({"undone": bool})

    # ---- splits --------------------------------------------------------------------------------

    def set_split(self, image_ids: Iterable[int], split: str | None) -> None:
        split = _check_split(split)
        with self._write() as conn:
            for image_id in image_ids:
                self._require_image(conn, image_id)
                if split is None:
                    conn.execute("DELETE FROM splits WHERE image_id=?", (int(image_id),))
                else:
                    conn.execute(
                        "INSERT INTO splits(image_id, split) VALUES (?, ?) "
                        "ON CONFLICT(image_id) DO UPDATE SET split=excluded.split",
                        (int(image_id), split),
                    )

    def assign_splits(self, val_fraction: float = 0.2, seed: int = 0, *, resplit: bool = False) -> list[str]:
        """Give labeled images without a split a stratified train/val split; returns warnings. `resplit`:
        labeled train and val images are split again too (test images never move), in the same
        transaction."""
        with self._write() as conn:
            if resplit:
                conn.execute("DELETE FROM splits WHERE split IN ('train', 'val') "
                             "AND image_id IN (SELECT image_id FROM labels)")
            table = pd.DataFrame(
                conn.execute(
                    "SELECT i.id, i.hash, c.name, s.split FROM images i "
                    "JOIN labels l ON l.image_id = i.id JOIN classes c ON c.id = l.class_id "
                    "LEFT JOIN splits s ON s.image_id = i.id"
                ).fetchall(),
                columns=["image_id", "hash", "label", "split"],
            )
            plan, warnings = plan_splits(table, val_fraction=val_fraction, seed=seed)
            conn.executemany("INSERT INTO splits(image_id, split) VALUES (?, ?)", sorted(plan.items()))
        return warnings

    # ---- images --------------------------------------------------------------------------------

    def add_image_file(
        self,
        src_path: str | Path,
        *,
        label: str | None = None,
        split: str | None = None,
        source: str | None = None,
        max_pixels: int = MAX_PIXELS,
    ) -> tuple[int, bool]:
        """Validate and copy one file into the project; returns (image_id, is_new).

        A file already in the project (same bytes) is not added again and keeps its label.
        """
        prepared = prepare_image(
            src_path, self.images_dir, label=label, split=split, source=source, max_pixels=max_pixels
        )
        result = self.add_images([prepared])[0]
        return result.image_id, result.is_new

    def add_images(self, items: Sequence[PreparedImage], *, by: str = IMPORT_BY) -> list[AddResult]:
        """Record already-stored images in one transaction (the importer's batch path).

        New images get their label and split. An image already present keeps its label (a different
        incoming label is reported as `conflict`) and only gains a label or split where it had none.
        """
        results = []
        with self._write() as conn:
            for item in items:
                _check_split(item.split)
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO images"
                    "(hash, ext, size, width, height, original_name, source, added_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        item.hash,
                        item.ext,
                        item.size,
                        item.width,
                        item.height,
                        item.original_name,
                        item.source,
                        _now(),
                    ),
                )
                is_new = cursor.rowcount == 1
                image_id = conn.execute("SELECT id FROM images WHERE hash=?", (item.hash,)).fetchone()[0]
                current = self._label_of(conn, image_id)
                conflict = None
                if item.label is not None and current is None:
                    class_id = self._ensure_class(conn, item.label)
                    self._apply_labels(conn, [(image_id, class_id)], by)
                    current = self._class_name(conn, class_id)
                elif item.label is not None and current.casefold() != item.label.strip().casefold():
                    conflict = current  # the user's label wins; the incoming class is not even created
                if item.split is not None:
                    conn.execute(
                        "INSERT OR IGNORE INTO splits(image_id, split) VALUES (?, ?)", (image_id, item.split)
                    )
                results.append(AddResult(image_id, is_new, current, conflict))
        return results

    def _label_of(self, conn: sqlite3.Connection, image_id: int) -> str | None:
        row = conn.execute(
            "SELECT c.name FROM labels l JOIN classes c ON c.id = l.class_id WHERE l.image_id=?", (image_id,)
        ).fetchone()
        return row[0] if row else None

    def _require_image(self, conn: sqlite3.Connection, image_id: int) -> None:
        if not conn.execute("SELECT 1 FROM images WHERE id=?", (int(image_id),)).fetchone():
            raise StudioError(f"no image with id {image_id} in this project (see `studio info`)")

    def label_of(self, image_id: int) -> str | None:
        """The image's class as stored (None: unlabeled)."""
        with self._read() as conn:
            self._require_image(conn, image_id)
            row = conn.execute("SELECT c.name FROM labels l JOIN classes c ON c.id = l.class_id "
                               "WHERE l.image_id=?", (int(image_id),)).fetchone()
        return row[0] if row else None

    def image_path(self, image_id: int) -> Path:
        with self._read() as conn:
            row = conn.execute("SELECT hash, ext FROM images WHERE id=?", (int(image_id),)).fetchone()
        if row is None:
            raise StudioError(f"no image with id {image_id} in this project (see `studio info`)")
        return self.images_dir / f"{row[0]}{row[1]}"

    def dataset(self, labeled_only: bool = False) -> pd.DataFrame:
        """One row per image (ordered by image_id) with the columns in DATASET_COLUMNS."""
        join = "JOIN" if labeled_only else "LEFT JOIN"
        with self._read() as conn:
            revision = self._revision(conn)
            cached = self._dataset_cache.get(labeled_only)
            if cached is not None and cached[0] == revision:
                return cached[1].copy(deep=not _COPY_ON_WRITE)
            rows = conn.execute(
                "SELECT i.id, i.hash, i.ext, c.name, s.split, i.width, i.height, i.original_name, i.source "
                f"FROM images i {join} labels l ON l.image_id = i.id {join} classes c ON c.id = l.class_id "
                "LEFT JOIN splits s ON s.image_id = i.id ORDER BY i.id"
            ).fetchall()
        raw = ["image_id", "hash", "ext", "label", "split", "width", "height", "original_name", "source"]
        frame = pd.DataFrame.from_records(rows, columns=raw, coerce_float=False)
        for name in ("image_id", "width", "height"):
            frame[name] = frame[name].astype("int64")
        for name in ("hash", "ext", "label", "split", "original_name", "source"):  # None stays None, not NaN
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
        frame["path"] = (str(self.images_dir) + os.sep) + frame["hash"] + frame["ext"]
        frame = frame[DATASET_COLUMNS]
        with self._lock:
            self._dataset_cache[labeled_only] = (revision, frame)
        return frame.copy(deep=not _COPY_ON_WRITE)

    def _revision(self, conn: sqlite3.Connection) -> tuple[int, int]:
        """Changes since the project was opened: this connection's commits and (SQLite's data_version)
        those of any other connection, another process's included."""
        return self._writes, conn.execute("PRAGMA data_version").fetchone()[0]

    # ---- summaries -----------------------------------------------------------------------------

    def info(self) -> dict:
        """Totals for display and `studio info`: images, labeled, unlabeled, classes, counts, splits."""
        with self._read() as conn:
            total = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
            classes = [row[0] for row in conn.execute("SELECT name FROM classes ORDER BY position, id")]
            rows = conn.execute(
                "SELECT c.name, COALESCE(s.split, 'unsplit'), COUNT(*) FROM labels l "
                "JOIN classes c ON c.id = l.class_id LEFT JOIN splits s ON s.image_id = l.image_id "
                "GROUP BY c.name, COALESCE(s.split, 'unsplit')"
            ).fetchall()
        counts = {name: {"train": 0, "val": 0, "test": 0, "unsplit": 0} for name in classes}
        for name, split, count in rows:
            counts[name][split] = count
        labeled = sum(sum(per_split.values()) for per_split in counts.values())
        splits = {
            key: sum(per_split[key] for per_split in counts.values())
            for key in ("train", "val", "test", "unsplit")
        }
        return {
            "project": str(self.root),
            "images": total,
            "labeled": labeled,
            "unlabeled": total - labeled,
            "classes": classes,
            "counts": counts,
            "splits": splits,
        }

    def excluded_image_ids(self, *, ambiguous: bool = False) -> set[int]:
        """Images a curation review excluded (with `ambiguous`, those marked ambiguous too): left out of
        every training snapshot. The decisions themselves are `studio.curate.decisions`."""
        outcomes = ("excluded", "ambiguous") if ambiguous else ("excluded",)
        with self._read() as conn:
            rows = conn.execute(
                "SELECT DISTINCT image_id FROM curation_decisions "
                f"WHERE outcome IN ({','.join('?' * len(outcomes))})",
                outcomes,
            ).fetchall()
        return {row[0] for row in rows}
