"""Per-image feature vectors for curation, read from (and added to) the engine's feature cache.

The cache key is the linear probe's (backbone, weights, preprocessing, views, precision), so features
extracted by a linear-probe run or the service's `features` job are reused and vice versa. Curation uses
the mean over the views (original + horizontal flip): a mirrored copy then embeds like its original.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from studio.data.store import Project
from studio.errors import StudioError


@dataclass
class FeatureSet:
    """Rows of `features` belong to `image_ids` (same order)."""

    image_ids: np.ndarray  # int64, N
    features: np.ndarray  # float32, N x D
    backbone: str = ""

    def __post_init__(self) -> None:
        self.image_ids = np.asarray(self.image_ids, dtype=np.int64)
        self.features = np.asarray(self.features, dtype=np.float32)
        if self.features.ndim != 2 or len(self.features) != len(self.image_ids):
            raise ValueError(f"features {self.features.shape} do not match {len(self.image_ids)} image ids")

    def rows(self, image_ids: Sequence[int]) -> np.ndarray:
        """Features of the given images, in that order."""
        index = {int(i): row for row, i in enumerate(self.image_ids)}
        missing = [int(i) for i in image_ids if int(i) not in index]
        if missing:
            raise StudioError(f"{len(missing)} image(s) have no features yet (e.g. image {missing[0]}); "
                              "extract features again")
        return self.features[[index[int(i)] for i in image_ids]]

    def subset(self, image_ids: Sequence[int]) -> FeatureSet:
        return FeatureSet(np.asarray(image_ids, dtype=np.int64), self.rows(image_ids), self.backbone)


def project_features(
    project: Project,
    backbone: str | None = None,
    *,
    weights: str | None = None,
    device: str = "auto",
    image_ids: Sequence[int] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> FeatureSet:
    """Features of the project's images (all, or `image_ids`), computing only what is not cached."""
    # The engine is imported here, not at module level: the ranking functions work on plain arrays.
    from studio.models.registry import DEFAULT_BACKBONE, check_backbone
    from studio.models.weights import create_backbone, data_config
    from studio.predict.checkpoint import preprocessing_dict
    from studio.predict.device import inference_dtype, select_device
    from studio.predict.inference import FLIP_VIEWS, InferenceRunner
    from studio.train.features import FeatureCache, extract_features, feature_key

    name = check_backbone(backbone or DEFAULT_BACKBONE)
    images = project.dataset()
    if image_ids is not None:
        images = images[images["image_id"].isin([int(i) for i in image_ids])]
    if images.empty:
        raise StudioError("the project has no images to curate; import some first (`studio import`)")
    model, source = create_backbone(name, num_classes=0, weights=weights)
    cfg = data_config(model)
    preprocessing = preprocessing_dict(cfg["image_size"], cfg)
    torch_device = select_device(device)
    dtype = inference_dtype(torch_device)
    views = FLIP_VIEWS  # the linear probe's default (TrainConfig.flip_features): one shared cache
    cache = FeatureCache(project.cache_dir / "features" /
                         feature_key(name, source.fingerprint, preprocessing, views, dtype))
    runner = InferenceRunner(model, preprocessing, torch_device, dtype)
    features, _ = extract_features(runner, cache, images["hash"].tolist(), images["path"].tolist(), views,
                                   should_stop=should_stop, on_batch=on_batch)
    if len(features) != len(images):
        raise StudioError("feature extraction was cancelled; run the curation again to finish it")
    return FeatureSet(images["image_id"].to_numpy(), features.mean(axis=1), name)
