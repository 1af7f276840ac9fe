"""The service's curation job: runs `curate`, reports progress, honours cancel, and leaves its results in
`cache/curate/` for the Curate tab. Features come from a fake extractor (a tiny, exact stand-in for the
backbone), except in the one test that checks the real default backbone end to end."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from service_helpers import GUARD_S

from studio.curate import analysis
from studio.curate import features as curate_features
from studio.curate import report as curate_report
from studio.curate.features import FeatureSet
from studio.data.store import Project
from studio.service import JobState


def _smooth(seed: int, size: int = 32) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), "RGB").resize((size, size),
                                                                                          Image.BICUBIC)


@pytest.fixture
def small_project(tmp_path: Path):
    """2 classes x 6 images, plus a resized copy of one train image placed in val (leakage)."""
    folder = tmp_path / "files"
    folder.mkdir()
    with Project.create(tmp_path / "project") as project:
        for c, name in enumerate(["ant", "bee"]):
            for i in range(6):
                path = folder / f"{name}_{i}.png"
                _smooth(100 * c + i).save(path)
                project.add_image_file(path, label=name, split="val" if i < 2 else "train")
        _smooth(100 + 5).resize((48, 48)).save(folder / "copy.png")  # copy of bee_5 (train)
        project.add_image_file(folder / "copy.png", label="bee", split="val")
        yield project


def fake_extractor(calls: list | None = None, block: threading.Event | None = None):
    """A stand-in for `project_features`: features from the images' own pixels, batch callbacks included."""

    def extract(project, backbone=None, *, should_stop=None, on_batch=None, **options):
        if calls is not None:
            calls.append({"backbone": backbone, **options})
        frame = project.dataset()
        rows = []
        for done, path in enumerate(frame["path"], 1):
            if block is not None:
                block.wait(GUARD_S)
            if should_stop is not None and should_stop():
                from studio.errors import StudioError

                raise StudioError("feature extraction was cancelled; run the curation again to finish it")
            pixels = np.asarray(
                Image.open(path).convert("RGB").resize((4, 4), Image.BILINEAR), dtype=np.float32
            )
            rows.append(pixels.ravel() / 255.0 - 0.5)
            if on_batch is not None:
                on_batch(done, len(frame))
        return FeatureSet(frame["image_id"].to_numpy(), np.stack(rows), backbone or "fake")

    return extract


def use_extractor(monkeypatch, extract) -> None:
    """Both ways the curation pass asks for features (the main backbone's, and the label-issue backbones'
    the report module imported by name) get `extract`, whichever test imported the modules first."""
    monkeypatch.setattr(curate_features, "project_features", extract)
    monkeypatch.setattr(curate_report, "project_features", extract)


def test_curate_job_reports_and_persists_its_results(service, small_project, monkeypatch):
    calls: list = []
    use_extractor(monkeypatch, fake_extractor(calls))
    job = service.submit_curate(small_project.root, backbone="fake-net")
    summary = job.outcome(GUARD_S)
    assert job.state is JobState.DONE and job.kind == "curate" and job.project == str(small_project.root)
    assert calls[0] == {"backbone": "fake-net", "weights": None, "device": "cpu"}
    labeled = small_project.dataset(labeled_only=True)["image_id"].tolist()
    assert [(c["backbone"], c["image_ids"]) for c in calls[1:]] == [
        (name, labeled) for name in curate_report.LABEL_ISSUE_BACKBONES]
    assert summary["images"] == 13 and summary["backbone"] == "fake-net"
    assert summary["duplicate_groups"] >= 1 and summary["leakage_groups"] >= 1

    stages = [e["name"] for e in job.events() if e.get("type") == "stage"]
    assert stages == ["features", "analysis"]
    fractions = [e["fraction"] for e in job.events() if e.get("type") == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 0 < fractions[0] < 0.9

    report = analysis.read_curation_report(small_project.root)
    copy_id = int(small_project.dataset().set_index("original_name").loc["copy.png", "image_id"])
    assert any(copy_id in g["image_ids"] and g["leakage"] for g in report["duplicates"])
    assert sorted(report["embedding"]["image_id"]) == sorted(small_project.dataset()["image_id"])
    assert len(report["embedding"]["x"]) == 13 and report["finished_at"]
    features = analysis.read_curation_features(small_project.root)
    assert features.backbone == "fake-net" and features.features.shape == (13, 48)
    assert analysis.curation_summary(report) == summary


def test_cancelling_a_running_curate_job_ends_it_cancelled(service, small_project, monkeypatch):
    gate = threading.Event()
    use_extractor(monkeypatch, fake_extractor(block=gate))
    job = service.submit_curate(small_project.root)
    for _ in range(200):  # until the worker has picked the job up
        if job.state is JobState.RUNNING:
            break
        job.wait(0.02)
    assert service.cancel(job.id)
    gate.set()
    assert job.wait(GUARD_S)
    assert job.state is JobState.CANCELLED
    assert analysis.read_curation_report(small_project.root) is None  # nothing half-written


def test_a_user_error_fails_the_job_with_its_message(service, tmp_path):
    Project.create(tmp_path / "empty").close()
    job = service.submit_curate(tmp_path / "empty")
    job.wait(GUARD_S)
    assert job.state is JobState.FAILED and "no images to curate" in job.error


def test_broken_result_files_read_as_missing(tmp_path):
    folder = analysis.curation_folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / analysis.REPORT_FILE).write_text("{not json")
    (folder / analysis.FEATURES_FILE).write_bytes(b"garbage")
    assert analysis.read_curation_report(tmp_path) is None
    assert analysis.read_curation_features(tmp_path) is None


def test_the_service_still_imports_without_loading_torch():
    code = "import sys, studio.service, studio.service.tasks; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_curate_job_with_the_real_default_backbone(service, small_project):
    """End to end through the engine's feature cache (bundled weights, no network); a rerun is cached."""
    first = service.submit_curate(small_project.root).outcome(120)
    assert first["images"] == 13 and first["backbone"]
    features = analysis.read_curation_features(small_project.root)
    assert features.features.shape[0] == 13 and np.isfinite(features.features).all()
    again = service.submit_curate(small_project.root)
    again.outcome(120)
    logs = " ".join(e.get("message", "") for e in again.events() if e.get("type") == "log")
    assert "features" in logs
