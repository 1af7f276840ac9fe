"""The bundle's numpy + Pillow preprocessing must reproduce the studio's eval crop pixel for pixel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers_images import make_image, write_odd_images

from studio.augment.transforms import ResizeShorterCenterCrop, interpolation_flag
from studio.data.imaging import load_rgb
from studio.export import standalone


def _smooth(height: int, width: int, seed: int) -> np.ndarray:
    """Photo-like content (smooth gradients + noise): resampling ties happen as in real images."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([np.sin(xx / (5 + 4 * c)) * np.cos(yy / (6 + 3 * c)) for c in range(3)], axis=-1)
    return np.clip(128 + 90 * base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(6))
def test_area_shrink_matches_opencv_exactly(seed):
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(40, 300, 2))
    image = _smooth(height, width, seed)
    for factor in (1.3, 2.0, 2.7, 4.0):
        new_h, new_w = max(1, int(height / factor)), max(1, int(width / factor))
        expected = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        assert np.array_equal(standalone.resize_area(image, new_h, new_w), expected), (height, width, factor)


def test_whole_number_block_means_round_like_opencv():
    image = _smooth(60, 90, 1)
    for fy, fx in ((2, 2), (3, 3), (2, 3), (4, 4)):
        expected = cv2.resize(image, (90 // fx, 60 // fy), interpolation=cv2.INTER_AREA)
        assert np.array_equal(standalone.resize_area(image, 60 // fy, 90 // fx), expected), (fy, fx)


def test_bicubic_enlarge_matches_opencv_to_the_rounding_of_a_few_ties():
    image = _smooth(23, 41, 2)
    expected = cv2.resize(image, (67, 37), interpolation=cv2.INTER_CUBIC).astype(int)
    ours = standalone.resize_interpolate(image, 37, 67, "bicubic").astype(int)
    assert np.abs(ours - expected).max() <= 1
    assert (ours != expected).mean() < 1e-3


@pytest.mark.parametrize("size,crop_pct", [(32, 0.875), (48, 0.95), (224, 0.875), (64, 1.0)])
def test_eval_crop_equals_the_studio_eval_geometry(size, crop_pct):
    preprocessing = {"image_size": size, "crop_pct": crop_pct, "interpolation": "bicubic"}
    geometry = ResizeShorterCenterCrop(size, crop_pct, interpolation_flag("bicubic"))
    for height, width in ((480, 640), (451, 300), (512, 512), (size, size + 7), (300, 97)):
        image = _smooth(height, width, height + width)
        ours = standalone.eval_crop(image, preprocessing)
        expected = geometry.apply(image)
        assert ours.shape == (size, size, 3)
        # Bit-exact both ways: shrinking matches OpenCV's area resize; enlarging (images smaller than the
        # crop) runs the same numpy code in the studio and the bundle (OpenCV's own bicubic rounding
        # differs by one level on ~1e-5 of the pixels, which moved a probability by 2e-4 on 48 px images).
        assert np.array_equal(ours, expected), (height, width)


@pytest.mark.parametrize("height,width", [(48, 48), (37, 300), (60, 4000), (100, 77)])
def test_an_enlarged_eval_crop_computes_only_its_window_and_equals_the_whole_resize_cropped(height, width):
    image = _smooth(height, width, height * width)
    size, crop_pct = 224, 0.875
    new_h, new_w = standalone.resized_shape(height, width, int(size / crop_pct))
    whole = standalone.resize_interpolate(image, new_h, new_w, "bicubic")
    top, left = round((new_h - size) / 2.0), round((new_w - size) / 2.0)
    preprocessing = {"image_size": size, "crop_pct": crop_pct, "interpolation": "bicubic"}
    assert np.array_equal(standalone.eval_crop(image, preprocessing), whole[top:top + size, left:left + size])
    opencv = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
    near_opencv = opencv[top:top + size, left:left + size]
    difference = np.abs(standalone.eval_crop(image, preprocessing).astype(int) - near_opencv)
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3


def test_decoding_equals_the_studio_loader_for_awkward_files(tmp_path):
    paths = write_odd_images(tmp_path)
    for name, path in paths.items():
        assert np.array_equal(standalone.load_image(path), np.asarray(load_rgb(path))), name


def test_big_jpegs_are_draft_decoded_like_the_studio(tmp_path):
    path = tmp_path / "big.jpg"
    make_image((400, 300), seed=5).save(path, quality=92)
    ours = standalone.load_image(path, draft_size=36)
    assert ours.shape[0] < 300  # decoded at a reduced DCT scale
    assert np.array_equal(ours, np.asarray(load_rgb(path, draft_size=36)))
    assert standalone.draft_size({"image_size": 32, "crop_pct": 0.875}) == 36


def test_tta_views_are_the_studio_s_crop_for_crop(tmp_path):
    """`predict.py --tta` averages exactly the studio's TTA views: same zooms, same crops, same order."""
    from studio.predict.inference import TTA_VIEWS, Cropper, zooms_of

    assert tuple(zooms_of(TTA_VIEWS)) == standalone.TTA_ZOOMS
    # each zoom, then its mirror image
    assert [v.flip for v in TTA_VIEWS] == [False, True] * len(standalone.TTA_ZOOMS)
    preprocessing = {"image_size": 48, "crop_pct": 0.875, "interpolation": "bicubic",
                     "mean": [0.5] * 3, "std": [0.5] * 3}
    for index, size in enumerate(((400, 300), (96, 200), (640, 480))):
        path = tmp_path / f"photo{index}.jpg"
        make_image(size, seed=index).save(path, quality=90)
        ours = standalone.preprocess_views(path, preprocessing, standalone.TTA_ZOOMS)
        studio = Cropper(preprocessing, standalone.TTA_ZOOMS)(path)
        assert ours.shape == studio.shape == (2, 48, 48, 3)
        assert np.abs(ours.astype(int) - studio).max() <= 1  # bit-exact but for rare enlarging ties
        assert not np.array_equal(ours[0], ours[1])  # the whole frame is another view, not a copy


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_the_pillow_eval_crop_is_timm_s_eval_transform_pixel_for_pixel(interpolation):
    """New runs crop as timm's own eval transform does (Pillow, antialiased when shrinking): shrinking
    photos and enlarging small scans alike, so a plain script and the studio see the same pixels."""
    import timm
    from PIL import Image

    size, crop_pct = 64, 0.875
    timm_geometry = timm.data.create_transform((3, size, size), is_training=False, crop_pct=crop_pct,
                                               interpolation=interpolation).transforms[:2]
    preprocessing = {"image_size": size, "crop_pct": crop_pct, "interpolation": interpolation,
                     "resampler": standalone.RESAMPLER}
    studio = ResizeShorterCenterCrop(size, crop_pct, interpolation_flag(interpolation), standalone.RESAMPLER)
    for height, width in ((480, 640), (451, 300), (73, 90), (40, 51), (64, 300), (300, 41)):
        image = _smooth(height, width, height + width)
        expected = Image.fromarray(image)
        for step in timm_geometry:
            expected = step(expected)
        ours = standalone.eval_crop(image, preprocessing)
        assert np.array_equal(ours, np.asarray(expected)), (height, width)
        assert np.array_equal(studio.apply(image), ours)


def test_a_very_elongated_image_resamples_only_the_crop_s_window():
    image = _smooth(20, 12000, 3)  # the whole resize would be 256 x 153600 pixels
    preprocessing = {"image_size": 224, "crop_pct": 0.875, "interpolation": "bicubic",
                     "resampler": standalone.RESAMPLER}
    crop = standalone.eval_crop(image, preprocessing)
    assert crop.shape == (224, 224, 3)
    new_h, new_w = standalone.resized_shape(20, 12000, 256)
    top, left = round((new_h - 224) / 2), round((new_w - 224) / 2)
    from PIL import Image

    whole = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BICUBIC))
    difference = np.abs(crop.astype(int) - whole[top:top + 224, left:left + 224])
    assert difference.max() <= 2 and (difference > 0).mean() < 0.05  # the window's rounding, no more


def test_runs_recorded_before_the_resampler_keep_their_opencv_geometry():
    """A checkpoint or bundle without `resampler` predicts exactly as it did when it was made."""
    from studio.predict.inference import Cropper

    legacy = {"image_size": 48, "crop_pct": 0.875, "interpolation": "bicubic", "mean": [0.5] * 3,
              "std": [0.5] * 3}
    image = _smooth(300, 200, 7)
    old_geometry = ResizeShorterCenterCrop(48, 0.875, interpolation_flag("bicubic"))
    assert np.array_equal(Cropper(legacy, [1.0])(image)[0], old_geometry.apply(image))
    assert np.array_equal(standalone.eval_crop(image, legacy), old_geometry.apply(image))
    pillow = Cropper({**legacy, "resampler": standalone.RESAMPLER}, [1.0])(image)[0]
    assert not np.array_equal(pillow, old_geometry.apply(image))
    with pytest.raises(ValueError, match="unknown resampler"):
        standalone.eval_crop(image, {**legacy, "resampler": "magic"})
    from studio.errors import StudioError

    with pytest.raises(StudioError, match="Unknown resampler"):  # a damaged checkpoint: a message, no trace
        Cropper({**legacy, "resampler": "magic"}, [1.0])
