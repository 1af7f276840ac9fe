"""Frozen-backbone features, cached on disk per (backbone, weights, preprocessing, views, precision).

The cache lives under `project.cache_dir / "features" / <key>` and maps image content hashes to
feature arrays (views x D), so relabelling, re-splitting or adding images only computes what is new.
It is safe to delete: it is rebuilt on demand.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from studio.durable import atomic_write_bytes
from studio.predict.inference import InferenceRunner, View
from studio.train.events import Step

if TYPE_CHECKING:
    from studio.train.context import RunContext

FEATURES_FILE = "features.npz"
log = logging.getLogger("studio.train")


def feature_key(backbone: str, weights_fingerprint: str, preprocessing: dict, views: Sequence[View],
                dtype: torch.dtype | None) -> str:
    """A short stable id of everything that changes a feature vector."""
    identity = {
        "backbone": backbone,
        "weights": weights_fingerprint,
        "preprocessing": preprocessing,
        "views": [v.name for v in views],
        "dtype": str(dtype) if dtype is not None else "float32",
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return f"{backbone.replace('/', '_')}-{digest}"


class FeatureCache:
    """hash -> (views x D) float32 features, stored as one .npz file per key."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / FEATURES_FILE

    def load(self) -> dict[str, np.ndarray]:
        if not self.path.is_file():
            return {}
        try:
            with np.load(self.path, allow_pickle=False) as data:
                return dict(zip(data["hashes"].tolist(), data["features"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            log.warning("the feature cache %s is damaged (%s: %s); its features are computed again",
                        self.path, type(error).__name__, error)
            return {}

    def save(self, features: dict[str, np.ndarray]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        hashes = sorted(features)
        buffer = io.BytesIO()
        np.savez(buffer, hashes=np.array(hashes, dtype=str),
                 features=np.stack([features[h] for h in hashes]).astype(np.float32))
        atomic_write_bytes(self.path, buffer.getvalue())


@dataclass
class ExtractionStats:
    computed: int
    cached: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else 0.0


def extract_features(
    runner: InferenceRunner,
    cache: FeatureCache | None,
    hashes: Sequence[str],
    paths: Sequence[str],
    views: Sequence[View],
    *,
    should_stop: Callable[[], bool] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, ExtractionStats]:
    """Features (N x views x D) for the images, computing only those not cached yet."""
    stored = cache.load() if cache is not None else {}
    missing = sorted({h: p for h, p in zip(hashes, paths) if h not in stored}.items())
    start = time.perf_counter()
    if missing:
        outputs = runner.run([p for _, p in missing], views, should_stop=should_stop, on_batch=on_batch)
        stored.update({h: outputs[i] for i, (h, _) in enumerate(missing[:len(outputs)])})
        if cache is not None and len(outputs):
            cache.save(stored)  # partial results too: a cancelled extraction is not wasted
        if len(outputs) < len(missing):  # stopped early
            stats = ExtractionStats(len(outputs), len(hashes) - len(missing), time.perf_counter() - start)
            return np.zeros((0, len(views), 0), np.float32), stats
    seconds = time.perf_counter() - start
    features = np.stack([stored[h] for h in hashes]) if hashes else np.zeros((0, len(views), 0), np.float32)
    return features, ExtractionStats(len(missing), len(hashes) - len(missing), seconds)


def run_cache(ctx: RunContext, views: Sequence[View]) -> FeatureCache:
    """The project's feature cache for the run's backbone, weights, preprocessing and precision."""
    fingerprint = ctx.weights_source.fingerprint
    if ctx.weights_source.kind == "none":  # random weights differ per seed
        fingerprint += f":seed{ctx.config.seed}"
    key = feature_key(ctx.backbone, fingerprint, ctx.preprocessing, views, ctx.inference_dtype)
    return FeatureCache(ctx.project.cache_dir / "features" / key)


def cache_holds(ctx: RunContext, rows: pd.DataFrame, views: Sequence[View]) -> bool:
    """Whether the run's feature cache for `views` already holds every row."""
    return set(rows["hash"]) <= set(run_cache(ctx, views).load())


def run_features(
    ctx: RunContext,
    model: torch.nn.Module,
    rows: pd.DataFrame,
    views: Sequence[View],
    *,
    should_stop: Callable[[], bool] | None = None,
    on_eta: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, ExtractionStats]:
    """Features of `rows` (`hash`, `path`) through `model` with the run's preprocessing, device and
    precision, read from and added to the project's cache; a `Step` event per batch, `on_eta(seconds)`
    too. Stops when the run is cancelled or `should_stop()` says so (then fewer rows come back)."""
    cache = run_cache(ctx, views)
    runner = InferenceRunner(model, ctx.preprocessing, ctx.device, ctx.inference_dtype, batch_size=32)
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        elapsed = time.perf_counter() - started
        eta = (total - done) * elapsed / max(done, 1)
        if on_eta is not None:
            on_eta(eta)
        ctx.events.emit(Step(stage="features", epoch=1, step=done, loss=None, lr=None,
                             images_per_s=done / max(elapsed, 1e-9), eta_s=eta))

    stop = should_stop or (lambda: False)
    return extract_features(runner, cache, rows["hash"].tolist(), rows["path"].tolist(), views,
                            should_stop=lambda: ctx.events.cancelled or stop(), on_batch=progress)
