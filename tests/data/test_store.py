"""Project store: layout on disk, classes, labels, history and undo, splits, summaries, threads,
migrations."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from helpers_images import make_image

from studio.data import schema
from studio.data.store import DATASET_COLUMNS, Project
from studio.errors import StudioError


def add_images(
    project: Project, tmp_path: Path, labels: list[str | None], *, start_seed: int = 0
) -> list[int]:
    ids = []
    for index, label in enumerate(labels):
        path = tmp_path / "src" / f"IMG_{start_seed + index}.JPG"
        path.parent.mkdir(parents=True, exist_ok=True)
        make_image(24, seed=start_seed + index).save(path, "JPEG")
        image_id, is_new = project.add_image_file(path, label=label)
        assert is_new
        ids.append(image_id)
    return ids


def test_project_folder_layout_and_pragmas(project):
    assert (project.root / "project.db").is_file()
    for folder in (project.images_dir, project.runs_dir, project.cache_dir):
        assert folder.is_dir()
    conn = sqlite3.connect(project.root / "project.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
        schema.latest_version()
    )
    conn.close()
    conn = project._connection()
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_open_create_errors(tmp_path):
    with pytest.raises(StudioError, match="not a studio project"):
        Project.open(tmp_path / "nothing")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(StudioError, match="not empty"):
        Project.create(tmp_path / "full")
    Project.create(tmp_path / "p").close()
    with pytest.raises(StudioError, match="already a studio project"):
        Project.create(tmp_path / "p")
    with Project.open_or_create(tmp_path / "p") as project:
        assert project.classes() == []
    project.close()  # closing twice is fine
    with pytest.raises(StudioError, match="closed"):
        project.classes()


def test_add_image_file_copies_by_hash_and_keeps_metadata(project, tmp_path):
    source = tmp_path / "Photo.JPG"
    make_image((30, 20), seed=1).save(source, "JPEG")
    image_id, is_new = project.add_image_file(source, label="cat")
    assert is_new
    stored = project.image_path(image_id)
    assert stored.parent == project.images_dir and stored.suffix == ".jpg"
    assert stored.read_bytes() == source.read_bytes()
    row = project.dataset().iloc[0]
    assert list(project.dataset().columns) == DATASET_COLUMNS
    assert (row.original_name, row.source, row.width, row.height, row.label) == (
        "Photo.JPG",
        str(source),
        30,
        20,
        "cat",
    )
    assert row.path == str(stored) and len(row.hash) == 64
    again = tmp_path / "copy.jpg"
    again.write_bytes(source.read_bytes())
    assert project.add_image_file(again, label="dog") == (image_id, False)
    assert project.dataset()["label"].tolist() == ["cat"]  # existing label is kept
    with pytest.raises(StudioError, match="no image with id"):
        project.image_path(999)


def test_unusable_file_is_not_added(project, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    with pytest.raises(StudioError, match="not an image"):
        project.add_image_file(bad)
    assert project.info()["images"] == 0


def test_labels_history_and_undo(project, tmp_path):
    a, b, c = add_images(project, tmp_path, [None, None, None])
    assert project.set_label(a, "cat") is True
    assert project.set_label(a, "cat") is False  # no change, no history row
    assert project.set_labels([(b, "dog"), (c, "cat")], by="alice") == 2
    project.set_label(a, "dog", by="bob")
    history = project.label_history()
    assert history[["image_id", "old", "new", "by"]].values.tolist() == [
        [a, "cat", "dog", "bob"],
        [c, None, "cat", "alice"],
        [b, None, "dog", "alice"],
        [a, None, "cat", "user"],
    ]
    assert not history["undone"].any()
    assert project.undo(2) == 2
    labels = dict(zip(project.dataset()["image_id"], project.dataset()["label"]))
    assert labels == {a: "cat", b: "dog", c: None}
    assert project.label_history()["undone"].tolist() == [True, True, False, False]
    assert project.undo(10) == 2
    assert project.dataset()["label"].isna().all()
    assert project.undo() == 0
    with pytest.raises(StudioError, match="no image with id"):
        project.set_label(12345, "cat")


def test_class_order_rename_merge_delete_keep_images(project, tmp_path):
    ids = add_images(project, tmp_path, ["cat", "dog", "dog", "bird"])
    assert project.classes() == ["cat", "dog", "bird"]
    assert project.add_class("Cat") == "cat"  # names are case-insensitive
    project.rename_class("dog", "puppy")
    assert project.classes() == ["cat", "puppy", "bird"]
    with pytest.raises(StudioError, match="merge"):
        project.rename_class("puppy", "cat")
    assert project.merge_classes(["puppy", "bird"], "cat") == 3
    assert project.classes() == ["cat"]
    assert project.dataset()["label"].tolist() == ["cat"] * 4
    assert project.delete_class("cat") == 4
    assert project.classes() == []
    info = project.info()
    assert (info["images"], info["labeled"], info["unlabeled"]) == (4, 0, 4)
    # everything a rename/merge/delete did to labels is in the history and can be undone
    assert project.undo(7) == 7
    assert dict(zip(project.dataset()["image_id"], project.dataset()["label"])) == dict(
        zip(ids, ["cat", "puppy", "puppy", "bird"])
    )
    with pytest.raises(StudioError, match="no class named"):
        project.delete_class("unicorn")
    with pytest.raises(StudioError, match="not allowed"):
        project.add_class("a/b")


def test_set_label_keeps_split_and_assign_splits_places_new_images(project, tmp_path):
    ids = add_images(project, tmp_path, [None] * 6)
    assert project.assign_splits() == []  # unlabeled images get no split
    assert project.dataset()["split"].isna().all()
    project.set_labels([(i, "cat") for i in ids[:3]] + [(i, "dog") for i in ids[3:]])
    warnings = project.assign_splits(val_fraction=0.2, seed=0)
    assert any("'cat' has only 3" in w for w in warnings)
    table = project.dataset()
    assert table["split"].notna().all()
    assert set(table.groupby("label")["split"].apply(lambda s: (s == "val").sum())) == {1}
    before = table.set_index("image_id")["split"].to_dict()
    project.set_label(ids[0], "dog")
    assert project.dataset().set_index("image_id")["split"].to_dict() == before  # set_label keeps the split
    project.set_split(ids[:2], "test")
    project.set_split([ids[2]], None)
    table = project.dataset().set_index("image_id")
    assert table.loc[ids[0], "split"] == "test" and table.loc[ids[2], "split"] is None
    with pytest.raises(StudioError, match="split must be"):
        project.set_split(ids, "holdout")


def test_info_counts(project, tmp_path):
    ids = add_images(project, tmp_path, ["cat", "cat", "dog", None])
    project.set_split(ids[:1], "val")
    project.set_split(ids[1:3], "train")
    info = project.info()
    assert info["images"] == 4 and info["labeled"] == 3 and info["unlabeled"] == 1
    assert info["classes"] == ["cat", "dog"]
    assert info["counts"] == {
        "cat": {"train": 1, "val": 1, "test": 0, "unsplit": 0},
        "dog": {"train": 1, "val": 0, "test": 0, "unsplit": 0},
    }


def test_project_is_safe_to_share_between_threads(project, tmp_path):
    ids = add_images(project, tmp_path, [None] * 8)
    errors = []

    def worker(index: int) -> None:
        try:
            for round_ in range(15):
                project.set_label(ids[(index + round_) % len(ids)], f"class{index}", by=f"t{index}")
                project.info()
                project.dataset()
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # every image's history is an unbroken chain ending at its current label: no lost or torn writes
    history = project.label_history(limit=1000).sort_values("change_id")
    labels = project.dataset().set_index("image_id")["label"].to_dict()
    for image_id, rows in history.groupby("image_id"):
        assert rows["old"].tolist()[1:] == rows["new"].tolist()[:-1]
        assert rows["new"].tolist()[-1] == labels[image_id]
    assert project.info()["labeled"] == 8


def test_old_version_database_is_migrated(tmp_path, monkeypatch):
    with Project.create(tmp_path / "p") as project:
        add_images(project, tmp_path, ["cat"])

    def add_notes_table(conn):
        conn.execute("CREATE TABLE notes (image_id INTEGER REFERENCES images(id), text TEXT)")
        conn.execute("INSERT INTO notes SELECT id, 'migrated' FROM images")

    monkeypatch.setitem(schema.MIGRATIONS, schema.latest_version() + 1, add_notes_table)
    with Project.open(tmp_path / "p") as project:
        conn = project._connection()
        assert conn.execute("SELECT text FROM notes").fetchall() == [("migrated",)]
        assert schema.read_version(conn) == schema.latest_version()
        assert project.dataset()["label"].tolist() == ["cat"]  # old data intact


def test_failed_migration_leaves_the_database_untouched(tmp_path, monkeypatch):
    Project.create(tmp_path / "p").close()
    version = schema.latest_version()

    def broken(conn):
        conn.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    monkeypatch.setitem(schema.MIGRATIONS, version + 1, broken)
    with pytest.raises(RuntimeError):
        Project.open(tmp_path / "p")
    monkeypatch.delitem(schema.MIGRATIONS, version + 1)
    with Project.open(tmp_path / "p") as project:
        conn = project._connection()
        assert schema.read_version(conn) == version
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name='half_done'").fetchone()


def test_newer_database_is_refused(tmp_path):
    Project.create(tmp_path / "p").close()
    conn = sqlite3.connect(tmp_path / "p" / "project.db")
    conn.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StudioError, match="newer studio"):
        Project.open(tmp_path / "p")
