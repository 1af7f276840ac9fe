"""bench/proxies.py: the tasks it carves (counts per class and split, fixed draws) and its table."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture()
def proxies():
    sys.path.insert(0, str(BENCH))  # the script imports engine.py and machine.py beside it
    try:
        import proxies

        yield proxies
    finally:
        sys.path.remove(str(BENCH))


def _counts(root: Path) -> dict[tuple[str, str], int]:
    return {(split.name, folder.name): len(list(folder.iterdir()))
            for split in root.iterdir() for folder in split.iterdir()}


def test_a_subset_links_a_fixed_sample_per_class(proxies, tmp_path):
    for split, count in (("train", 7), ("val", 3)):
        for name in ("a", "b"):
            (tmp_path / "src" / split / name).mkdir(parents=True)
            for i in range(count):
                (tmp_path / "src" / split / name / f"{i}.jpg").write_bytes(b"x")
    proxies.link_subset(tmp_path / "one", tmp_path / "src", ("a", "b"), 5, None)
    proxies.link_subset(tmp_path / "two", tmp_path / "src", ("a", "b"), 5, None)
    assert _counts(tmp_path / "one") == {("train", "a"): 5, ("train", "b"): 5,
                                         ("val", "a"): 3, ("val", "b"): 3}
    assert sorted(p.name for p in (tmp_path / "one" / "train" / "a").iterdir()) == \
        sorted(p.name for p in (tmp_path / "two" / "train" / "a").iterdir())  # the same draw every run
    assert all(p.is_symlink() for p in (tmp_path / "one" / "train" / "a").iterdir())


def test_digits_are_written_as_images_twenty_per_class_and_split(proxies, tmp_path):
    from PIL import Image

    proxies.write_digits(tmp_path)
    counts = _counts(tmp_path)
    assert len(counts) == 20 and set(counts.values()) == {20}
    image = Image.open(next((tmp_path / "train" / "digit_3").iterdir()))
    assert image.size == (8, 8) and image.mode == "L" and max(image.getdata()) > 200  # ink reaches white


def test_the_table_gives_auto_against_the_better_probe_in_images(proxies):
    row = {"task": "t", "train": 10, "val": 50, "accuracy": 0.9, "spread": (0.9, 0.9),
           "kept": "ensemble (lite0)", "seconds": 12.0,
           "tf_efficientnet_lite0": 0.86, "tf_efficientnet_lite2": 0.88}
    line = proxies.table([row], 1).splitlines()[-1]
    assert line.endswith("| +1 images |") and "90.0%" in line and "86.0%" in line
