"""RandAugment built from albumentations operations.

albumentations has no RandAugment, so this is `RandomOrder(ops, n)` (SomeOf without the sorting) with each
op's range scaled by the magnitude the way timm's `rand-mX` does it (timm.data.auto_augment): the fraction
`m / 10` of each op's maximum, each op applied with probability 0.5 (timm's default), signs random.
"""

from __future__ import annotations

import albumentations as A
import cv2

# timm's _LEVEL_DENOM: magnitude 10 maps to each op's full range.
_LEVEL_DENOM = 10.0
# Fill for pixels that geometric ops uncover: ImageNet mean colour, as timm does.
_FILL = (124, 116, 104)
_OP_PROB = 0.5


def _affine(**kwargs: object) -> A.Affine:
    return A.Affine(
        interpolation=cv2.INTER_LINEAR,
        border_mode=cv2.BORDER_CONSTANT,
        fill=_FILL,
        p=_OP_PROB,
        **kwargs,
    )


def randaugment_ops(magnitude: float) -> list[A.BasicTransform]:
    """The RandAugment operations at `magnitude` (timm scale) as albumentations transforms."""
    level = max(0.0, magnitude) / _LEVEL_DENOM
    rotate = 30.0 * level  # degrees, as timm
    shear = 16.7 * level  # degrees: timm shears by a factor of 0.3 * level, atan(0.3) ~ 16.7 deg
    translate = 0.45 * level  # fraction of the image side, timm's translate_pct
    enhance = 0.9 * level  # factor 1 ± enhance for brightness/contrast/colour, timm's "increasing" ops
    posterize_bits = max(1, 8 - round(4 * min(level, 1.75)))  # keeps at least 1 bit
    solarize_low = max(0.0, 1.0 - level)  # threshold as a fraction of 255; 1.0 leaves the image as is
    return [
        _affine(rotate=(-rotate, rotate)),
        _affine(shear={"x": (-shear, shear), "y": (0.0, 0.0)}),
        _affine(shear={"x": (0.0, 0.0), "y": (-shear, shear)}),
        _affine(translate_percent={"x": (-translate, translate), "y": (0.0, 0.0)}),
        _affine(translate_percent={"x": (0.0, 0.0), "y": (-translate, translate)}),
        A.ColorJitter(brightness=enhance, contrast=0.0, saturation=0.0, hue=0.0, p=_OP_PROB),
        A.ColorJitter(brightness=0.0, contrast=enhance, saturation=0.0, hue=0.0, p=_OP_PROB),
        A.ColorJitter(brightness=0.0, contrast=0.0, saturation=enhance, hue=0.0, p=_OP_PROB),
        A.Sharpen(alpha=(0.0, min(1.0, enhance)), lightness=(1.0, 1.0), p=_OP_PROB),
        A.Posterize(num_bits=(posterize_bits, 8), p=_OP_PROB),
        A.Solarize(threshold_range=(solarize_low, 1.0), p=_OP_PROB),
        A.Equalize(mode="cv", by_channels=True, p=_OP_PROB),
        A.AutoContrast(p=_OP_PROB),
    ]


def build_randaugment(num_ops: int, magnitude: float) -> A.RandomOrder:
    """`num_ops` operations drawn per image from `randaugment_ops`, with replacement and applied in
    the drawn order, like timm (albumentations' SomeOf would sort them into list order)."""
    return A.RandomOrder(randaugment_ops(magnitude), n=num_ops, replace=True, p=1.0)
