"""Stratified train/val assignment for images that have no split yet.

Pure planning over a small table, so it is easy to test; `Project.assign_splits` writes the result.
Existing splits are never moved: a user's (or a dataset's) split is kept and only new images are placed.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from studio.errors import StudioError

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
MIN_CLASS_IMAGES = 5  # below this a class gets a warning: too few to learn or to validate on


def normalize_split(value: str | None) -> str | None:
    """'Validation', 'valid', 'val' -> 'val'; '' or None -> None; anything else is a StudioError."""
    if value is None or not str(value).strip():
        return None
    key = str(value).strip().lower()
    if key not in SPLIT_ALIASES:
        raise StudioError(f"split {value!r} is not one of train, val or test")
    return SPLIT_ALIASES[key]


def plan_splits(
    table: pd.DataFrame, val_fraction: float = 0.2, seed: int = 0
) -> tuple[dict[int, str], list[str]]:
    """Assign a split to every labeled row of `table` whose split is empty.

    `table` has columns image_id, hash, label, split. Per class, the validation share of the whole class
    (existing plus new) is brought to round(val_fraction * n), and to at least one image when the class
    has two or more, taking only from the images without a split. The choice depends only on the seed,
    the class names and the image hashes, not on import order. Returns ({image_id: split}, warnings).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise StudioError(f"validation fraction must be at least 0 and below 1, got {val_fraction}")
    labeled = table[table["label"].notna()]
    plan: dict[int, str] = {}
    warnings: list[str] = []
    classes = sorted(labeled["label"].unique())
    if len(classes) == 1:  # said now, not first when training refuses
        warnings.append(
            f"only one class so far ({classes[0]!r}): a classifier needs at least two; import or label "
            "images of another class"
        )
    for label in classes:
        rows = labeled[labeled["label"] == label]
        total = len(rows)
        if total < MIN_CLASS_IMAGES:
            warnings.append(
                f"class {label!r} has only {total} image{'s' if total != 1 else ''}; add at least "
                f"{MIN_CLASS_IMAGES} (20 or more is better) for a classifier to learn it"
            )
        free = rows[rows["split"].isna()].sort_values("hash")
        if free.empty:
            continue
        wanted_val = round(val_fraction * total)
        if total >= 2 and val_fraction > 0:
            wanted_val = min(max(wanted_val, 1), total - 1)
        existing_val = int((rows["split"] == "val").sum())
        n_val = min(max(wanted_val - existing_val, 0), len(free))
        order = _class_rng(seed, label).permutation(len(free))
        ids = free["image_id"].to_numpy()[order]
        for position, image_id in enumerate(ids):
            plan[int(image_id)] = "val" if position < n_val else "train"
    return plan, warnings


def _class_rng(seed: int, label: str) -> np.random.Generator:
    # One stream per class: adding a class never reshuffles another class's new images.
    label_key = int.from_bytes(hashlib.sha256(label.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, label_key])
