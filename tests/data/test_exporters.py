"""Export: class-folder tree plus labels.csv; export then import gives back the same labels and splits."""

from __future__ import annotations

import csv

import pytest
from helpers_images import make_image_folder

from studio.data.exporters import export_project
from studio.data.importers import import_source
from studio.data.store import Project
from studio.errors import StudioError


def snapshot(project: Project) -> dict[str, tuple[str, str | None]]:
    table = project.dataset(labeled_only=True)
    return {row.hash: (row.label, row.split) for row in table.itertuples()}


@pytest.fixture
def filled(project, tmp_path):
    root = make_image_folder(tmp_path / "src", ["cat", "dog", "owl"], 6)
    import_source(project, root)
    ids = project.dataset()["image_id"].tolist()
    project.set_split(ids[:2], "test")
    project.set_split(ids[2:3], None)  # a labeled image without a split
    project.set_label(ids[3], None)  # an unlabeled image is not exported
    return project


@pytest.mark.parametrize("split_folders", [True, False])
def test_round_trip_keeps_labels_and_splits(filled, tmp_path, split_folders):
    dest = tmp_path / "out"
    result = export_project(filled, dest, split_folders=split_folders)
    assert result["exported"] == 17 and result["unlabeled_skipped"] == 1
    with open(dest / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 17 and all((dest / row["path"]).is_file() for row in rows)
    first = rows[0]["path"].split("/")
    if split_folders:
        assert {row["path"].split("/")[0] for row in rows} == {"train", "val", "test", "unsplit"}
        assert first[1] == rows[0]["label"]
    else:
        assert first[0] == rows[0]["label"] and len(first) == 2
    with Project.create(tmp_path / "copy") as copy:
        report = import_source(copy, dest)
        assert report.layout == "csv" and report.rejected == []
        expected = snapshot(filled)
        got = snapshot(copy)
        unsplit = [h for h, (_, split) in expected.items() if split is None]
        assert len(unsplit) == 1
        assert got[unsplit[0]][0] == expected[unsplit[0]][0] and got[unsplit[0]][1] in ("train", "val")
        for digest in unsplit:
            expected.pop(digest), got.pop(digest)
        assert got == expected


def test_split_tree_imports_as_pre_split(project, tmp_path):
    make_image_folder(tmp_path / "src", ["a", "b"], 5)
    import_source(project, tmp_path / "src")
    export_project(project, tmp_path / "out")
    with Project.create(tmp_path / "copy") as copy:
        report = import_source(copy, tmp_path / "out", layout="pre-split")
        assert report.rejected == [] and report.imported == 10
        assert snapshot(copy) == snapshot(project)


def test_same_file_names_do_not_collide(project, tmp_path):
    make_image_folder(tmp_path / "one", ["a"], 2, seed=1)
    make_image_folder(tmp_path / "two", ["a"], 2, seed=2)  # same names, different pixels
    import_source(project, tmp_path / "one", val_fraction=0)
    import_source(project, tmp_path / "two", val_fraction=0)
    result = export_project(project, tmp_path / "out", split_folders=False)
    assert result["exported"] == 4
    assert len(list((tmp_path / "out" / "a").iterdir())) == 4


def test_refuses_a_non_empty_destination(project, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(StudioError, match="not an empty folder"):
        export_project(project, tmp_path / "busy")
