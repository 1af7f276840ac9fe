"""The project database schema and its migrations.

`MIGRATIONS[v]` upgrades a database from version v-1 to v; a new project is simply migrated from 0.
Later work adds a table by appending `MIGRATIONS[n + 1] = _add_something` (never edit an old one), and
every older project is upgraded in one transaction the next time it is opened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from studio.errors import StudioError


def _execute_all(conn: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it COMMITs first, which would split the migration's transaction.
    # (So: no semicolons inside the SQL comments of a migration script.)
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _create_v1(conn: sqlite3.Connection) -> None:
    _execute_all(
        conn,
        """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE images (
            id INTEGER PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,          -- sha256 of the file bytes
            ext TEXT NOT NULL,                  -- original extension, lowercased, with the dot
            size INTEGER NOT NULL,              -- bytes
            width INTEGER NOT NULL,             -- after EXIF orientation
            height INTEGER NOT NULL,
            original_name TEXT NOT NULL,
            source TEXT,                        -- where it was imported from
            added_at TEXT NOT NULL
        );
        CREATE TABLE classes (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            position INTEGER NOT NULL
        );
        CREATE TABLE labels (
            image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            class_id INTEGER NOT NULL REFERENCES classes(id) ON DELETE RESTRICT
        );
        CREATE INDEX labels_class ON labels(class_id);
        CREATE TABLE label_history (
            id INTEGER PRIMARY KEY,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            old TEXT,                           -- class name before (NULL: unlabeled)
            new TEXT,                           -- class name after (NULL: unlabeled)
            at TEXT NOT NULL,                   -- UTC ISO time
            by TEXT NOT NULL,
            undone_at TEXT                      -- set when undone, the row stays for the audit trail
        );
        CREATE INDEX label_history_image ON label_history(image_id);
        CREATE TABLE splits (
            image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            split TEXT NOT NULL CHECK (split IN ('train', 'val', 'test'))
        )
        """,
    )


def _add_curation_decisions(conn: sqlite3.Connection) -> None:
    # The expert's curation answers (`studio.curate.decisions`). IF NOT EXISTS: projects opened by an
    # earlier studio may already hold the table, created then by the curation module itself.
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS curation_decisions (
            id INTEGER PRIMARY KEY,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('label_issue', 'duplicate')),
            outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'kept', 'ambiguous', 'excluded')),
            label TEXT,
            detail TEXT NOT NULL DEFAULT '{}',
            at TEXT NOT NULL,
            by TEXT NOT NULL,
            UNIQUE (image_id, kind)
        )
        """
    )


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _create_v1,
    2: _add_curation_decisions,
}


def latest_version() -> int:
    return max(MIGRATIONS)


def read_version(conn: sqlite3.Connection) -> int:
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    if not has_meta:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to the latest version in one transaction; returns the version it started at."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        start = read_version(conn)
        target = latest_version()
        if start > target:
            raise StudioError(
                f"this project was written by a newer studio (schema version {start}, this studio knows "
                f"up to {target}); upgrade the studio to open it"
            )
        for version in range(start + 1, target + 1):
            MIGRATIONS[version](conn)
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (str(version),),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return start
