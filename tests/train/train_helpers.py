"""Tiny generated projects and fast configs for the training tests (imported by name: a module name
unique across the test tree, unlike `conftest`).

Most tests use timm's `test_efficientnet` (100k parameters, random weights) at 64 px so a whole run
takes well under a second; the real default backbone appears only where it matters.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/helpers_images.py

from helpers_images import make_image_folder

from studio.data.importers import import_source
from studio.data.store import Project
from studio.train import TrainConfig
from studio.train.config import Resolved, resolve

TINY_BACKBONE = "test_efficientnet"


def make_project(root: Path, classes=("cat", "dog"), per_class: int = 6, seed: int = 0) -> Project:
    source = make_image_folder(root / "source", list(classes), per_class, size=48, seed=seed)
    project = Project.create(root / "project")
    import_source(project, source, val_fraction=0.34, seed=0)
    return project


def tiny_config(**overrides) -> TrainConfig:
    """A random-weights tiny model at 64 px, 1 epoch: for behaviour, not accuracy."""
    settings = {
        "backbone": TINY_BACKBONE,
        "pretrained": False,
        "strategy": "finetune",
        "epochs": 1,
        "image_size": 64,
        "batch_size": 4,
        "device": "cpu",
        "log_every": 1,
        "augment": "light",
    }
    settings.update(overrides)
    return TrainConfig(**settings)


def resolved(
    n_train: int = 160, device: str = "cpu", class_counts: list[int] | None = None, **settings
) -> Resolved:
    """What `resolve` chooses for these settings on `n_train` images (classes split evenly unless given)."""
    counts = class_counts or [n_train // 2, n_train - n_train // 2]
    return resolve(TrainConfig(**settings), n_train=n_train, class_counts=counts, device_type=device,
                   default_image_size=224)
