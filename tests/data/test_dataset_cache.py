"""Project.dataset() is read once per change: every write (here or from another connection or process)
shows in the next read, and a caller changing its frame does not change the next one."""

from __future__ import annotations

import pandas as pd
from helpers_images import make_image

from studio.data.store import DATASET_COLUMNS, Project


def _project(tmp_path, n=4) -> Project:
    project = Project.create(tmp_path / "p")
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        make_image(16, seed=i).save(path)
        project.add_image_file(path, label="cat" if i % 2 else None, split="train" if i % 2 else None)
    return project


def test_every_write_shows_in_the_next_read(tmp_path):
    with _project(tmp_path) as project:
        first = project.dataset()
        assert list(first.columns) == DATASET_COLUMNS and first["label"].tolist() == [
            None,
            "cat",
            None,
            "cat",
        ]
        assert first["split"].tolist()[0] is None  # missing text stays None, not NaN
        assert first["path"].tolist()[1] == str(project.image_path(int(first["image_id"][1])))
        project.set_label(int(first["image_id"][0]), "dog")
        assert project.dataset()["label"].tolist()[0] == "dog"
        project.set_split([int(first["image_id"][0])], "val")
        assert project.dataset(labeled_only=True)["split"].tolist()[0] == "val"
        project.undo(1)  # the split is kept; the label goes back
        assert project.dataset()["label"].tolist()[0] is None
        project.dataset()
        project.set_labels([(int(first["image_id"][1]), None), (int(first["image_id"][2]), "owl")])
        patched = project.dataset()  # the label write patched the cached frame
        assert patched["label"].tolist()[1] is None and patched["label"].tolist()[2] == "owl"
        with Project.open(project.root) as fresh:  # the same as a full read
            pd.testing.assert_frame_equal(patched, fresh.dataset())
        assert project.dataset(labeled_only=True)["image_id"].tolist() == fresh_ids(project)


def fresh_ids(project) -> list[int]:
    with Project.open(project.root) as fresh:
        return fresh.dataset(labeled_only=True)["image_id"].tolist()


def test_another_connections_writes_show_too(tmp_path):
    with _project(tmp_path) as project, Project.open(project.root) as other:
        image_id = int(project.dataset()["image_id"][2])
        other.set_label(image_id, "bird")
        assert project.dataset().set_index("image_id")["label"][image_id] == "bird"


def test_a_callers_changes_to_its_frame_stay_its_own(tmp_path):
    with _project(tmp_path) as project:
        frame = project.dataset()
        frame.loc[0, "label"] = "scribbled"
        frame.drop(columns=["hash"], inplace=True)
        again = project.dataset()
        assert again["label"].tolist()[0] is None and "hash" in again
        pd.testing.assert_frame_equal(again, project.dataset())


def test_frames_handed_out_before_a_label_write_or_an_undo_keep_their_labels(tmp_path):
    with _project(tmp_path) as project:
        ids = [int(i) for i in project.dataset()["image_id"]]
        before = project.dataset()
        project.set_labels([(ids[0], "dog"), (ids[1], None)], by="ann")
        after_label = project.dataset()
        assert before["label"].tolist() == [None, "cat", None, "cat"]  # patched, not changed in place
        assert after_label["label"].tolist() == ["dog", None, None, "cat"]
        project.set_label(ids[0], "owl", by="ann")
        project.delete_class("owl", by="bob")  # ann's "owl" is now bob's unlabel: hers is not undone
        project.set_label(ids[2], "dog", by="ann")
        assert project.undo_changes(2, by="ann") == [ids[2], ids[1]]
        undone = project.dataset()  # the undo patched the cached frame
        assert after_label["label"].tolist() == ["dog", None, None, "cat"]
        assert undone["label"].tolist() == [None, "cat", None, "cat"]
        with Project.open(project.root) as fresh:
            pd.testing.assert_frame_equal(undone, fresh.dataset())
        assert project.undo_changes(5, by="bob") == [ids[0]]  # the deleted class comes back
        with Project.open(project.root) as fresh:
            pd.testing.assert_frame_equal(project.dataset(), fresh.dataset())
        assert project.dataset()["label"].tolist()[0] == "owl"
