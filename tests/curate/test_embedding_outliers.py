"""The embedding map (frame, figure, selections), outliers and dataset warnings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.curate.embedding import (
    UNLABELED,
    embedding_figure,
    embedding_frame,
    ids_in_box,
    project_2d,
    selected_ids,
)
from studio.curate.features import FeatureSet
from studio.curate.outliers import find_outliers, outlier_scores
from studio.data.balance import dataset_warnings
from tests.curate.conftest import clustered_features


def test_projection_keeps_clusters_apart():
    targets = np.repeat([0, 1], 20)
    coords = project_2d(clustered_features(targets, 2, dim=16, spread=0.3))
    assert coords.shape == (40, 2)
    centers = [coords[targets == c].mean(axis=0) for c in (0, 1)]
    spread = max(coords[targets == c].std(axis=0).max() for c in (0, 1))
    assert np.linalg.norm(centers[0] - centers[1]) > 5 * spread


def test_embedding_frame_and_figure(labeled_project):
    project, features, _truth = labeled_project
    frame = embedding_frame(project, features)
    assert list(frame.columns) == ["image_id", "x", "y", "label", "split", "original_name"]
    assert len(frame) == 40 and (frame["label"] == UNLABELED).sum() == 4
    figure = embedding_figure(frame)
    assert [trace.name for trace in figure.data] == ["ant", "bee", "cat", UNLABELED]
    ids_in_traces = sorted(int(row[0]) for trace in figure.data for row in trace.customdata)
    assert ids_in_traces == sorted(frame["image_id"].tolist())
    assert "image %{customdata[0]}" in figure.data[0].hovertemplate


def test_selected_ids_from_plotly_selection_and_box():
    selection = {"points": [{"customdata": [7, "train", "a.jpg"]}, {"customdata": [3, "val", "b.jpg"]},
                            {"customdata": [7, "train", "a.jpg"]}, {"x": 1}]}
    assert selected_ids(selection) == [7, 3]
    assert selected_ids(None) == []
    frame = pd.DataFrame({"image_id": [1, 2, 3], "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 2.0]})
    assert ids_in_box(frame, (0.5, 2.5), (2.5, 0.5)) == [2, 3]


def test_far_point_is_an_outlier_and_cluster_members_are_not():
    targets = np.repeat([0, 1, 2], 25)
    features = clustered_features(targets, 3, dim=16, spread=0.5, seed=4)
    stranger = np.random.default_rng(9).normal(0, 4.0, (1, 16))
    z, _nearest, _ = outlier_scores(np.vstack([features, stranger]), np.r_[targets, -1], 3)
    assert z[-1] > 4.0
    assert (z[:-1] < 4.0).mean() >= 0.97


def test_project_outliers_list_the_stranger(labeled_project):
    project, features, _truth = labeled_project
    moved = features.features.copy()
    stranger = int(features.image_ids[-1])  # an unlabeled image, placed far from everything
    moved[-1] = np.random.default_rng(5).normal(0, 6.0, moved.shape[1])
    result = find_outliers(project, FeatureSet(features.image_ids, moved))
    assert result["image_id"].tolist()[:1] == [stranger]
    assert result.loc[0, "label"] is None and result.loc[0, "z"] > 4
    after = find_outliers(project, FeatureSet(features.image_ids, moved), exclude=[stranger])
    assert stranger not in after["image_id"].tolist()


def _frame(counts: dict[str, tuple[int, int]]) -> pd.DataFrame:
    rows = [(label, split) for label, (train, val) in counts.items()
            for split in ["train"] * train + ["val"] * val]
    return pd.DataFrame(rows, columns=["label", "split"])


def test_warnings_for_tiny_imbalanced_and_thin_validation_classes():
    warnings = dataset_warnings(
        _frame({"big": (80, 20), "tiny": (6, 2), "ok": (30, 8)}), ["big", "tiny", "ok", "empty"]
    )
    text = "\n".join(warnings)
    assert "class 'tiny' has only 8 labeled images" in text
    assert "heavily imbalanced: 'big' has 100 images, 'tiny' only 8" in text
    assert "validation has only 2 'tiny' image(s)" in text
    assert "class 'empty' has no labeled images" in text
    assert "'ok'" not in text


def test_no_warnings_for_a_healthy_set():
    assert dataset_warnings(_frame({"a": (40, 10), "b": (36, 9)}), ["a", "b"]) == []
    assert any("validation" in w for w in dataset_warnings(_frame({"a": (40, 0), "b": (36, 0)}), ["a", "b"]))
