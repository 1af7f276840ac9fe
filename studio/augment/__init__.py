"""Augmentation: serializable configs and presets, albumentations pipelines, CutMix/MixUp, previews."""

from studio.augment.mix import mix_batch, soft_targets
from studio.augment.presets import DEFAULT_PRESET, PRESET_NAMES, PRESETS, AugmentConfig, preset
from studio.augment.preview import describe, preview
from studio.augment.transforms import (
    DEFAULT_CROP_PCT,
    ImageTransform,
    build_eval_transform,
    build_preview_transform,
    build_train_transform,
)

__all__ = [
    "DEFAULT_CROP_PCT",
    "DEFAULT_PRESET",
    "PRESETS",
    "PRESET_NAMES",
    "AugmentConfig",
    "ImageTransform",
    "build_eval_transform",
    "build_preview_transform",
    "build_train_transform",
    "describe",
    "mix_batch",
    "preset",
    "preview",
    "soft_targets",
]
