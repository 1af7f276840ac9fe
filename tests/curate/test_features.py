"""Curation features come from the engine's feature cache: computed once, then loaded (tiny fake backbone)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch

from studio.curate.features import FeatureSet, project_features
from studio.errors import StudioError
from studio.models import weights as weights_module


class TinyBackbone(torch.nn.Module):
    """A pooled feature extractor small enough for a unit test (4 features per image)."""

    pretrained_cfg: ClassVar[dict] = {
        "input_size": (3, 32, 32),
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "interpolation": "bilinear",
        "crop_pct": 1.0,
    }

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


@pytest.fixture
def tiny_backbone(monkeypatch):
    def create(name, *, num_classes, weights=None, **_):
        return TinyBackbone(), weights_module.WeightsSource("file", "tiny", "tiny:1")

    monkeypatch.setattr(weights_module, "create_backbone", create)


def test_features_are_extracted_once_then_read_from_the_cache(labeled_project, tiny_backbone):
    project, _, _ = labeled_project
    batches = []
    first = project_features(project, device="cpu", on_batch=lambda done, total: batches.append(done))
    assert first.features.shape == (40, 4) and batches
    assert sorted(first.image_ids.tolist()) == sorted(project.dataset()["image_id"].tolist())
    assert list((project.cache_dir / "features").iterdir())  # the engine's cache folder
    batches.clear()
    again = project_features(project, device="cpu", on_batch=lambda done, total: batches.append(done))
    assert batches == []  # nothing computed the second time
    np.testing.assert_allclose(again.features, first.features, rtol=1e-6)
    some = project_features(project, device="cpu", image_ids=first.image_ids[:3].tolist())
    np.testing.assert_allclose(some.features, first.features[:3], rtol=1e-6)


def test_a_cancelled_extraction_is_a_user_error(labeled_project, tiny_backbone):
    project, _, _ = labeled_project
    with pytest.raises(StudioError, match="cancelled"):
        project_features(project, device="cpu", should_stop=lambda: True)


def test_feature_set_rows_and_missing_images():
    features = FeatureSet(np.array([5, 7, 9]), np.arange(6, dtype=np.float32).reshape(3, 2))
    np.testing.assert_array_equal(features.rows([9, 5]), [[4, 5], [0, 1]])
    assert features.subset([7]).features.tolist() == [[2.0, 3.0]]
    with pytest.raises(StudioError, match="no features yet"):
        features.rows([5, 6])
    with pytest.raises(ValueError):
        FeatureSet(np.array([1, 2]), np.zeros((3, 2)))
