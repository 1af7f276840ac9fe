"""Duplicate thresholds adapt to the image set: on the bundled digits (alike, smooth 64 px scans) no
group mixes different digits and planted copies are found; photo-scale sets keep the photo thresholds."""

from __future__ import annotations

import numpy as np
from PIL import Image

from studio.curate.duplicates import COSINE_ALONE, HASH_MAX, HASH_PAIR_MIN_COSINE
from studio.curate.features import project_features
from studio.curate.report import curate
from studio.curate.thresholds import duplicate_thresholds
from studio.data.store import Project
from studio.ui.demo_data import fill_demo_project


def test_digits_demo_groups_only_real_copies(tmp_path):
    with Project.create(tmp_path / "digits") as project:
        fill_demo_project(project)
        frame = project.dataset(labeled_only=True).sort_values("image_id")
        exact_source, resized_source = frame.iloc[3], frame.iloc[40]
        # An exact copy (same pixels, other bytes: the store refuses byte-identical files) and a resized one.
        Image.open(exact_source.path).save(tmp_path / "copy_exact.png", compress_level=1)
        Image.open(resized_source.path).resize((96, 96), Image.Resampling.BICUBIC).save(
            tmp_path / "copy_big.png"
        )
        exact_id, _ = project.add_image_file(tmp_path / "copy_exact.png", split="val")
        resized_id, _ = project.add_image_file(tmp_path / "copy_big.png")
        report = curate(project, project_features(project))

    groups = {frozenset(g["image_ids"]) for g in report["duplicates"]}
    assert frozenset({int(exact_source.image_id), exact_id}) in groups
    assert frozenset({int(resized_source.image_id), resized_id}) in groups
    assert len(groups) == 2, report["duplicates"]  # nothing else: distinct digits are not copies
    for group in report["duplicates"]:
        assert len({label for label in group["labels"] if label}) == 1
    assert len(report["leakage"]) == 1  # the exact copy sits in val, its source in train
    thresholds = report["duplicate_thresholds"]
    assert thresholds["hash_max"] < HASH_MAX and thresholds["cosine_alone"] > COSINE_ALONE


def test_thresholds_follow_the_typical_nearest_neighbour():
    rng = np.random.default_rng(0)
    n = 200
    far_hashes = rng.integers(0, 2, (n, 64), dtype=np.uint8)  # random bits: neighbours ~20 bits away
    spread = rng.normal(size=(n, 64)).astype(np.float32)  # near-orthogonal features
    photo = duplicate_thresholds(far_hashes, far_hashes, spread)
    assert photo == {
        "hash_max": HASH_MAX,
        "hash_pair_min_cosine": HASH_PAIR_MIN_COSINE,
        "cosine_alone": COSINE_ALONE,
    }

    close = far_hashes.copy()  # images alike: every neighbour within 4 bits per hash
    close[:, 8:] = 0
    alike = np.ones((n, 64), dtype=np.float32) + 0.05 * spread
    fitted = duplicate_thresholds(close, close, alike)
    assert fitted["hash_max"] < HASH_MAX
    assert fitted["cosine_alone"] > 0.99 and fitted["hash_pair_min_cosine"] > 0.99
    assert duplicate_thresholds(far_hashes[:3], far_hashes[:3], spread[:3])["hash_max"] == HASH_MAX  # too few
