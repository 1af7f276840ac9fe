"""Importing the real flowers set keeps its split (600 train / 150 val)."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.data.importers import import_source
from studio.data.store import Project

FLOWERS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "flowers"


@pytest.mark.slow
@pytest.mark.skipif(
    not FLOWERS.is_dir(), reason=f"real data set not present at {FLOWERS} (../shared is absent)"
)
def test_flowers_import_keeps_its_split(tmp_path):
    with Project.create(tmp_path / "flowers") as project:
        report = import_source(project, FLOWERS)
        info = project.info()
    assert report.layout == "pre-split"
    assert report.rejected == [] and report.imported == 750
    assert info["splits"] == {"train": 600, "val": 150, "test": 0, "unsplit": 0}
    assert info["classes"] == ["daisy", "dandelion", "rose", "sunflower", "tulip"]
    assert all(counts["train"] == 120 and counts["val"] == 30 for counts in info["counts"].values())
