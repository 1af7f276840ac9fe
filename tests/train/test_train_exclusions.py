"""Images excluded during curation, or whose files were damaged after import, are left out of the snapshot."""

import sys
from pathlib import Path

from studio.curate import decisions
from studio.data.importers import import_source
from studio.data.snapshot import take_snapshot
from studio.data.store import Project

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


def test_files_damaged_after_import_are_left_out_and_repaired_by_reimport(tmp_path):
    source = make_image_folder(tmp_path / "src", ["a", "b"], 6, 32)
    project = Project.create(tmp_path / "p")
    import_source(project, source)
    data = project.dataset()
    truncated, missing = data.iloc[0], data.iloc[7]
    Path(truncated["path"]).write_bytes(Path(truncated["path"]).read_bytes()[:50])
    Path(missing["path"]).unlink()
    snapshot = take_snapshot(project)
    used = set(snapshot.train["image_id"]) | set(snapshot.val["image_id"])
    assert used == set(data["image_id"]) - {truncated["image_id"], missing["image_id"]}
    (warning,) = [w for w in snapshot.warnings if "changed or went missing" in w]
    assert f"#{truncated['image_id']} {truncated['original_name']} ({truncated['label']})" in warning
    assert project.dataset()["label"].notna().all()  # labels are user work: kept
    report = import_source(project, source)  # the originals again: same hashes, files rewritten
    assert report.imported == 0
    again = take_snapshot(project)
    assert len(again.train) + len(again.val) == len(data) and not any("missing" in w for w in again.warnings)
