"""Uploads, browser-ready image copies and the saved augmentation config, without a server."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers_images import make_image, make_image_folder
from PIL import Image

from studio.augment import AugmentConfig, load_project_augment, preset, save_project_augment
from studio.data.store import Project
from studio.errors import StudioError
from studio.ui.augment_tab import FIELDS, config_from
from studio.ui.context import AppContext
from studio.ui.importing import import_uploads, report_table
from studio.ui.media import DISPLAY_SIZE, display_image, media_root, thumbnail


@pytest.fixture
def project(tmp_path):
    with Project.create(tmp_path / "project") as opened:
        yield opened


def test_uploads_with_a_label_a_zip_and_a_csv(project, tmp_path):
    loose = [tmp_path / f"photo{i}.png" for i in range(2)]
    for index, path in enumerate(loose):
        make_image(16, seed=index).save(path)
    report = import_uploads(project, loose, label="cat")
    assert report["imported"] == 2 and sum(project.info()["counts"]["cat"].values()) == 2

    folder = make_image_folder(tmp_path / "zipped", ["dog", "fox"], 1, size=16)
    archive = tmp_path / "dogs.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in folder.rglob("*.*"):
            bundle.write(path, path.relative_to(folder.parent))
    bird = tmp_path / "bird.png"
    make_image(16, seed=99).save(bird)
    table = tmp_path / "labels.csv"
    table.write_text("path,label\nbird.png,bird\nmissing.png,bird\n")
    report = import_uploads(project, [archive, table, bird])
    assert report["imported"] == 3
    assert set(project.classes()) == {"cat", "dog", "fox", "bird"}
    rows = report_table(report)
    assert "missing.png" in " ".join(rows["file"]) and (rows["status"] == "rejected").any()
    with pytest.raises(StudioError, match="no files uploaded"):
        import_uploads(project, [])
    with pytest.raises(StudioError, match="CSV brings its own labels"):
        import_uploads(project, [table], label="cat")


def test_web_copies_are_small_browser_images_in_gradio_space(project, tmp_path):
    big = tmp_path / "big.tif"
    Image.fromarray(np.full((1200, 900, 3), 200, np.uint8)).save(big)
    image_id, _ = project.add_image_file(big)
    shown = display_image(project.root, project.image_path(image_id))
    assert shown.endswith(".jpg") and str(media_root()) in shown
    with Image.open(shown) as copy:
        assert max(copy.size) == DISPLAY_SIZE
    small = tmp_path / "small.png"
    make_image(20).save(small)
    small_id, _ = project.add_image_file(small)
    thumb = thumbnail(project.root, project.image_path(small_id))
    assert thumb.endswith(".png") and Path(thumb).read_bytes() == small.read_bytes()


def test_augment_config_is_saved_for_the_next_run(project):
    assert load_project_augment(project.root) == preset("light")
    medium = preset("medium")
    values = [getattr(medium, name) for name in FIELDS]
    assert config_from("medium", values).preset == "medium"
    changed = config_from("medium", [*values[:-1], 0.25])
    assert changed.preset == "custom" and changed.mix_prob == 0.25
    save_project_augment(project.root, changed)
    assert load_project_augment(project.root) == changed
    (project.root / "augment.json").write_text("{not json")
    with pytest.raises(StudioError, match="augment.json"):
        load_project_augment(project.root)
    with pytest.raises(StudioError, match="rotate"):
        config_from("custom", [0.5, 0, 999, 0.8, 0.1, 0, 0, 9, 0, 0, 1])
    assert isinstance(AugmentConfig.from_dict(changed.to_dict()), AugmentConfig)


def test_context_keeps_projects_inside_the_workspace(tmp_path):
    context = AppContext(workspace=tmp_path / "ws")
    made = context.create_project("leaves")
    assert context.open_project(made.root) is made and context.list_projects() == [made.root]
    for bad in ("../out", "a/b", "", ".hidden"):
        with pytest.raises(StudioError):
            context.create_project(bad)
    with pytest.raises(StudioError, match="not a project of this studio"):
        context.open_project(tmp_path)
    context.close()
