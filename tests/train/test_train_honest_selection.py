"""Choices are fitted on training data: poisoning the validation labels changes none of auto's, and
nothing a manual fine-tune keeps."""

from __future__ import annotations

import json

import numpy as np
from train_helpers import make_project, tiny_config

from studio.predict.checkpoint import read_checkpoint
from studio.train import train
from studio.train.selection import holdout_split


def _kept_weights(result) -> float:
    checkpoint = read_checkpoint(result.run_dir)
    return float(sum(v.float().abs().sum() for v in checkpoint["state_dict"].values()))


def _choices(result) -> dict:
    record = json.loads((result.run_dir / "config.json").read_text())["result"]
    details = record["details"]
    checkpoint = read_checkpoint(result.run_dir)
    return {
        "kept": result.strategy, "epochs_run": result.epochs_run, "probe_C": details.get("probe_C"),
        "C": details.get("C"), "recipe": details.get("probe_recipe"),
        "planned": details.get("finetune_epochs_planned"),
        "best_epoch": details.get("best_epoch"), "temperature": details["calibration"]["temperature"],
        "threshold": details["unknown_threshold"], "tta": checkpoint["tta"],
        "ensemble": details.get("ensemble"), "members": checkpoint.get("ensemble"),
        "weights": _kept_weights(result),
    }


def _poison_validation_labels(project) -> None:
    val = project.dataset(labeled_only=True)
    val = val[val["split"] == "val"]
    classes = sorted(set(val["label"]))
    project.set_labels([(int(r.image_id), classes[(classes.index(r.label) + 1) % len(classes)])
                        for r in val.itertuples()])


def test_poisoned_validation_labels_change_no_choice_of_auto(tmp_path):
    project = make_project(tmp_path, classes=("cat", "dog", "owl"), per_class=9)
    # Shuffled training labels: the probe cannot be perfect on held-out images, so auto fine-tunes too.
    data = project.dataset(labeled_only=True)
    train_rows = data[data["split"] == "train"]
    shuffled = np.random.default_rng(0).permutation(train_rows["label"].to_numpy())
    project.set_labels([(int(i), str(label)) for i, label in zip(train_rows["image_id"], shuffled)])
    config = {"strategy": "auto", "epochs": 3, "time_budget_s": 600, "seed": 1}
    honest = _choices(train(project, tiny_config(**config)))
    _poison_validation_labels(project)
    poisoned_result = train(project, tiny_config(**config))
    poisoned = _choices(poisoned_result)
    project.close()
    assert poisoned == honest
    assert honest["planned"] == 3  # the fine-tune ran: its epochs were chosen too
    assert "held-out training images" in poisoned_result.reason


def test_holdout_split_is_stratified_and_keeps_every_class_to_fit():
    import pandas as pd

    train_frame = pd.DataFrame({"target": [0] * 10 + [1] * 5 + [2], "path": [f"{i}.jpg" for i in range(16)]})
    fit, held = holdout_split(train_frame, seed=0)
    assert sorted(held["target"].tolist()) == [0, 0, 1]
    assert set(fit["target"]) == {0, 1, 2}
    assert len(fit) + len(held) == len(train_frame)
    _, again_held = holdout_split(train_frame, seed=0)
    assert np.array_equal(held["path"], again_held["path"])


def test_poisoned_validation_labels_change_nothing_a_manual_fine_tune_keeps(tmp_path):
    """Manual strategies keep their last epoch: validation is scored for the charts, not to choose. (With
    `patience`, which keeps the best epoch on validation, the kept weights differ: measured.)"""
    project = make_project(tmp_path, classes=("cat", "dog", "owl"), per_class=9)
    strategies = ("finetune", "two-stage")

    def kept() -> list[tuple[float, int]]:
        results = [train(project, tiny_config(strategy=name, epochs=3, seed=1)) for name in strategies]
        return [(_kept_weights(result), result.epochs_run) for result in results]

    honest = kept()
    _poison_validation_labels(project)
    poisoned = kept()
    project.close()
    assert poisoned == honest


def test_auto_curves_never_score_the_validation_split(tmp_path):
    """Auto's charted curve is its held-out training images: a kept probe's refit (scored on val for the
    reported number) adds no point to it, so poisoned validation labels leave every point as it was."""
    from studio.service.runs import run_curves

    project = make_project(tmp_path, classes=("cat", "dog", "owl"), per_class=9)
    config = tiny_config(strategy="auto", epochs=1, seed=1)  # one epoch: no fine-tune, the probe is kept
    honest = train(project, config)
    _poison_validation_labels(project)
    poisoned = train(project, config)
    project.close()
    assert honest.strategy == poisoned.strategy == "linear"
    curves = [run_curves(result.run_dir) for result in (honest, poisoned)]
    assert len(curves[0]) == 1  # the probe on the held-out training images, nothing after it
    assert curves[0]["val_accuracy"].tolist() == curves[1]["val_accuracy"].tolist()
    assert curves[0]["val_loss"].tolist() == curves[1]["val_loss"].tolist()
