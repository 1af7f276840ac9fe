"""The Label tab's queue and model suggestions, without a server (a fake predictor stands in for a model)."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from helpers_images import make_image_folder

from studio.app.suggestions import Suggestion, SuggestionStore
from studio.data.importers import import_source
from studio.data.store import Project
from studio.errors import StudioError
from studio.service.runs import latest_model_run
from studio.ui import label_queue as lq


def _table() -> pd.DataFrame:
    data = pd.DataFrame({
        "image_id": [1, 2, 3, 4, 5],
        "hash": ["a", "b", "c", "d", "e"],
        "label": ["cat", None, "dog", None, None],
        "split": ["train", None, "val", None, None],
    })
    guesses = {"a": Suggestion("dog", 0.6), "b": Suggestion("cat", 0.9), "c": Suggestion("dog", 0.99),
               "d": Suggestion("cat", 0.4)}
    return lq.with_suggestions(data, guesses)


def test_step_walks_the_filter_in_order_and_wraps():
    data = _table()
    assert lq.queue_ids(data, "unlabeled", lq.ORDER_IMPORT) == [2, 4, 5]
    assert lq.step(data, "unlabeled", lq.ORDER_IMPORT, None) == 2
    assert lq.step(data, "unlabeled", lq.ORDER_IMPORT, 2) == 4
    assert lq.step(data, "unlabeled", lq.ORDER_IMPORT, 3) == 4  # from an image outside the filter
    assert lq.step(data, "unlabeled", lq.ORDER_IMPORT, 5) == 2  # wraps around
    assert lq.step(data, "unlabeled", lq.ORDER_IMPORT, 4, direction=-1) == 2
    assert lq.step(data, "class:bird", lq.ORDER_IMPORT, None) is None


def test_filters_and_most_uncertain_first():
    data = _table()
    assert lq.queue_ids(data, "disagrees", lq.ORDER_IMPORT) == [1]
    assert lq.queue_ids(data, "class:dog", lq.ORDER_IMPORT) == [3]
    assert lq.queue_ids(data, "split:unsplit", lq.ORDER_IMPORT) == [2, 4, 5]
    assert lq.queue_ids(data, "split:val", lq.ORDER_IMPORT) == [3]
    # least confident first; images without a suggestion come last
    assert lq.queue_ids(data, "all", lq.ORDER_UNCERTAIN) == [4, 1, 2, 3, 5]
    assert lq.step(data, "unlabeled", lq.ORDER_UNCERTAIN, None) == 4
    with pytest.raises(StudioError, match="unknown filter"):
        lq.queue_ids(data, "bogus", lq.ORDER_IMPORT)
    values = [value for _, value in lq.filter_choices(["cat"], has_model=False)]
    assert "disagrees" not in values and "class:cat" in values


class _FakeJob:
    def __init__(self, result):
        self.result = result

    def outcome(self, timeout=None):
        return self.result


class _FakeService:
    """Answers "dog" for every image, as a trained model would, and counts the calls."""

    def __init__(self, unreadable=()):
        self.calls = []
        self.unreadable = set(unreadable)

    def submit_predict(self, run_dir, images, tta=False, top_k=5, *, interactive=True, skip_unreadable=False):
        self.calls.append(len(images))
        assert skip_unreadable  # one damaged file must not cost every other image its guess
        return _FakeJob(
            [
                {"path": p, "top": [], "error": "image file is truncated"}
                if p in self.unreadable
                else {"path": p, "top": [{"class": "dog", "probability": 0.5 + 0.01 * i}]}
                for i, p in enumerate(images)
            ]
        )


def _wait(store, project, hashes):
    for _ in range(200):
        found, status = store.suggestions(project, hashes)
        if len(found) == len(hashes) and "computing" not in status:
            return found, status
        time.sleep(0.05)
    raise AssertionError(f"suggestions never finished: {status}")


def test_suggestions_come_from_the_latest_finished_run(tmp_path):
    with Project.create(tmp_path / "p") as project:
        import_source(project, make_image_folder(tmp_path / "src", ["cat"], 3, size=16))
        store = SuggestionStore(_FakeService())
        hashes = project.dataset()["hash"].tolist()
        assert store.suggestions(project, hashes) == (
            {},
            "No trained model yet: train one to get suggestions.",
        )

        for name, status in (("20240101-000000-probe", "done"), ("20250101-000000-probe", "running")):
            run = project.runs_dir / name
            run.mkdir()
            (run / "model.pt").write_bytes(b"weights")
            (run / "status.json").write_text(json.dumps({"status": status}))
        assert (
            latest_model_run(project.root).name == "20240101-000000-probe"
        )  # the running one has no final model

        found, status = _wait(store, project, hashes)
        assert {s.label for s in found.values()} == {"dog"} and "20240101-000000-probe" in status
        assert store.service.calls == [3]
        # kept on disk: a new store (a restarted app) does not predict again
        again = SuggestionStore(_FakeService())
        assert len(again.suggestions(project, hashes)[0]) == 3 and again.service.calls == []


def test_a_damaged_image_gets_no_suggestion_and_the_others_do(tmp_path):
    with Project.create(tmp_path / "p") as project:
        import_source(project, make_image_folder(tmp_path / "src", ["cat"], 3, size=16))
        run = project.runs_dir / "20240101-000000-probe"
        run.mkdir(parents=True)
        (run / "model.pt").write_bytes(b"weights")
        data = project.dataset()
        store = SuggestionStore(_FakeService(unreadable={data["path"].iloc[0]}))
        hashes = data["hash"].tolist()
        for _ in range(200):
            found, status = store.suggestions(project, hashes)
            if "computing" not in status:
                break
            time.sleep(0.05)
        assert set(found) == set(hashes[1:]) and status == f"Suggestions from model {run.name}."
        assert store.suggestions(project, hashes)[1] == status and store.service.calls == [3]  # not retried
