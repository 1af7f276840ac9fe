"""Albumentations pipelines for training, evaluation and preview.

Every pipeline is an `ImageTransform`: call it with an RGB uint8 HxWx3 numpy array (a PIL image is
accepted too) and get a normalized float32 CHW tensor (a uint8 HxWx3 array for previews).
The eval pipeline reproduces timm's eval preprocessing (resize the shorter side to
floor(size / crop_pct), center-crop size) with torchvision's exact sizes and crop offsets.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.core.transforms_interface import BaseTransformInitSchema
from albumentations.pytorch import ToTensorV2
from PIL import Image
from pydantic import Field

from studio.augment.presets import AugmentConfig
from studio.augment.randaugment import build_randaugment
from studio.errors import StudioError
from studio.export.standalone import (  # one copy
    LEGACY_RESAMPLER,
    PIL_FILTERS,
    RESAMPLER,
    eval_crop,
    resized_shape,
)

INTERPOLATIONS: dict[str, int] = {
    "bicubic": cv2.INTER_CUBIC,
    "bilinear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
}
_INTERPOLATION_NAMES = {flag: name for name, flag in INTERPOLATIONS.items()}
DEFAULT_CROP_PCT = 0.875  # timm's default
# Uncovered corners after a rotation mirror the image instead of turning black.
_ROTATE_BORDER = cv2.BORDER_REFLECT_101


def interpolation_flag(name: str) -> int:
    """OpenCV flag for an interpolation name (timm's names: bicubic, bilinear, nearest)."""
    try:
        return INTERPOLATIONS[name]
    except KeyError:
        raise StudioError(
            f"Unknown interpolation {name!r}. Use one of: {', '.join(INTERPOLATIONS)}."
        ) from None


class ResizeShorterCenterCrop(A.ImageOnlyTransform):
    """Resize the shorter side to floor(size / crop_pct), then center-crop size x size.

    Sizes and offsets follow torchvision's Resize(int) and CenterCrop (used by timm), which truncate
    the longer side and round the crop offset; albumentations' SmallestMaxSize/CenterCrop round and
    floor instead, which can shift the crop by a pixel.

    `resampler` "pillow" (the eval crop of runs trained since it was recorded, and the training
    pipeline's whole square): the exported bundle's `eval_crop`, Pillow's resize as in timm's eval
    transform. "opencv" (runs recorded before): INTER_AREA when shrinking (the OpenCV counterpart of
    PIL's antialiased resize), the bundle's numpy copy of OpenCV's cubic when enlarging.
    """

    class InitSchema(BaseTransformInitSchema):
        size: int = Field(ge=1)
        crop_pct: float = Field(gt=0, le=1)
        interpolation: int
        resampler: str

    def __init__(
        self,
        size: int,
        crop_pct: float = DEFAULT_CROP_PCT,
        interpolation: int = cv2.INTER_CUBIC,
        resampler: str = LEGACY_RESAMPLER,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        if resampler not in (RESAMPLER, LEGACY_RESAMPLER):
            raise StudioError(f"Unknown resampler {resampler!r}. Use {RESAMPLER} or {LEGACY_RESAMPLER}.")
        self.size = size
        self.crop_pct = crop_pct
        self.interpolation = interpolation
        self.resampler = resampler

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        height, width = img.shape[:2]
        new_h, new_w = resized_shape(height, width, math.floor(self.size / self.crop_pct))
        name = _INTERPOLATION_NAMES.get(self.interpolation)
        if self.resampler == RESAMPLER:
            return eval_crop(img, {"image_size": self.size, "crop_pct": self.crop_pct, "interpolation": name,
                                   "resampler": RESAMPLER})
        if new_h > height and name is not None:
            # Enlarging (images smaller than the crop): the exported bundle's own eval crop, not OpenCV,
            # whose rounding differs by one level on ~1e-5 of the pixels: enough to move a probability by
            # 2e-4 (export parity allows 1e-4). One implementation, the same pixels in both.
            return eval_crop(img, {"image_size": self.size, "crop_pct": self.crop_pct, "interpolation": name})
        if (new_h, new_w) != (height, width):
            downscale = new_h < height
            flag = cv2.INTER_AREA if downscale else self.interpolation
            img = cv2.resize(img, (new_w, new_h), interpolation=flag)
        # The shorter side is floor(size / crop_pct) >= size, so the crop always fits.
        top, left = center_crop_offsets(new_h, new_w, self.size)
        return np.ascontiguousarray(img[top : top + self.size, left : left + self.size])

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("size", "crop_pct", "interpolation", "resampler")


class PillowRandomResizedCrop(A.RandomResizedCrop):
    """albumentations' RandomResizedCrop (the same random boxes, the same random stream) resized by
    Pillow, as timm's training transform does (RandomResizedCropAndInterpolation): the fine-tune then
    learns from pixels resampled like the eval crop's, not OpenCV's (cubic a = -0.75, area shrink)."""

    def apply(self, img: np.ndarray, crop_coords: tuple[int, int, int, int], **params: Any) -> np.ndarray:
        x1, y1, x2, y2 = crop_coords
        crop = Image.fromarray(np.ascontiguousarray(img[y1:y2, x1:x2]))
        resample = PIL_FILTERS[_INTERPOLATION_NAMES.get(self.interpolation, "bicubic")]
        height, width = self.size
        return np.asarray(crop.resize((width, height), resample))


def center_crop_offsets(height: int, width: int, size: int) -> tuple[int, int]:
    """(top, left) of torchvision's CenterCrop(size) on a height x width image."""
    return round((height - size) / 2.0), round((width - size) / 2.0)


class ImageTransform:
    """An albumentations pipeline as a plain callable: image in, transformed image out.

    All operations draw from one shared random stream. (albumentations' own `Compose(seed=...)` gives
    every operation its own generator with the same seed, which makes, say, the horizontal and
    vertical flips always fire together.) Inside a torch DataLoader worker, the pipeline reseeds itself
    from the worker's seed on first use, so forked workers do not repeat each other's augmentations.
    """

    def __init__(self, compose: A.Compose, seed: int | None = None) -> None:
        self.compose = compose
        self._worker_seed: int | None = None
        self.reseed(seed)

    def __call__(self, image: np.ndarray | Image.Image) -> Any:
        self._reseed_for_worker()
        return self.compose(image=as_rgb_array(image))["image"]

    def reseed(self, seed: int | None) -> None:
        """Restart the random sequence from `seed` (same seed => same augmentations; None => fresh)."""
        self.compose.set_random_state(np.random.default_rng(seed), random.Random(seed))

    def _reseed_for_worker(self) -> None:
        info = torch.utils.data.get_worker_info()
        if info is not None and self._worker_seed != info.seed:
            self._worker_seed = info.seed
            self.reseed(info.seed % 2**32)

    def __repr__(self) -> str:
        return f"ImageTransform({self.compose!r})"


def as_rgb_array(image: np.ndarray | Image.Image) -> np.ndarray:
    """The image as a contiguous RGB uint8 HxWx3 array; StudioError for anything else."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise StudioError(
            f"Expected an RGB uint8 image of shape (height, width, 3), got {dtype} with shape {shape}. "
            "Load images with studio.data.imaging.load_rgb."
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise StudioError("The image is empty (zero height or width).")
    return np.ascontiguousarray(image)


def _augmentations(cfg: AugmentConfig, image_size: int, interpolation: int) -> list[A.BasicTransform]:
    """Geometry to image_size, then the random operations the config turns on."""
    ops: list[A.BasicTransform] = []
    if cfg.scale < 1.0:
        ops.append(
            PillowRandomResizedCrop(
                size=(image_size, image_size),
                scale=(cfg.scale, 1.0),
                ratio=(3 / 4, 4 / 3),
                interpolation=interpolation,
            )
        )
    else:  # no random crop: the whole central square, as the model will see it at eval (crop_pct 1)
        ops.append(ResizeShorterCenterCrop(image_size, crop_pct=1.0, interpolation=interpolation,
                                           resampler=RESAMPLER))
    if cfg.hflip > 0:
        ops.append(A.HorizontalFlip(p=cfg.hflip))
    if cfg.vflip > 0:
        ops.append(A.VerticalFlip(p=cfg.vflip))
    if cfg.rotate > 0:
        ops.append(
            A.Affine(
                rotate=(-cfg.rotate, cfg.rotate),
                interpolation=cv2.INTER_LINEAR,
                border_mode=_ROTATE_BORDER,
                p=1.0,
            )
        )
    if cfg.color_jitter > 0:
        s = cfg.color_jitter
        ops.append(A.ColorJitter(brightness=s, contrast=s, saturation=s, hue=s / 5, p=0.8))
    if cfg.blur > 0:
        ops.append(A.GaussianBlur(blur_limit=0, sigma_limit=(0.1, 1.5), p=cfg.blur))
    if cfg.randaugment:
        ops.append(build_randaugment(cfg.randaugment_n, cfg.randaugment_m))
    return ops


def _normalize(mean: Sequence[float], std: Sequence[float]) -> list[A.BasicTransform]:
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise StudioError(f"Normalization needs 3 means and 3 positive stds, got mean={mean}, std={std}.")
    return [A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0), ToTensorV2()]


def _check_size(image_size: int) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 16 <= image_size <= 2048:
        raise StudioError(
            f"Image size must be a whole number of pixels between 16 and 2048, got {image_size!r}."
        )
    return image_size


def build_train_transform(
    cfg: AugmentConfig,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    interpolation: str = "bicubic",
    seed: int | None = None,
) -> ImageTransform:
    """Training pipeline: the config's augmentations, then normalize to a float32 CHW tensor.

    CutMix/MixUp are not here: they mix whole batches (`studio.augment.mix.mix_batch`).
    """
    ops = _augmentations(cfg, _check_size(image_size), interpolation_flag(interpolation))
    return ImageTransform(A.Compose([*ops, *_normalize(mean, std)]), seed)


def build_eval_transform(
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    crop_pct: float = DEFAULT_CROP_PCT,
    *,
    interpolation: str = "bicubic",
    resampler: str = RESAMPLER,
) -> ImageTransform:
    """timm's eval preprocessing: resize shorter side to floor(size / crop_pct), center-crop, normalize."""
    if not 0.1 <= crop_pct <= 1.0:
        raise StudioError(f"crop_pct must be between 0.1 and 1.0 (timm uses 0.875 to 1.0), got {crop_pct!r}.")
    geometry = ResizeShorterCenterCrop(_check_size(image_size), crop_pct, interpolation_flag(interpolation),
                                       resampler)
    return ImageTransform(A.Compose([geometry, *_normalize(mean, std)]), seed=0)


def build_preview_transform(
    cfg: AugmentConfig,
    image_size: int,
    *,
    interpolation: str = "bicubic",
    seed: int | None = None,
) -> ImageTransform:
    """The training augmentations without normalization: returns uint8 HxWx3 images to show users."""
    ops = _augmentations(cfg, _check_size(image_size), interpolation_flag(interpolation))
    return ImageTransform(A.Compose(ops), seed)
