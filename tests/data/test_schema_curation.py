"""Schema version 2 adds `curation_decisions`: new projects have it, older ones get it when opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from helpers_images import make_image

from studio.curate import decisions
from studio.data import schema
from studio.data.store import Project


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _downgrade_to_v1(db: Path) -> None:
    """Make the database what a version-1 studio left behind: no decisions table, version 1."""
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE IF EXISTS curation_decisions")
    conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    conn.commit()
    conn.close()


def _add_image(project: Project, folder: Path, label: str) -> int:
    path = folder / f"{label}.png"
    make_image(24, seed=len(label)).save(path)
    return project.add_image_file(path, label=label, split="train")[0]


def test_new_project_has_the_decisions_table(tmp_path):
    Project.create(tmp_path / "p").close()
    assert "curation_decisions" in _tables(tmp_path / "p" / "project.db")
    assert schema.latest_version() >= 2


def test_old_project_gets_the_table_on_open_and_keeps_its_data(tmp_path):
    with Project.create(tmp_path / "p") as project:
        image_id = _add_image(project, tmp_path, "cat")
    _downgrade_to_v1(tmp_path / "p" / "project.db")
    assert "curation_decisions" not in _tables(tmp_path / "p" / "project.db")
    with Project.open(tmp_path / "p") as project:
        assert schema.read_version(project._connection()) == schema.latest_version()
        assert project.dataset()["label"].tolist() == ["cat"]
        decisions.record(project, [image_id], "duplicate", "excluded")
        assert decisions.excluded_image_ids(project) == {image_id}


def test_a_table_made_by_the_earlier_curation_module_is_kept(tmp_path):
    """Before migration 2, `decisions` created the table itself: its rows must survive the upgrade."""
    with Project.create(tmp_path / "p") as project:
        image_id = _add_image(project, tmp_path, "dog")
        decisions.record(project, [image_id], "label_issue", "kept", by="alice")
    with sqlite3.connect(tmp_path / "p" / "project.db") as conn:
        conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    with Project.open(tmp_path / "p") as project:
        table = decisions.decisions(project)
        assert table[["image_id", "outcome", "by"]].values.tolist() == [[image_id, "kept", "alice"]]
