"""Augmentation: serializable configs and presets, albumentations pipelines, CutMix/MixUp, previews.

Exports load lazily: a preset list or a config does not pull in torch, OpenCV or albumentations.
"""

from studio._lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_CROP_PCT": "studio.augment.transforms",
    "DEFAULT_PRESET": "studio.augment.presets",
    "PRESETS": "studio.augment.presets",
    "PRESET_NAMES": "studio.augment.presets",
    "PROJECT_CHOICE": "studio.augment.project_settings",
    "AugmentConfig": "studio.augment.presets",
    "ImageTransform": "studio.augment.transforms",
    "augment_from_setting": "studio.augment.project_settings",
    "build_eval_transform": "studio.augment.transforms",
    "build_preview_transform": "studio.augment.transforms",
    "build_train_transform": "studio.augment.transforms",
    "describe": "studio.augment.previews",
    "load_project_augment": "studio.augment.project_settings",
    "mix_batch": "studio.augment.mix",
    "preset": "studio.augment.presets",
    "preview": "studio.augment.previews",
    "resolve_augment_choice": "studio.augment.project_settings",
    "save_project_augment": "studio.augment.project_settings",
    "soft_targets": "studio.augment.mix",
    "training_setting": "studio.augment.project_settings",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
