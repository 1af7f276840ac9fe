"""Auto's backbone choice: out-of-fold probes on training images, a paired rule against noise."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from train_helpers import make_project

from studio.predict.checkpoint import read_checkpoint
from studio.train import TrainConfig, train
from studio.train import backbone_choice as choice_module
from studio.train.backbone_choice import choose_backbone, compare_sample, summary


@dataclass
class _Events:
    logs: list = field(default_factory=list)
    cancelled: bool = False

    def stage(self, name):
        pass

    def log(self, text):
        self.logs.append(text)

    def emit(self, event):
        pass


@dataclass
class _Ctx:
    snapshot: SimpleNamespace
    config: SimpleNamespace
    resolved: SimpleNamespace
    events: _Events
    backbone: str


def _fake_run(monkeypatch, features_by_backbone: dict[str, np.ndarray], y: np.ndarray) -> _Ctx:
    names = list(features_by_backbone)
    train_rows = pd.DataFrame({"target": y, "hash": [f"h{i}" for i in range(len(y))],
                               "path": [f"{i}.png" for i in range(len(y))]})
    ctx = _Ctx(SimpleNamespace(train=train_rows), SimpleNamespace(seed=0, balance="none"),
               SimpleNamespace(balance="none", time_budget_s=600.0), _Events(), names[0])
    monkeypatch.setattr(choice_module, "candidate_backbones", lambda _ctx: names)
    monkeypatch.setattr(choice_module, "with_backbone", lambda c, name: replace(c, backbone=name))
    monkeypatch.setattr(choice_module, "_embed",
                        lambda c, rows, deadline: (features_by_backbone[c.backbone][rows.index], ""))
    return ctx


def _features(y: np.ndarray, signal: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(y.max() + 1, 16))
    return (signal * centers[y] + rng.normal(size=(len(y), 16))).astype(np.float32)


def test_a_clearly_better_backbone_replaces_the_reference(monkeypatch):
    y = np.repeat([0, 1, 2], 40)
    ctx = _fake_run(monkeypatch, {"ref": _features(y, 0.3, 1), "better": _features(y, 2.0, 2)}, y)
    choice = choose_backbone(ctx, started=0.0)
    assert choice.chosen == "better"
    assert [s.status for s in choice.scores] == ["compared", "compared"]
    assert choice.scores[1].cv_accuracy > choice.scores[0].cv_accuracy
    assert "beat ref" in choice.why and "better" in summary(choice)


def test_a_difference_within_noise_keeps_the_reference(monkeypatch):
    y = np.repeat([0, 1], 30)
    same = _features(y, 1.0, 3)
    jittered = same + np.random.default_rng(4).normal(scale=0.05, size=same.shape).astype(np.float32)
    ctx = _fake_run(monkeypatch, {"ref": same, "other": jittered}, y)
    choice = choose_backbone(ctx, started=0.0)
    assert choice.chosen == "ref"


def test_the_comparison_sample_is_stratified_and_capped():
    train_rows = pd.DataFrame({"target": [0] * 500 + [1] * 100})
    sample = compare_sample(train_rows, seed=0, limit=300)
    assert len(sample) == 300
    assert sample["target"].value_counts().to_dict() == {0: 250, 1: 50}
    assert compare_sample(train_rows.head(50), seed=0).equals(train_rows.head(50))


@pytest.mark.slow
def test_auto_compares_the_bundled_backbones_on_training_images_only(tmp_path):
    """A real run (bundled ImageNet weights, 64 px): every bundled backbone is compared, the chosen one is
    the run's backbone everywhere, and poisoning the validation labels does not change the choice."""
    project = make_project(tmp_path, classes=("cat", "dog"), per_class=10)
    config = {"strategy": "auto", "epochs": 1, "image_size": 64, "batch_size": 4, "device": "cpu",
              "time_budget_s": 900, "seed": 0}
    first = train(project, TrainConfig(**config))
    record = json.loads((first.run_dir / "config.json").read_text())
    chosen = record["result"]["details"]["backbone_choice"]
    assert [c["backbone"] for c in chosen["candidates"]] == [
        "tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"]
    assert all(c["status"] == "compared" for c in chosen["candidates"])
    checkpoint = read_checkpoint(first.run_dir)
    assert first.backbone == chosen["chosen"] == record["backbone"] == checkpoint["backbone"]
    assert "compared by out-of-fold probes" in first.reason
    val = project.dataset(labeled_only=True)
    val = val[val["split"] == "val"]
    project.set_labels([(int(r.image_id), "dog" if r.label == "cat" else "cat") for r in val.itertuples()])
    poisoned = json.loads((train(project, TrainConfig(**config)).run_dir / "config.json").read_text())
    project.close()
    again = poisoned["result"]["details"]["backbone_choice"]

    def decisions(c):
        return [(s["backbone"], s["cv_accuracy"], s["cv_log_loss"], s["C"]) for s in c["candidates"]]

    assert again["chosen"] == chosen["chosen"] and decisions(again) == decisions(chosen)
