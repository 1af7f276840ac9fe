"""The Label tab's queue and model suggestions, without a server (a fake predictor stands in for a model)."""

from __future__ import annotations

import json
import time
from types import MappingProxyType

import numpy as np
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


def _reference_queue(data: pd.DataFrame, filter_value: str, order: str) -> list[int]:
    """The queue as plain sorting and filtering say it is (what the array code must agree with)."""
    by = ["image_id"] if order == lq.ORDER_IMPORT else ["confidence", "image_id"]
    rows = data.sort_values(by, kind="stable", na_position="last")
    return rows.loc[lq.members(rows, filter_value), "image_id"].astype(int).tolist()


@pytest.mark.parametrize("seed", range(6))
def test_the_queue_agrees_with_plain_sorting_on_shuffled_rows(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    ids = rng.permutation(np.arange(100, 100 + 3 * n, 3))  # not in import order, with gaps
    guesses = {
        f"h{i}": Suggestion("cat", float(rng.choice([0.25, 0.5, 0.75]))) for i in ids if rng.random() < 0.7
    }
    data = lq.with_suggestions(
        pd.DataFrame({
            "image_id": ids,
            "hash": [f"h{i}" for i in ids],
            "label": [rng.choice([None, "cat", "dog"]) for _ in ids],
            "split": [rng.choice([None, "train", "val"]) for _ in ids],
        }),
        guesses,
    )
    for filter_value in ("unlabeled", "all", "disagrees", "class:dog", "split:unsplit"):
        for order in lq.ORDERS:
            queue = _reference_queue(data, filter_value, order)
            assert lq.queue_ids(data, filter_value, order) == queue
            positions = lq.queue_positions(data, filter_value, order)
            assert data["image_id"].to_numpy()[positions].tolist() == queue
            order_ids = _reference_queue(data, "all", order)
            for current in [None, *order_ids[:5]]:
                for direction in (1, -1):
                    start = order_ids.index(current) if current is not None else (-1 if direction > 0 else 0)
                    walk = [order_ids[(start + direction * k) % n] for k in range(1, n + 1)]
                    expected = next((i for i in walk if i in queue), None)
                    assert lq.step(data, filter_value, order, current, direction) == expected


class _StoreWith:
    """A suggestion store answering from a fixed mapping (replace `mapping` to change the model)."""

    def __init__(self, mapping):
        self.mapping = mapping

    def suggestions(self, project, hashes, *, compute=True):
        return self.mapping, "status"


def test_the_label_tab_reuses_its_suggestion_join_only_while_nothing_changed(tmp_path):
    from studio.ui.label_tab import LabelSession

    with Project.create(tmp_path / "p") as project:
        import_source(project, make_image_folder(tmp_path / "src", ["cat"], 3, size=16))
        data = project.dataset()
        first = MappingProxyType({h: Suggestion("dog", 0.5) for h in data["hash"]})
        session = LabelSession(None, _StoreWith(first))
        table, _ = session.table(project)
        assert table["suggested"].tolist() == ["dog"] * 3
        project.set_label(int(data["image_id"][0]), "owl")
        table, _ = session.table(project)  # same model: the join is reused, the new label shows
        assert table["label"].tolist()[0] == "owl" and table["suggested"].tolist() == ["dog"] * 3
        session.store.mapping = MappingProxyType({data["hash"][1]: Suggestion("cat", 0.9)})
        table, _ = session.table(project)  # a new model's suggestions: joined again
        assert table["suggested"].tolist() == [None, "cat", None]
        assert table["confidence"].isna().tolist() == [True, False, True]
        import_source(project, make_image_folder(tmp_path / "more", ["cat"], 1, size=16, seed=9))
        table, _ = session.table(project)  # a new image: joined again, aligned with the rows
        assert len(table) == 4 and table["suggested"].tolist() == [None, "cat", None, None]
        session.store.mapping = {}
        table, _ = session.table(project)
        assert table["suggested"].isna().all() and table["confidence"].isna().all()


def test_an_image_without_a_suggestion_shows_no_model_guess():
    from studio.ui.label_tab import _caption

    data = _table()  # "e" has no suggestion
    row = data.set_index("hash").loc["e"]
    assert row["suggested"] is None and np.isnan(row["confidence"])
    assert "model" not in _caption(next(data[data["hash"] == "e"].itertuples()), set())


def test_thumbnail_captions_are_short_and_a_disagreement_stands_out():
    from types import SimpleNamespace

    from studio.ui.label_tab import _caption

    def row(label, suggested, confidence=0.97):
        return SimpleNamespace(image_id=17, label=label, suggested=suggested, confidence=confidence)

    assert _caption(row("daisy", "daisy"), set()) == "#17 · daisy ✓"
    assert _caption(row("sunflower", "daisy"), set()) == "#17 · sunflower ⚠ model: daisy"
    assert _caption(row(None, "daisy", 0.8), {17}) == "☑ #17 · daisy? 80%"
    assert _caption(row("daisy", None), set()) == "#17 · daisy"


def test_without_a_model_no_image_shows_a_guess():
    # pandas 3 turns a broadcast scalar None into NaN, a truthy value the captions printed as "nan (nan%)"
    table = pd.DataFrame({"image_id": [1, 2], "hash": ["a", "b"], "label": ["cat", None]})
    data = lq.with_suggestions(table, {})
    assert data["suggested"].tolist() == [None, None]
    assert data["confidence"].isna().all()
    assert lq.queue_ids(data, "disagrees", lq.ORDER_IMPORT) == []
