"""Which image to label next: filters, orders and stepping through them (pure functions, no Gradio).

A queue is the project's images in one global order (import order, or the model's least confident
first), restricted to a filter. Stepping starts from the current image's place in the global order, so
an image that just left the filter (it was labeled) still tells where to go on from.
"""

from __future__ import annotations

from collections.abc import Mapping

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
    found = [suggestions.get(digest) for digest in data["hash"]]
    return data.assign(
        suggested=[s.label if s else None for s in found],
        confidence=[s.confidence if s else float("nan") for s in found],
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


def ordered(data: pd.DataFrame, order: str) -> pd.DataFrame:
    """Rows in the global order: import order, or least confident first (no suggestion: last)."""
    if order == ORDER_IMPORT:
        return data.sort_values("image_id", kind="stable")
    if order == ORDER_UNCERTAIN:
        return data.sort_values(["confidence", "image_id"], kind="stable", na_position="last")
    raise StudioError(f"unknown order {order!r}; use {' or '.join(ORDERS)}")


def queue_ids(data: pd.DataFrame, filter_value: str, order: str) -> list[int]:
    """Image ids in the queue, in order."""
    rows = ordered(data, order)
    return rows.loc[members(rows, filter_value), "image_id"].astype(int).tolist()


def step(
    data: pd.DataFrame, filter_value: str, order: str, current: int | None, direction: int = 1
) -> int | None:
    """The next (direction 1) or previous (-1) queue member after `current`, wrapping around; None if empty.

    `current` itself is never returned unless it is the only member.
    """
    rows = ordered(data, order)
    ids = rows["image_id"].astype(int).tolist()
    keep = members(rows, filter_value).tolist()
    if not any(keep):
        return None
    if current is None or current not in ids:
        start = -1 if direction > 0 else 0
        position = start
    else:
        position = ids.index(current)
    count = len(ids)
    for offset in range(1, count + 1):
        index = (position + direction * offset) % count
        if keep[index]:
            return ids[index]
    return None
