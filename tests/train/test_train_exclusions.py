"""Images excluded during curation are left out of the training snapshot."""

import sys
from pathlib import Path

from studio.curate import decisions
from studio.data.importers import import_source
from studio.data.store import Project
from studio.train.data import take_snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers_images import make_image_folder


def test_excluded_images_are_not_trained_on(tmp_path):
    source = make_image_folder(tmp_path / "src", ["a", "b"], 6, 32)
    project = Project.create(tmp_path / "p")
    import_source(project, source)
    before = take_snapshot(project)
    victim = int(before.train["image_id"].iloc[0])
    decisions.record(project, [victim], "label_issue", "excluded")
    after = take_snapshot(project)
    assert len(after.train) == len(before.train) - 1
    assert victim not in set(after.train["image_id"])
    decisions.record(project, [victim], "label_issue", "kept")  # changing one's mind brings it back
    assert len(take_snapshot(project).train) == len(before.train)
