"""The service with the real engine on a tiny generated project (slow: a real backbone on CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from service_helpers import GUARD_S

from studio.service import JobState, TrainerService

pytestmark = pytest.mark.slow
REAL_GUARD_S = 600.0  # a real run on a busy CPU; only a failure guard


@pytest.fixture(scope="module")
def project_root(tmp_path_factory) -> Path:
    # Imported here, not at collection, so `-m "not slow"` runs never load the engine.
    pytest.importorskip("studio.train", reason="the training engine (studio.train) has not landed yet")
    pytest.importorskip("studio.predict", reason="studio.predict has not landed yet")
    from helpers_images import make_image_folder

    from studio.data.importers import import_source
    from studio.data.store import Project

    root = tmp_path_factory.mktemp("engine")
    make_image_folder(root / "src", ["red", "blue"], 5, size=40)
    with Project.create(root / "project") as project:
        import_source(project, root / "src")
    return root / "project"


@pytest.fixture(scope="module")
def cpu_service():
    svc = TrainerService("cpu", side_threads=1)
    yield svc
    svc.shutdown(GUARD_S)


def test_real_training_job_records_its_run_and_predicts(cpu_service, project_root):
    job = cpu_service.submit_train(
        project_root, {"strategy": "linear", "image_size": 32, "flip_features": False}
    )
    result = job.outcome(REAL_GUARD_S)
    run_dir = Path(result["run_dir"])
    assert job.state is JobState.DONE and job.run_dir == run_dir
    assert any(e["type"] == "epoch" for e in job.events())
    assert json.loads((run_dir / "job.json").read_text())["state"] == "done"
    runs = cpu_service.list_runs(project_root)
    assert runs[0]["run_dir"] == str(run_dir) and runs[0]["status"] == "done" and runs[0]["epochs"] >= 1
    assert not cpu_service.run_curves(run_dir).empty

    image = next((project_root.parent / "src" / "red").iterdir())
    out = cpu_service.predict(run_dir, [str(image)], top_k=2, timeout=REAL_GUARD_S)
    assert out[0]["top"][0]["class"] in ("red", "blue") and len(out[0]["top"]) == 2
    cpu_service.predict(run_dir, [str(image)], timeout=REAL_GUARD_S)
    assert cpu_service.predictors.loads == 1


def test_cancelling_real_training_keeps_the_run_cancelled(cpu_service, project_root):
    job = cpu_service.submit_train(
        project_root,
        {
            "strategy": "finetune",
            "image_size": 32,
            "epochs": 50,
            "patience": 50,
            "batch_size": 2,
            "log_every": 1,
        },
    )
    since = 0
    while not job.is_finished:  # cancel at the first training step
        events = job.wait_events(since, timeout=REAL_GUARD_S)
        if any(e["type"] == "step" for e in events):
            cpu_service.cancel(job.id)
        since = events[-1]["seq"] if events else since
    assert job.state is JobState.CANCELLED
    status = json.loads((job.run_dir / "status.json").read_text())["status"]
    assert status == "cancelled"
    assert sum(e["type"] == "epoch" for e in job.events()) < 50
