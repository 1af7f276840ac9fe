"""Fixtures for the curation tests: small projects of generated images and synthetic features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.curate.features import FeatureSet
from studio.data.store import Project


def smooth_image(seed: int, size: int = 96) -> Image.Image:
    """A random smooth picture (blobs, not noise): its perceptual hash survives resizing and re-encoding."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8), "RGB")
    return coarse.resize((size, size), Image.BICUBIC)


def clustered_features(targets: np.ndarray, num_classes: int, *, dim: int = 32, spread: float = 1.0,
                       seed: int = 0) -> np.ndarray:
    """Gaussian clusters, one per class, well separated (a frozen backbone on an easy set)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4.0, (num_classes, dim))
    return (centers[targets] + rng.normal(0, spread, (len(targets), dim))).astype(np.float32)


@pytest.fixture
def project(tmp_path: Path):
    with Project.create(tmp_path / "project") as opened:
        yield opened


@pytest.fixture
def labeled_project(tmp_path: Path):
    """3 classes x 12 images (9 train, 3 val each) + 4 unlabeled, with clustered synthetic features.

    Yields (project, FeatureSet, {image_id: true class}).
    """
    classes = ["ant", "bee", "cat"]
    folder = tmp_path / "files"
    folder.mkdir()
    truth: dict[int, str] = {}
    with Project.create(tmp_path / "project") as project:
        ids, targets = [], []
        for c, name in enumerate(classes):
            for i in range(12):
                path = folder / f"{name}_{i}.png"
                smooth_image(1000 * c + i, size=16).save(path)
                image_id, _ = project.add_image_file(path, label=name, split="val" if i < 3 else "train")
                ids.append(image_id)
                targets.append(c)
                truth[image_id] = name
        for i in range(4):
            path = folder / f"unlabeled_{i}.png"
            smooth_image(9000 + i, size=16).save(path)
            image_id, _ = project.add_image_file(path)
            ids.append(image_id)
            targets.append(i % 3)
        features = clustered_features(np.array(targets), 3, spread=2.0, seed=1)  # cosine < 0.9 within a class
        yield project, FeatureSet(np.array(ids), features, "synthetic"), truth
