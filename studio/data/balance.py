"""Warnings about the labeled set itself: tiny classes, heavy imbalance, validation too small to trust."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

MIN_CLASS_IMAGES = 10  # below this a class is learned from a handful of examples
IMBALANCE_RATIO = 5.0  # largest / smallest class
MIN_VAL_IMAGES = 5  # one validation image is then 20% of the class's accuracy


def dataset_warnings(frame: pd.DataFrame, classes: Sequence[str], *, min_class: int = MIN_CLASS_IMAGES,
                     imbalance_ratio: float = IMBALANCE_RATIO, min_val: int = MIN_VAL_IMAGES) -> list[str]:
    """Plain-language warnings for a `project.dataset()` frame (excluded images already removed)."""
    labeled = frame[frame["label"].notna()]
    totals = {name: int((labeled["label"] == name).sum()) for name in classes}
    val = {name: int(((labeled["label"] == name) & (labeled["split"] == "val")).sum()) for name in classes}
    warnings = []
    if len([n for n in totals.values() if n > 0]) < 2:
        warnings.append("fewer than two classes have labeled images: a classifier needs at least two")
    for name, count in totals.items():
        if count == 0:
            warnings.append(f"class '{name}' has no labeled images: label some or delete the class")
        elif count < min_class:
            warnings.append(f"class '{name}' has only {count} labeled images: aim for at least {min_class} "
                            "(more helps most where classes look alike)")
    present = {name: n for name, n in totals.items() if n > 0}
    if len(present) >= 2:
        big, small = max(present, key=present.get), min(present, key=present.get)
        ratio = present[big] / present[small]
        if ratio >= imbalance_ratio:
            warnings.append(
                f"classes are heavily imbalanced: '{big}' has {present[big]} images, '{small}' only "
                f"{present[small]} ({ratio:.1f}x); label more '{small}' images or train with class "
                "balancing"
            )
    if (labeled["split"] == "val").any():
        for name, count in present.items():
            if val[name] < min_val:
                warnings.append(
                    f"validation has only {val[name]} '{name}' image(s): its accuracy on that class "
                    f"is too noisy to trust; aim for at least {min_val} (label more '{name}' images; "
                    "re-splitting with a larger validation share moves some of its training images there)"
                )
    elif len(labeled):
        warnings.append("no labeled image is in the validation split: accuracy cannot be measured "
                        "(assign splits first)")
    return warnings
