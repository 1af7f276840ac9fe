"""Augmentation settings: one serializable dataclass and a few named, moderate presets.

A config holds strengths only; `studio.augment.transforms` turns it into an albumentations pipeline.
Presets stay moderate on purpose: with a few hundred images and a pretrained backbone, strong
augmentation mostly slows convergence and can erase the small cues that separate classes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from studio.errors import StudioError

# (min, max, kind) for every strength field; kind "int" fields must be whole numbers.
_RANGES: dict[str, tuple[float, float, str]] = {
    "hflip": (0.0, 1.0, "float"),
    "vflip": (0.0, 1.0, "float"),
    "rotate": (0.0, 180.0, "float"),
    "scale": (0.05, 1.0, "float"),
    "color_jitter": (0.0, 0.5, "float"),
    "blur": (0.0, 1.0, "float"),
    "randaugment_n": (0, 6, "int"),
    "randaugment_m": (0.0, 30.0, "float"),
    "cutmix": (0.0, 4.0, "float"),
    "mixup": (0.0, 4.0, "float"),
    "mix_prob": (0.0, 1.0, "float"),
}

_UNITS = {
    "hflip": "a probability",
    "vflip": "a probability",
    "rotate": "degrees",
    "scale": "the smallest crop area fraction",
    "color_jitter": "a jitter strength",
    "blur": "a probability",
    "randaugment_n": "a number of operations",
    "randaugment_m": "a RandAugment magnitude (timm scale, 9 is typical)",
    "cutmix": "a Beta alpha (0 turns CutMix off)",
    "mixup": "a Beta alpha (0 turns MixUp off)",
    "mix_prob": "the fraction of batches mixed",
}

CUSTOM = "custom"


@dataclass(frozen=True)
class AugmentConfig:
    """What training augmentation does. Defaults are the `light` preset.

    preset: the preset these values came from (`custom` when built by hand); informative only,
        the pipeline is built from the strengths below.
    hflip / vflip: probability of a horizontal / vertical flip.
    rotate: maximum rotation in degrees (uniform in ±rotate).
    scale: smallest area fraction kept by the random resized crop (0.8 => crops cover 80-100%);
        1.0 means no random crop (resize and center crop).
    color_jitter: brightness/contrast/saturation jitter (±fraction); hue jitter is a fifth of it.
    blur: probability of a mild Gaussian blur.
    randaugment_n / randaugment_m: RandAugment operations per image and magnitude (timm's scale:
        10 is timm's usual maximum, up to 30 allowed for stronger settings); n=0 turns it off.
    cutmix / mixup: Beta alpha of CutMix / MixUp on batches; 0 turns each off.
    mix_prob: fraction of batches that get CutMix or MixUp when either is on.
    """

    preset: str = "light"
    hflip: float = 0.5
    vflip: float = 0.0
    rotate: float = 0.0
    scale: float = 0.8
    color_jitter: float = 0.1
    blur: float = 0.0
    randaugment_n: int = 0
    randaugment_m: float = 9.0
    cutmix: float = 0.0
    mixup: float = 0.0
    mix_prob: float = 1.0

    def __post_init__(self) -> None:
        if self.preset not in PRESETS and self.preset != CUSTOM:
            raise StudioError(_unknown_preset_message(self.preset))
        for name, (low, high, kind) in _RANGES.items():
            value = getattr(self, name)
            # bool is an int subclass; True as a strength is almost surely a mistake.
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise StudioError(
                    f"Augmentation setting '{name}' must be a number ({_UNITS[name]}), got {value!r}."
                )
            if kind == "int" and value != int(value):
                raise StudioError(f"Augmentation setting '{name}' must be a whole number, got {value!r}.")
            if not low <= value <= high:
                raise StudioError(
                    f"Augmentation setting '{name}' = {value!r} is out of range: use {_UNITS[name]} "
                    f"between {low:g} and {high:g}."
                )
            object.__setattr__(self, name, int(value) if kind == "int" else float(value))

    @property
    def mixing(self) -> bool:
        """True when batches get CutMix or MixUp."""
        return (self.cutmix > 0 or self.mixup > 0) and self.mix_prob > 0

    @property
    def randaugment(self) -> bool:
        """True when RandAugment operations are applied."""
        return self.randaugment_n > 0 and self.randaugment_m > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        """Rebuild a config; fields left out take the values of the named preset (default `light`)."""
        if not isinstance(data, dict):
            raise StudioError(f"Augmentation settings must be a JSON object, got {type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise StudioError(
                f"Unknown augmentation setting(s): {', '.join(unknown)}. "
                f"Known settings: {', '.join(sorted(known))}."
            )
        name = data.get("preset", "light")
        if not isinstance(name, str):
            raise StudioError(f"Augmentation preset must be a name, got {name!r}.")
        base = dict(PRESETS[DEFAULT_PRESET]) if name == CUSTOM else _preset_values(name)
        return cls(**{**base, **data, "preset": name})

    @classmethod
    def preset_config(cls, name: str, **overrides: Any) -> AugmentConfig:
        """The named preset, optionally with some strengths changed (the preset name is kept)."""
        return preset(name, **overrides)


# Every operation off; presets below say only what they turn on. Kept moderate: see the module docstring.
_OFF: dict[str, Any] = {
    "hflip": 0.0,
    "vflip": 0.0,
    "rotate": 0.0,
    "scale": 1.0,
    "color_jitter": 0.0,
    "blur": 0.0,
    "randaugment_n": 0,
    "randaugment_m": 9.0,
    "cutmix": 0.0,
    "mixup": 0.0,
    "mix_prob": 1.0,
}

PRESETS: dict[str, dict[str, Any]] = {
    "none": dict(_OFF),
    "light": {**_OFF, "hflip": 0.5, "scale": 0.8, "color_jitter": 0.1},
    "medium": {**_OFF, "hflip": 0.5, "rotate": 15.0, "scale": 0.6, "color_jitter": 0.2, "blur": 0.1},
    # Adds vertical flips: for images without a natural "up" (microscopy, scanned leaves, top-down
    # inspection), plus CutMix/MixUp on half the batches.
    "heavy": {
        **_OFF,
        "hflip": 0.5,
        "vflip": 0.5,
        "rotate": 30.0,
        "scale": 0.4,
        "color_jitter": 0.3,
        "blur": 0.2,
        "cutmix": 1.0,
        "mixup": 0.2,
        "mix_prob": 0.5,
    },
    "randaugment": {**_OFF, "hflip": 0.5, "scale": 0.8, "randaugment_n": 2, "randaugment_m": 9.0},
}

PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)
DEFAULT_PRESET = "light"


def _unknown_preset_message(name: str) -> str:
    return f"Unknown augmentation preset {name!r}. Choose one of: {', '.join(PRESET_NAMES)}."


def _preset_values(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise StudioError(_unknown_preset_message(name))
    return dict(PRESETS[name])


def preset(name: str, **overrides: Any) -> AugmentConfig:
    """The named preset's config, with optional strength overrides (validated like any config)."""
    unknown = sorted(set(overrides) - set(_RANGES))
    if unknown:
        raise StudioError(
            f"Unknown augmentation setting(s): {', '.join(unknown)}. Known settings: {', '.join(_RANGES)}."
        )
    return AugmentConfig(preset=name, **{**_preset_values(name), **overrides})
