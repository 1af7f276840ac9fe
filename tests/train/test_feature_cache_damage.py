"""A truncated or damaged features.npz is recomputed (with a line in the log), never a failure."""

from __future__ import annotations

import logging

import numpy as np

from studio.train.features import FeatureCache, extract_features


class CountingRunner:
    """Stands in for the backbone: one fixed 'feature' per path, counting what it computes."""

    def __init__(self):
        self.computed: list[str] = []

    def run(self, paths, views, should_stop=None, on_batch=None):
        self.computed += list(paths)
        return np.stack([np.full((len(views), 4), float(len(p)), np.float32) for p in paths])


def test_truncated_cache_is_recomputed_and_logged(tmp_path, caplog):
    cache = FeatureCache(tmp_path / "features")
    hashes, paths, views = ["a", "b"], ["x.png", "yy.png"], ["center"]
    first, _ = extract_features(CountingRunner(), cache, hashes, paths, views)
    data = cache.path.read_bytes()
    cache.path.write_bytes(data[: len(data) // 2])  # a crash or a full disk cut it in half

    runner = CountingRunner()
    with caplog.at_level(logging.WARNING, logger="studio.train"):
        again, stats = extract_features(runner, cache, hashes, paths, views)
    assert "damaged" in caplog.text and str(cache.path) in caplog.text
    assert runner.computed == paths and stats.computed == 2
    np.testing.assert_array_equal(again, first)
    assert FeatureCache(cache.directory).load().keys() == {"a", "b"}  # rewritten whole
    assert [p.name for p in cache.directory.iterdir()] == ["features.npz"]  # no temp file left
