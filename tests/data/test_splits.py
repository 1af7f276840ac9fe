"""plan_splits: stratified, keeps existing splits, at least one validation image per class of two or more."""

from __future__ import annotations

import pandas as pd
import pytest

from studio.data.splits import normalize_split, plan_splits
from studio.errors import StudioError


def table(counts: dict[str, int], splits: dict[int, str] | None = None) -> pd.DataFrame:
    rows = []
    for label, n in counts.items():
        for _ in range(n):
            image_id = len(rows)
            rows.append((image_id, f"{image_id:064x}", label, (splits or {}).get(image_id)))
    rows.append((len(rows), "f" * 64, None, None))  # unlabeled: never placed
    return pd.DataFrame(rows, columns=["image_id", "hash", "label", "split"])


def test_fraction_per_class_and_minimum_one():
    plan, warnings = plan_splits(table({"a": 10, "b": 2, "c": 1}), val_fraction=0.2, seed=0)
    by_class = pd.Series(plan).groupby(lambda i: "a" if i < 10 else "b" if i < 12 else "c")
    assert by_class.apply(lambda s: (s == "val").sum()).to_dict() == {"a": 2, "b": 1, "c": 0}
    assert 13 not in plan
    assert [w.split("'")[1] for w in warnings] == ["b", "c"]


def test_a_single_class_is_warned_about_at_import():
    _, warnings = plan_splits(table({"daisy": 10}), val_fraction=0.2, seed=0)
    assert any("only one class so far ('daisy')" in w for w in warnings)
    _, warnings = plan_splits(table({"daisy": 10, "rose": 10}), val_fraction=0.2, seed=0)
    assert warnings == []


def test_existing_splits_are_kept_and_counted():
    plan, _ = plan_splits(table({"a": 10}, {0: "val", 1: "val", 2: "train"}), val_fraction=0.2)
    assert set(plan) == set(range(3, 10))
    assert set(plan.values()) == {"train"}  # the class already has its 2 validation images


def test_zero_fraction_puts_everything_in_train():
    plan, _ = plan_splits(table({"a": 4}), val_fraction=0.0)
    assert set(plan.values()) == {"train"}


def test_bad_fraction_and_split_names():
    with pytest.raises(StudioError):
        plan_splits(table({"a": 4}), val_fraction=1.0)
    assert normalize_split("Validation") == "val" and normalize_split(" ") is None
    with pytest.raises(StudioError, match="holdout"):
        normalize_split("holdout")
