"""Duplicate thresholds that adapt to the image set: a copy is far closer than distinct images get there.

Fixed thresholds tuned on photos fail on other sets: scikit-learn's 8x8 digits, upscaled, are smooth and
alike, so distinct digits sit closer in hash and feature space (median nearest neighbour: 17 hash bits,
cosine 0.95) than distinct flower photos ever do (41 bits, cosine 0.72). The typical distance from an
image to its nearest *other* image (the median over the set) measures how close distinct images come;
a pair counts as copies only when it is much closer than that, and never looser than the photo
thresholds of `studio.curate.duplicates` (measured on flowers, where they find every planted copy).
The medians are robust to the copies themselves while fewer than half the images have one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.preprocessing import normalize

from studio.curate.duplicates import (
    COSINE_ALONE,
    HASH_BITS,
    HASH_MAX,
    HASH_PAIR_MIN_COSINE,
    DuplicateGroup,
    find_duplicates,
    hamming_matrix,
)

# Copies are at most this share of the set's typical nearest-neighbour distance (hash bits, cosine distance).
# Digits: 17.5 bits -> 8, cosine distance 0.05 -> 0.015 (cosine 0.985); flowers keep the photo thresholds.
HASH_SHARE = 0.5
COSINE_SHARE = 0.3
SAMPLE = 2000  # images whose nearest neighbour is measured (against all): the median needs no more
MIN_IMAGES = 10  # fewer: too few neighbours to say what is typical; the photo thresholds apply


def nearest_distances(phash: np.ndarray, dhash: np.ndarray, unit: np.ndarray | None, rows: np.ndarray,
                      chunk: int = 512) -> tuple[np.ndarray, np.ndarray | None]:
    """For each of `rows`: the smallest summed pHash+dHash distance and the largest cosine to another
    image."""
    hash_nn, cosine_nn = [], []
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        distance = hamming_matrix(phash[part], phash) + hamming_matrix(dhash[part], dhash)
        distance[np.arange(len(part)), part] = 2 * HASH_BITS + 2  # not its own neighbour
        hash_nn.append(distance.min(axis=1))
        if unit is not None:
            cosine = unit[part] @ unit.T
            cosine[np.arange(len(part)), part] = -1.0
            cosine_nn.append(cosine.max(axis=1))
    return np.concatenate(hash_nn), (np.concatenate(cosine_nn) if unit is not None else None)


def duplicate_thresholds(phash: np.ndarray, dhash: np.ndarray, features: np.ndarray | None = None, *,
                         seed: int = 0) -> dict:
    """`find_pairs` keyword thresholds for this image set (see the module docstring)."""
    thresholds = {
        "hash_max": HASH_MAX,
        "hash_pair_min_cosine": HASH_PAIR_MIN_COSINE,
        "cosine_alone": COSINE_ALONE,
    }
    n = len(phash)
    if n < MIN_IMAGES:
        return thresholds
    rows = np.arange(n)
    if n > SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(n, SAMPLE, replace=False))
    unit = None
    if features is not None:
        unit = normalize(np.asarray(features, dtype=np.float32))
    hash_nn, cosine_nn = nearest_distances(phash, dhash, unit, rows)
    valid = hash_nn <= 2 * HASH_BITS  # images without a hash have no hash neighbour
    if valid.any():
        typical_bits = float(np.median(hash_nn[valid]))
        thresholds["hash_max"] = int(min(HASH_MAX, np.floor(HASH_SHARE * typical_bits)))
    if cosine_nn is not None:
        typical_distance = float(np.median(1.0 - cosine_nn))
        thresholds["cosine_alone"] = round(max(COSINE_ALONE, 1.0 - COSINE_SHARE * typical_distance), 4)
        # A hash match must be at least as similar in features as a typical nearest neighbour is.
        thresholds["hash_pair_min_cosine"] = round(max(HASH_PAIR_MIN_COSINE, 1.0 - typical_distance), 4)
    return thresholds


def find_set_duplicates(frame: pd.DataFrame, phash: np.ndarray, dhash: np.ndarray,
                        features: np.ndarray | None = None) -> tuple[list[DuplicateGroup], dict]:
    """Duplicate groups of `frame`'s rows under thresholds fitted to these images; (groups, thresholds)."""
    thresholds = duplicate_thresholds(phash, dhash, features)
    return find_duplicates(frame, phash, dhash, features, **thresholds), thresholds
