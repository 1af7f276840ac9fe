"""Which image to label next: filters, orders and stepping through them (pure functions, no Gradio).

A queue is the project's images in one global order (import order, or the model's least confident
first), restricted to a filter. Stepping starts from the current image's place in the global order, so
an image that just left the filter (it was labeled) still tells where to go on from.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from studio.app.suggestions import Suggestion
from studio.errors import StudioError

ORDER_IMPORT = "import order"
ORDER_UNCERTAIN = "most uncertain first"
ORDERS = (ORDER_IMPORT, ORDER_UNCERTAIN)
SPLIT_FILTERS = ("train", "val", "test", "unsplit")


def filter_choices(classes: list[str], has_model: bool) -> list[tuple[str, str]]:
    """(shown, value) pairs for the filter dropdown."""
    choices = [("Unlabeled", "unlabeled"), ("All images", "all")]
    if has_model:
        choices.append(("Model disagrees with the label", "disagrees"))
    choices += [(f"Class: {name}", f"class:{name}") for name in classes]
    choices += [(f"Split: {name}", f"split:{name}") for name in SPLIT_FILTERS]
    return choices


def with_suggestions(data: pd.DataFrame, suggestions: Mapping[str, Suggestion]) -> pd.DataFrame:
    """`data` plus `suggested` (class or None) and `confidence` (float, NaN without a suggestion)."""
    if not suggestions:  # no model yet: no per-row work (this runs on every click)
        labels, confidences = [None] * len(data), np.nan  # a list: a scalar None becomes NaN in pandas 3
    else:
        found = [suggestions.get(digest) for digest in data["hash"]]
        labels = [s.label if s else None for s in found]
        confidences = [s.confidence if s else np.nan for s in found]
    return data.assign(  # object dtype: None stays None (pandas 3 would infer text with NaN, a truthy "nan")
        suggested=pd.Series(labels, data.index, dtype=object),
        confidence=pd.Series(confidences, data.index, dtype=float),
    )


def members(data: pd.DataFrame, filter_value: str) -> pd.Series:
    """Boolean mask of the rows the filter keeps (`data` from `with_suggestions`)."""
    labels = data["label"]
    if filter_value == "unlabeled":
        return labels.isna()
    if filter_value == "all":
        return pd.Series(True, index=data.index)
    if filter_value == "disagrees":
        return labels.notna() & data["suggested"].notna() & (labels != data["suggested"])
    kind, _, name = filter_value.partition(":")
    if kind == "class":
        return labels == name
    if kind == "split" and name in SPLIT_FILTERS:
        return data["split"].isna() if name == "unsplit" else data["split"] == name
    raise StudioError(f"unknown filter {filter_value!r}; choose one from the list")


def order_positions(data: pd.DataFrame, order: str) -> np.ndarray:
    """Row positions of `data` in the global order: import order, or least confident first (no
    suggestion: last), ties in import order. Array work only: this runs on every click."""
    ids = data["image_id"].to_numpy()
    if order == ORDER_IMPORT:
        if len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):  # the store's own order already
            return np.arange(len(ids))
        return np.argsort(ids, kind="stable")
    if order == ORDER_UNCERTAIN:
        confidence = data["confidence"].to_numpy(dtype=float, na_value=np.nan)
        return np.lexsort((ids, np.where(np.isnan(confidence), np.inf, confidence)))
    raise StudioError(f"unknown order {order!r}; use {' or '.join(ORDERS)}")


def queue_positions(data: pd.DataFrame, filter_value: str, order: str) -> np.ndarray:
    """Row positions of the queue's members, in order (`data.iloc[...]` gives their rows)."""
    positions = order_positions(data, order)
    return positions[members(data, filter_value).to_numpy(dtype=bool)[positions]]


def queue_ids(data: pd.DataFrame, filter_value: str, order: str) -> list[int]:
    """Image ids in the queue, in order."""
    return data["image_id"].to_numpy()[queue_positions(data, filter_value, order)].astype(int).tolist()


def step(
    data: pd.DataFrame, filter_value: str, order: str, current: int | None, direction: int = 1
) -> int | None:
    """The next (direction 1) or previous (-1) queue member after `current`, wrapping around; None if empty.

    `current` itself is never returned unless it is the only member.
    """
    positions = order_positions(data, order)
    ids = data["image_id"].to_numpy()[positions]
    keep = members(data, filter_value).to_numpy(dtype=bool)[positions]
    if not keep.any():
        return None
    found = np.flatnonzero(ids == current) if current is not None else ()
    position = found[0] if len(found) else (-1 if direction > 0 else 0)
    count = len(ids)
    walk = (position + direction * np.arange(1, count + 1)) % count  # every row once, `current` last
    hits = walk[keep[walk]]
    return int(ids[hits[0]])
