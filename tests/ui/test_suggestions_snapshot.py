"""The Label tab's suggestions read the run's stored snapshot: a training image's own fit is no suggestion."""

from __future__ import annotations

import json
import time

from helpers_images import make_image_folder

from studio.app.suggestions import SuggestionStore
from studio.data.importers import import_source
from studio.data.snapshot import SPLIT_FILE, take_snapshot
from studio.data.store import Project


class _Job:
    def __init__(self, result):
        self.result = result

    def outcome(self, timeout=None):
        return self.result


class _Service:
    """Answers "dog" for every image it is asked about, and keeps the paths asked for."""

    def __init__(self):
        self.asked: list[str] = []

    def submit_predict(self, run_dir, images, tta=False, top_k=5, *, interactive=True, skip_unreadable=False):
        self.asked += images
        return _Job([{"path": p, "top": [{"class": "dog", "probability": 0.7}]} for p in images])


def _finished_run(project: Project, name: str, *, snapshot: bool = True):
    run = project.runs_dir / name
    run.mkdir(parents=True)
    (run / "model.pt").write_bytes(b"weights")
    (run / "status.json").write_text(json.dumps({"status": "done"}))
    if snapshot:
        (run / SPLIT_FILE).write_text(json.dumps(take_snapshot(project).to_dict()))
    return run


def _settled(store: SuggestionStore, project: Project, hashes: list[str]):
    for _ in range(200):
        found, status = store.suggestions(project, hashes)
        if "computing" not in status:
            return found, status
        time.sleep(0.05)
    raise AssertionError(f"suggestions never finished: {status}")


def test_the_runs_training_images_get_no_suggestion_and_the_status_names_the_snapshot(tmp_path):
    with Project.create(tmp_path / "p") as project:
        import_source(project, make_image_folder(tmp_path / "src", ["cat", "dog"], 5, size=16),
                      val_fraction=0.4)
        snapshot = take_snapshot(project)
        run = _finished_run(project, "20240101-000000-probe")
        later = import_source(project, make_image_folder(tmp_path / "new", ["cat"], 2, size=16, seed=9))
        assert later.imported == 2  # images that came after the run: the model never saw them
        trained = set(snapshot.train["hash"])
        # a training image relabeled since the run is still one the model learned (with its old label)
        first = snapshot.train.iloc[0]
        project.set_label(int(first["image_id"]), "dog" if first["label"] == "cat" else "cat")
        data = project.dataset()
        hashes = data["hash"].tolist()

        service = _Service()
        found, status = _settled(SuggestionStore(service), project, hashes)
        assert set(found) == set(hashes) - trained and not trained & set(found)
        assert set(snapshot.val["hash"]) <= set(found)  # validation images: the model's honest guess
        assert not set(service.asked) & set(data[data["hash"].isin(trained)]["path"])  # never predicted
        assert run.name in status and snapshot.label_hash[:8] in status
        assert f"{len(trained)} training images" in status


def test_a_run_without_a_snapshot_suggests_for_every_image(tmp_path):
    with Project.create(tmp_path / "p") as project:
        import_source(project, make_image_folder(tmp_path / "src", ["cat", "dog"], 3, size=16),
                      val_fraction=0.4)
        run = _finished_run(project, "20240101-000000-probe", snapshot=False)
        hashes = project.dataset()["hash"].tolist()
        found, status = _settled(SuggestionStore(_Service()), project, hashes)
        assert set(found) == set(hashes) and status == f"Suggestions from model {run.name}."
