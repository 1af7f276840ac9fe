"""Feature cache: a re-train after label changes or new images computes only the new images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from train_helpers import tiny_config

from studio.data.importers import import_source
from studio.predict.inference import FLIP_VIEWS, IDENTITY
from studio.train import train
from studio.train.features import feature_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers_images import make_image_folder


def _details(result) -> dict:
    return json.loads((result.run_dir / "config.json").read_text())["result"]["details"]


def test_second_run_computes_only_new_images(project, tmp_path):
    config = tiny_config(strategy="linear")
    first = _details(train(project, config))
    total = len(project.dataset(labeled_only=True).query("split in ['train', 'val']"))
    assert first["features_computed"] == total and first["features_cached"] == 0

    # A label change: nothing new to compute.
    some_id = int(project.dataset().query("split == 'train'").iloc[0]["image_id"])
    project.set_label(
        some_id, "dog" if project.dataset().set_index("image_id").loc[some_id, "label"] == "cat" else "cat"
    )
    second = _details(train(project, config))
    assert second["features_computed"] == 0 and second["features_cached"] == total

    # Two new images: only those are computed.
    make_image_folder(tmp_path / "new", ["cat"], 2, size=48, seed=7)
    import_source(project, tmp_path / "new", val_fraction=0.0)
    third = _details(train(project, config))
    assert third["features_computed"] == 2 and third["features_cached"] == total


def test_cache_key_tracks_everything_that_changes_features():
    prep = {
        "image_size": 64,
        "mean": [0.5] * 3,
        "std": [0.5] * 3,
        "interpolation": "bicubic",
        "crop_pct": 0.9,
    }
    base = feature_key("m", "w1", prep, FLIP_VIEWS, None)
    assert base == feature_key("m", "w1", dict(prep), FLIP_VIEWS, None)
    assert base != feature_key("m2", "w1", prep, FLIP_VIEWS, None)
    assert base != feature_key("m", "w2", prep, FLIP_VIEWS, None)
    assert base != feature_key("m", "w1", {**prep, "image_size": 96}, FLIP_VIEWS, None)
    assert base != feature_key("m", "w1", prep, (IDENTITY,), None)


def test_flip_features_change_the_linear_probe_inputs(project):
    # Flipped views are extracted alongside identity ones (views x D per image).
    result = train(project, tiny_config(strategy="linear"))
    cache_dirs = list((project.cache_dir / "features").iterdir())
    assert len(cache_dirs) == 1
    with np.load(cache_dirs[0] / "features.npz") as data:
        features = data["features"]
    assert features.shape[1] == 2 and not np.allclose(features[:, 0], features[:, 1])
    assert result.status == "done"
