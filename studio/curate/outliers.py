"""Outliers: images far from every class centroid in feature space.

Each class has a centroid (mean of its unit-length features) and a spread (median and MAD of its own
members' cosine distances to it). An image's score against a class is the robust z-score of its
distance to that centroid; its outlier score is the smallest of those (it is only an outlier if it
fits no class). High scores are wrong-domain photos, corrupt or blank images, or a class nobody made.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.preprocessing import normalize

from studio.curate.features import FeatureSet
from studio.data.store import Project
from studio.errors import StudioError

Z_THRESHOLD = 4.0
MAD_TO_STD = 1.4826  # MAD of a normal distribution times this is its standard deviation
MIN_SPREAD = 1e-3  # a class of identical images must not make every other image infinitely far
OUTLIER_COLUMNS = ["image_id", "label", "split", "nearest_class", "distance", "z"]


def _unit(features: np.ndarray) -> np.ndarray:
    return normalize(np.asarray(features, dtype=np.float64))


def outlier_scores(
    features: np.ndarray, targets: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every row: (z, nearest class, cosine distance to its centroid). `targets` is -1 for unlabeled
    rows; only labeled rows shape the centroids and spreads."""
    unit = _unit(features)
    targets = np.asarray(targets)
    classes = [c for c in range(num_classes) if (targets == c).sum() > 0]
    if not classes:
        raise StudioError("outliers are measured against labeled classes; label some images first")
    centroids = _unit(np.stack([unit[targets == c].mean(axis=0) for c in classes]))
    distance = 1.0 - unit @ centroids.T  # N x classes
    own = [distance[targets == c, j] for j, c in enumerate(classes)]
    pooled = np.concatenate(own)
    pooled_median = np.median(pooled)
    pooled_spread = max(MAD_TO_STD * np.median(np.abs(pooled - pooled_median)), MIN_SPREAD)
    medians, spreads = [], []
    for values in own:
        if len(values) >= 5:
            medians.append(np.median(values))
            spreads.append(max(MAD_TO_STD * np.median(np.abs(values - np.median(values))), MIN_SPREAD))
        else:  # too few members to estimate a spread: use everyone's
            medians.append(pooled_median)
            spreads.append(pooled_spread)
    z = (distance - np.array(medians)) / np.array(spreads)
    nearest = z.argmin(axis=1)
    rows = np.arange(len(unit))
    return z[rows, nearest], np.array(classes)[nearest], distance[rows, nearest]


def find_outliers(project: Project, features: FeatureSet, *, threshold: float = Z_THRESHOLD,
                  exclude: Sequence[int] = ()) -> pd.DataFrame:
    """Images (labeled or not) whose z-score against every class exceeds `threshold`, farthest first."""
    frame = project.dataset()
    frame = frame[frame["image_id"].isin(features.image_ids) & ~frame["image_id"].isin(list(exclude))]
    classes = project.classes()
    index = {name: i for i, name in enumerate(classes)}
    targets = np.array([index.get(label, -1) if label is not None else -1 for label in frame["label"]])
    z, nearest, distance = outlier_scores(features.rows(frame["image_id"]), targets, len(classes))
    result = pd.DataFrame({
        "image_id": frame["image_id"].to_numpy(),
        # object dtype: a missing label or split stays None (pandas' string inference makes it NaN)
        "label": pd.Series(frame["label"].tolist(), dtype=object),
        "split": pd.Series(frame["split"].tolist(), dtype=object),
        "nearest_class": [classes[c] for c in nearest],
        "distance": distance.round(4),
        "z": z.round(2),
    }, columns=OUTLIER_COLUMNS)
    result = result[result["z"] > threshold]
    return result.sort_values(["z", "image_id"], ascending=[False, True]).reset_index(drop=True)
