import random
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import timm.data
import torch
from conftest import make_image
from PIL import Image

from studio.augment import (
    PRESET_NAMES,
    ImageTransform,
    build_eval_transform,
    build_preview_transform,
    build_train_transform,
    preset,
)
from studio.augment.randaugment import build_randaugment
from studio.augment.transforms import center_crop_offsets, resized_shape
from studio.errors import StudioError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIZE = 64


def timm_eval(image: np.ndarray, size: int, crop_pct: float, interpolation: str) -> torch.Tensor:
    transform = timm.data.create_transform(
        (3, size, size), is_training=False, crop_pct=crop_pct, interpolation=interpolation, mean=MEAN, std=STD
    )
    return transform(Image.fromarray(image))


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_gives_normalized_chw_float_tensor(name, image):
    transform = build_train_transform(preset(name), SIZE, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), seed=0)
    for _ in range(3):
        out = transform(image)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
        assert tuple(out.shape) == (3, SIZE, SIZE)
        # (0 - 0.5) / 0.25 .. (1 - 0.5) / 0.25
        assert out.min() >= -2.0 - 1e-6 and out.max() <= 2.0 + 1e-6
        assert out.std() > 0.1  # normalized, not left in 0..1 or 0..255


def test_normalization_uses_mean_and_std():
    gray = np.full((40, 50, 3), 128, np.uint8)
    out = build_train_transform(preset("none"), 32, MEAN, STD)(gray)
    expected = (128 / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(out.mean(dim=(1, 2)), expected, atol=1e-5)


def test_train_transform_is_random_but_reproducible_by_seed(image):
    a = build_train_transform(preset("medium"), SIZE, MEAN, STD, seed=3)
    b = build_train_transform(preset("medium"), SIZE, MEAN, STD, seed=3)
    first = [a(image) for _ in range(4)]
    assert all(torch.equal(x, b(image)) for x in first)
    assert not all(torch.equal(first[0], x) for x in first[1:])


def test_random_operations_fire_independently():
    # An asymmetric image: which flips happened is readable from where the bright corner ends up.
    corner = np.zeros((32, 32, 3), np.uint8)
    corner[:8, :8] = 255
    transform = build_preview_transform(preset("none", hflip=0.5, vflip=0.5), 32, seed=0)
    seen = set()
    for _ in range(40):
        out = transform(corner)
        seen.add(
            (
                bool(out[0, -1, 0] == 255 or out[-1, -1, 0] == 255),
                bool(out[-1, 0, 0] == 255 or out[-1, -1, 0] == 255),
            )
        )
    assert seen == {(False, False), (True, False), (False, True), (True, True)}


def test_none_preset_is_deterministic(image):
    transform = build_train_transform(preset("none"), SIZE, MEAN, STD)
    assert torch.equal(transform(image), transform(image))


def test_workers_get_different_augmentations(monkeypatch, image):
    def outputs(worker_seed: int) -> list[torch.Tensor]:
        transform = build_train_transform(preset("light"), SIZE, MEAN, STD, seed=0)
        info = SimpleNamespace(seed=worker_seed, id=0)
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: info)
        return [transform(image) for _ in range(3)]

    worker_a, worker_a_again, worker_b = outputs(100), outputs(100), outputs(101)
    assert all(torch.equal(x, y) for x, y in zip(worker_a, worker_a_again))
    assert not all(torch.equal(x, y) for x, y in zip(worker_a, worker_b))


@pytest.mark.parametrize("shape", [(90, 120), (120, 90), (50, 50), (300, 170)])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_eval_transform_matches_timm(shape, interpolation):
    image = make_image(*shape)
    ours = build_eval_transform(SIZE, MEAN, STD, 0.875, interpolation=interpolation)(image)
    reference = timm_eval(image, SIZE, 0.875, interpolation)
    assert ours.shape == reference.shape == (3, SIZE, SIZE) and ours.dtype == torch.float32
    # The eval transform resamples with Pillow, as timm does: the same pixels, not just close ones.
    assert torch.allclose(ours, reference, atol=1e-5)


@pytest.mark.parametrize("shape", [(73, 91), (91, 73), (73, 73), (73, 100)])
def test_eval_crop_geometry_is_identical_to_timm(shape):
    # Shorter side = floor(64 / 0.875) = 73: no resize, so a noise image must crop pixel-exactly.
    noise = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    ours = build_eval_transform(SIZE, MEAN, STD, 0.875)(noise)
    assert torch.allclose(ours, timm_eval(noise, SIZE, 0.875, "bicubic"), atol=1e-5)


def test_resize_and_crop_sizes_follow_torchvision():
    from torchvision.transforms import functional as F

    for h, w in [(300, 401), (401, 300), (333, 500), (999, 257)]:
        new_h, new_w = resized_shape(h, w, 256)
        assert F.resize(Image.new("RGB", (w, h)), 256).size == (new_w, new_h)
    assert center_crop_offsets(257, 300, 224) == (round(33 / 2), round(76 / 2))


def test_eval_transform_is_deterministic_and_accepts_pil(image):
    transform = build_eval_transform(SIZE, MEAN, STD, crop_pct=1.0)
    out = transform(image)
    assert torch.equal(out, transform(image))
    assert torch.equal(out, transform(Image.fromarray(image)))


def test_preview_transform_returns_uint8_images(image):
    out = build_preview_transform(preset("heavy"), SIZE, seed=0)(image)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (SIZE, SIZE, 3)


def test_randaugment_changes_images_and_keeps_shape(image):
    import albumentations as A

    transform = ImageTransform(A.Compose([build_randaugment(2, 9)]), seed=0)
    outs = [transform(image) for _ in range(8)]
    assert all(o.shape == image.shape and o.dtype == np.uint8 for o in outs)
    assert sum(not np.array_equal(o, image) for o in outs) >= 4


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((20, 20), np.uint8),
        np.zeros((20, 20, 4), np.uint8),
        np.zeros((20, 20, 3), np.float32),
        "img.png",
    ],
)
def test_bad_images_raise_studio_error(bad):
    with pytest.raises(StudioError, match="RGB uint8"):
        build_eval_transform(SIZE, MEAN, STD)(bad)


def test_bad_arguments_raise_studio_error():
    with pytest.raises(StudioError, match="interpolation"):
        build_eval_transform(SIZE, MEAN, STD, interpolation="lanczos9")
    with pytest.raises(StudioError, match="crop_pct"):
        build_eval_transform(SIZE, MEAN, STD, crop_pct=1.5)
    with pytest.raises(StudioError, match="Image size"):
        build_train_transform(preset("light"), 0, MEAN, STD)
    with pytest.raises(StudioError, match="3 means"):
        build_train_transform(preset("light"), SIZE, (0.5,), STD)


@pytest.mark.parametrize("shape", [(90, 120), (300, 170)])  # enlarged and shrunk crops
def test_training_crop_resamples_like_timm_s_train_transform(shape):
    """The random crop's box is albumentations', its pixels timm's (torchvision's resized_crop on a PIL
    image, what RandomResizedCropAndInterpolation does): training sees the eval crop's resampling."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    from studio.augment.transforms import PillowRandomResizedCrop

    image = make_image(*shape)
    crop = PillowRandomResizedCrop(size=(SIZE, SIZE), scale=(0.3, 1.0), interpolation=cv2.INTER_CUBIC)
    crop.set_random_state(np.random.default_rng(3), random.Random(3))
    for _ in range(5):
        params = crop.get_params_dependent_on_data({"shape": image.shape}, {"image": image})
        x1, y1, x2, y2 = params["crop_coords"]
        ours = crop.apply(image, params["crop_coords"])
        theirs = F.resized_crop(Image.fromarray(image), y1, x1, y2 - y1, x2 - x1, [SIZE, SIZE],
                                InterpolationMode.BICUBIC)
        assert ours.shape == (SIZE, SIZE, 3) and np.array_equal(ours, np.asarray(theirs))
