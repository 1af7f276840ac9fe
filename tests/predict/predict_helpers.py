"""A tiny trained run for the prediction tests (random-weights tiny timm model, linear head).

Imported by name (unique across the test tree, unlike `conftest`)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/helpers_images.py

from helpers_images import make_image_folder

from studio.data.importers import import_source
from studio.data.store import Project
from studio.train import TrainConfig, train


def tiny_run(root: Path, **overrides):
    source = make_image_folder(root / "source", ["cat", "dog"], 6, size=48)
    project = Project.create(root / "project")
    import_source(project, source, val_fraction=0.34, seed=0)
    settings = {
        "backbone": "test_efficientnet",
        "pretrained": False,
        "strategy": "linear",
        "image_size": 64,
        "device": "cpu",
    }
    settings.update(overrides)
    result = train(project, TrainConfig(**settings))
    return project, result
