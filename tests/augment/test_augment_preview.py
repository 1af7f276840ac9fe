import numpy as np
import pytest

from studio.augment import PRESET_NAMES, describe, preset, preview
from studio.errors import StudioError


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_preview_is_deterministic_per_seed(image):
    cfg = preset("medium")
    first = preview(image, cfg, n=4, seed=1, image_size=48)
    assert len(first) == 4 and all(p.shape == (48, 48, 3) and p.dtype == np.uint8 for p in first)
    assert same(first, preview(image, cfg, n=4, seed=1, image_size=48))
    assert not same(first, preview(image, cfg, n=4, seed=2, image_size=48))
    assert not all(np.array_equal(first[0], p) for p in first[1:])  # the samples differ from each other


def test_preview_mixes_with_other_image_when_config_mixes(image, other_image):
    cfg = preset("light", mixup=1.0, mix_prob=1.0)
    plain = preview(image, cfg, n=3, seed=0, image_size=48)
    mixed = preview(image, cfg, n=3, seed=0, image_size=48, other=other_image)
    assert same(mixed, preview(image, cfg, n=3, seed=0, image_size=48, other=other_image))
    assert not same(plain, mixed)
    # A config without mixing ignores the other image.
    light = preset("light")
    assert same(
        preview(image, light, n=2, image_size=48),
        preview(image, light, n=2, image_size=48, other=other_image),
    )


def test_preview_rejects_bad_count(image):
    with pytest.raises(StudioError, match="previews"):
        preview(image, preset("light"), n=0)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_describe_every_preset(name):
    text = describe(preset(name))
    assert text and len(text) < 200


def test_describe_names_the_settings():
    assert describe(preset("light")) == "flip 50%, crop 80-100%, color ±10%"
    assert describe(preset("none")).startswith("no augmentation")
    assert "RandAugment 2 ops at magnitude 9" in describe(preset("randaugment"))
    heavy = describe(preset("heavy"))
    assert (
        "vertical flip 50%" in heavy and "CutMix" in heavy and "MixUp" in heavy and "50% of batches" in heavy
    )
