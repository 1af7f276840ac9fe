"""Every strategy trains end to end on a tiny project and leaves a complete, loadable run folder."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from train_helpers import tiny_config

from studio.data.snapshot import take_snapshot
from studio.predict import Predictor
from studio.train import train


def _read_metrics(run_dir):
    with open(run_dir / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    "settings",
    [
        {"strategy": "linear", "head": "logreg"},
        {"strategy": "linear", "head": "svm"},
        {"strategy": "linear", "head": "knn"},
        {"strategy": "linear", "head": "torch"},
        {"strategy": "finetune", "layer_decay": 0.7},
        {"strategy": "two-stage", "epochs": 1, "unfreeze_groups": 1},
        {"strategy": "gradual", "epochs": 2},
        {"strategy": "scratch"},
        {"strategy": "auto", "epochs": 1, "time_budget_s": 600},
        {"strategy": "finetune", "cutmix": 1.0, "mixup": 0.2, "balance": "sampler"},
    ],
    ids=lambda s: "-".join(str(v) for v in s.values()),
)
def test_strategy_writes_complete_run(project, settings):
    events = []
    result = train(project, tiny_config(**settings), callback=lambda e: events.append(e.to_dict()))
    run_dir = result.run_dir
    assert result.status == "done"
    assert 0.0 <= result.val_accuracy <= 1.0 and 0.0 <= result.val_accuracy_tta <= 1.0
    assert result.epochs_run >= 1 and result.train_seconds > 0
    assert run_dir.name.endswith(settings["strategy"])
    for name in ("config.json", "metrics.csv", "model.pt", "eval.json", "status.json", "split.json"):
        assert (run_dir / name).is_file(), name
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "done"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["label_hash"] == take_snapshot(project).label_hash
    assert config["seed"] == 0 and config["config"]["strategy"] == settings["strategy"]
    assert config["weights_source"]["kind"] == "none"
    assert config["resolved"]["batch_size"] == 4
    assert config["result"]["strategy"] == result.strategy
    rows = _read_metrics(run_dir)
    assert len(rows) == sum(1 for e in events if e["type"] == "epoch") >= 1
    epoch = next(e for e in events if e["type"] == "epoch")
    assert {"stage", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
            "images_per_s", "eta_s"} <= set(epoch)
    assert any(e["type"] == "stage" for e in events)
    assert events[0] == {"type": "run_started", "run_dir": str(run_dir)}  # the engine names its folder first
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["accuracy"] == pytest.approx(result.val_accuracy)
    assert report["tta"]["accuracy"] == pytest.approx(result.val_accuracy_tta)
    # The checkpoint predicts on its own: probabilities over the project's classes.
    predictor = Predictor.from_run(run_dir, "cpu")
    probs = predictor.predict(project.dataset()["path"].tolist()[:3], top_k=2)
    assert predictor.class_names == ["cat", "dog"]
    assert all(np.isclose(p["probs"].sum(), 1.0, atol=1e-4) for p in probs)


def test_finetune_streams_step_events_and_keeps_the_last_epoch(project):
    events = []
    result = train(project, tiny_config(epochs=2), callback=lambda e: events.append(e.to_dict()))
    steps = [e for e in events if e["type"] == "step"]
    assert steps and {"stage", "epoch", "step", "loss", "lr", "images_per_s", "eta_s"} <= set(steps[0])
    assert [e["step"] for e in steps] == list(range(1, len(steps) + 1))
    epochs = [e for e in events if e["type"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    config = json.loads((result.run_dir / "config.json").read_text())
    kept = config["result"]["best"]  # the kept checkpoint's result: the last epoch's (no early stopping)
    assert kept["epoch"] == 2 and kept["accuracy"] == pytest.approx(epochs[-1]["val_accuracy"])


def test_auto_skips_finetuning_when_budget_is_too_small(project):
    result = train(project, tiny_config(strategy="auto", time_budget_s=1e-3))
    assert result.status == "done" and result.strategy == "linear"
    assert "budget" in result.reason or "perfect" in result.reason
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["result"]["reason"] == result.reason


def test_imbalanced_classes_get_loss_weights(tmp_path):
    from train_helpers import make_project

    project = make_project(tmp_path, classes=("a", "b"), per_class=3)
    extra = make_project(tmp_path / "more", classes=("b",), per_class=6, seed=1)
    from studio.data.importers import import_source

    import_source(project, tmp_path / "more" / "source", val_fraction=0.34)
    extra.close()
    result = train(project, tiny_config())
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["resolved"]["balance"] == "weights"
    project.close()
