"""What an augmentation config does, shown to people: sample images and a one-line description."""

from __future__ import annotations

import numpy as np
import torch

from studio.augment.mix import mix_batch
from studio.augment.presets import AugmentConfig
from studio.augment.transforms import as_rgb_array, build_preview_transform
from studio.errors import StudioError

_MAX_PREVIEWS = 64


def preview(
    image: np.ndarray,
    cfg: AugmentConfig,
    n: int = 9,
    seed: int = 0,
    image_size: int = 224,
    *,
    other: np.ndarray | None = None,
) -> list[np.ndarray]:
    """`n` augmented versions of `image` (RGB uint8 HxWx3 each), the same for the same seed.

    When the config mixes batches (CutMix/MixUp) and `other` is given, each sample is mixed with an
    augmented `other` the way a training batch would be (including the config's mix probability).
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= _MAX_PREVIEWS:
        raise StudioError(f"Number of previews must be between 1 and {_MAX_PREVIEWS}, got {n!r}.")
    image = as_rgb_array(image)
    transform = build_preview_transform(cfg, image_size, seed=seed)
    samples = [transform(image) for _ in range(n)]
    if other is None or not cfg.mixing:
        return samples
    other = as_rgb_array(other)
    generator = torch.Generator().manual_seed(seed)
    return [_mix_pair(sample, transform(other), cfg, generator) for sample in samples]


def _mix_pair(
    first: np.ndarray, second: np.ndarray, cfg: AugmentConfig, generator: torch.Generator
) -> np.ndarray:
    """`first` mixed with `second` by mix_batch, as uint8 HxWx3."""
    batch = torch.from_numpy(np.stack([first, second])).permute(0, 3, 1, 2).float()
    mixed, _ = mix_batch(batch, torch.tensor([0, 1]), 2, cfg.cutmix, cfg.mixup, cfg.mix_prob, generator)
    return mixed[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def describe(cfg: AugmentConfig) -> str:
    """A short human description, e.g. "flip 50%, crop 80-100%, color ±10%"."""
    parts: list[str] = []
    if cfg.hflip > 0:
        parts.append(f"flip {_percent(cfg.hflip)}")
    if cfg.vflip > 0:
        parts.append(f"vertical flip {_percent(cfg.vflip)}")
    if cfg.scale < 1.0:
        parts.append(f"crop {cfg.scale * 100:.0f}-100%")
    if cfg.rotate > 0:
        parts.append(f"rotate ±{cfg.rotate:g}°")
    if cfg.color_jitter > 0:
        parts.append(f"color ±{_percent(cfg.color_jitter)}")
    if cfg.blur > 0:
        parts.append(f"blur {_percent(cfg.blur)}")
    if cfg.randaugment:
        ops = "op" if cfg.randaugment_n == 1 else "ops"
        parts.append(f"RandAugment {cfg.randaugment_n} {ops} at magnitude {cfg.randaugment_m:g}")
    if cfg.mixing:
        mixes = [
            f"{name} α{alpha:g}"
            for name, alpha in (("CutMix", cfg.cutmix), ("MixUp", cfg.mixup))
            if alpha > 0
        ]
        parts.append(f"{' or '.join(mixes)} on {_percent(cfg.mix_prob)} of batches")
    if not parts:
        return "no augmentation (resize and center crop only)"
    return ", ".join(parts)
