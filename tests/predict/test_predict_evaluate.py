"""Evaluation metrics against a hand-computed case, and eval.json from a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from predict_helpers import tiny_run

from studio.predict import evaluate, metrics_from_probs
from studio.predict.checkpoint import read_checkpoint, save_checkpoint
from studio.predict.inference import TTA_VIEWS
from studio.predict.predictor import Predictor


def test_metrics_match_hand_computed_case():
    # 3 classes, 5 images. Predictions: a->a, a->b (p=.7), b->b, c->c, c->a (p=.9)
    classes = ["a", "b", "c"]
    targets = [0, 0, 1, 2, 2]
    probs = np.array([
        [0.8, 0.1, 0.1],
        [0.2, 0.7, 0.1],
        [0.1, 0.6, 0.3],
        [0.2, 0.2, 0.6],
        [0.9, 0.05, 0.05],
    ])
    report = metrics_from_probs(targets, probs, classes, image_ids=[10, 11, 12, 13, 14],
                                paths=["p0", "p1", "p2", "p3", "p4"])
    assert report["accuracy"] == pytest.approx(3 / 5)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    # a: predicted a twice (1 right) -> P=1/2, R=1/2; b: predicted twice (1 right) -> P=1/2, R=1
    # c: predicted once (right) -> P=1, R=1/2
    assert report["per_class"]["a"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert report["per_class"]["b"]["precision"] == pytest.approx(0.5)
    assert report["per_class"]["b"]["recall"] == pytest.approx(1.0)
    assert report["per_class"]["b"]["f1"] == pytest.approx(2 / 3)
    assert report["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    assert report["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)
    assert report["loss"] == pytest.approx(-np.mean(np.log([0.8, 0.2, 0.6, 0.6, 0.05])))
    # Most confident mistakes first: image 14 (true c at 0.05), then image 11 (true a at 0.2).
    top = report["top_losses"]
    assert [t["image_id"] for t in top] == [14, 11]
    assert top[0] == pytest.approx({"image_id": 14, "path": "p4", "label": "c", "predicted": "a",
                                    "probability": 0.9, "true_probability": 0.05, "loss": -np.log(0.05)})


def test_evaluate_reports_on_the_runs_own_snapshot(trained):
    project, result = trained
    saved = json.loads((result.run_dir / "eval.json").read_text())  # written by training
    report = evaluate(result.run_dir, tta=True, device="cpu")
    assert report["images"] == "snapshot"
    assert saved["accuracy"] == report["accuracy"] and saved["tta"]["accuracy"] == report["tta"]["accuracy"]
    n_val = int((project.dataset()["split"] == "val").sum())
    assert report["n"] == n_val == sum(map(sum, report["confusion_matrix"]))
    assert set(report["per_class"]) == {"cat", "dog"} and len(report["tta"]["views"]) == 4
    # Today's split is an explicit choice (same images here).
    assert evaluate(result.run_dir, project, current_split=True, device="cpu")["n"] == n_val


def test_the_unknown_rate_is_the_share_studio_predict_flags_with_the_runs_own_tta(trained, tmp_path):
    project, result = trained
    run = tmp_path / "run"
    shutil.copytree(result.run_dir, run)
    checkpoint = read_checkpoint(run)
    val = project.dataset()[lambda d: d["split"] == "val"]["path"].tolist()  # the run's val images
    views = Predictor.from_run(run, "cpu").probabilities(val, TTA_VIEWS)
    # A run that predicts with TTA, its threshold between the identity view's and the average's confidences
    # on some image, so the two shares differ.
    gaps = np.abs(views[:, 0].max(1) - views.mean(1).max(1))
    widest = int(gaps.argmax())
    assert gaps[widest] > 0
    threshold = float((views[widest, 0].max() + views[widest].mean(0).max()) / 2)
    save_checkpoint({**checkpoint, "tta": {"tta": True}, "unknown_threshold": threshold},
                    run / "model.pt")
    report = evaluate(run, device="cpu")
    flagged = [r["unknown"] for r in Predictor.from_run(run, "cpu").predict(val)]
    assert report["tta_default"] is True
    assert report["unknown_rate"] == pytest.approx(np.mean(flagged))
    assert report["unknown_rate"] != pytest.approx(float((views[:, 0].max(1) < threshold).mean()))


def test_an_image_damaged_after_the_run_is_left_out_and_named(tmp_path):
    from predict_helpers import tiny_run

    project, result = tiny_run(tmp_path)
    try:
        val = project.dataset().query("split == 'val'")
        Path(val["path"].iloc[0]).write_bytes(b"not an image any more")
        report = evaluate(result.run_dir, device="cpu")
        assert report["n"] == len(val) - 1
        assert [u["image_id"] for u in report["unreadable"]] == [int(val["image_id"].iloc[0])]
        assert report["unreadable"][0]["error"]
    finally:
        project.close()


def test_macro_f1_leaves_out_a_class_with_no_images_here():
    # rose has no validation image and is never predicted: a perfect result is macro F1 1, not 0.5
    report = metrics_from_probs(np.array([0, 0]), np.array([[0.9, 0.1], [0.8, 0.2]]), ["daisy", "rose"])
    assert report["accuracy"] == 1.0 and report["macro_f1"] == 1.0
    # a class predicted without any image of it does count (its F1 is 0: those were mistakes)
    report = metrics_from_probs(np.array([0, 0]), np.array([[0.9, 0.1], [0.2, 0.8]]), ["daisy", "rose"])
    assert report["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)


def test_a_file_that_is_no_checkpoint_is_named_as_such(tmp_path):
    from studio.errors import StudioError
    from studio.predict.checkpoint import read_checkpoint

    for name, text in (("notes.txt", "hello"), ("config.json", '{"strategy": "auto"}')):
        (tmp_path / name).write_text(text)
        with pytest.raises(StudioError, match="is not a studio model checkpoint; give a run folder"):
            read_checkpoint(tmp_path / name)


def test_a_moved_project_evaluates_its_runs_on_its_own_image_files(tmp_path):
    """split.json keeps absolute paths; the images live in the project by content, so a moved (or copied)
    project reads its own files, not the old place's (gone, or another project's)."""
    project, result = tiny_run(tmp_path / "first")
    n_val = int((project.dataset()["split"] == "val").sum())
    project.close()
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "first" / "project", moved)
    report = evaluate(moved / "runs" / result.run_dir.name, device="cpu")
    assert report["n"] == n_val and report["unreadable"] == []


def test_todays_split_leaves_out_what_the_run_trained_on_and_classes_it_does_not_know(tmp_path):
    project, result = tiny_run(tmp_path)
    trained_on = {row["hash"] for row in json.loads((result.run_dir / "split.json").read_text())["train"]}
    project.assign_splits(val_fraction=0.5, seed=5, resplit=True)
    val = project.dataset()[lambda d: d["split"] == "val"]
    seen = int(val["hash"].isin(trained_on).sum())
    assert seen  # the re-split moved training images into val
    report = evaluate(result.run_dir, project, current_split=True, device="cpu")
    assert report["n"] == len(val) - seen
    assert any(f"{seen} of today's validation images were training images" in n for n in report["notes"])
    project.rename_class("dog", "puppy")
    report = evaluate(result.run_dir, project, current_split=True, device="cpu")
    assert any("classes this model does not know were left out (puppy" in n for n in report["notes"])
    assert evaluate(result.run_dir, device="cpu")["notes"] == []  # its own snapshot: nothing left out
    project.close()
