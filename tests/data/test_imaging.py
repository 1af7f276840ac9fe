"""load_rgb: every awkward mode becomes correct RGB; every unusable file gives a plain reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers_images import bomb_png_bytes, make_image, write_odd_images, write_unusable_files
from PIL import Image

from studio.data.imaging import decode, image_from_bytes, load_rgb
from studio.errors import StudioError


@pytest.fixture
def odd(tmp_path):
    return write_odd_images(tmp_path / "odd")


def pixel(path, xy=(0, 0), **kwargs):
    image = load_rgb(path, **kwargs)
    assert image.mode == "RGB"
    return image.getpixel(xy)


def test_grayscale_bilevel_and_gray_alpha(odd):
    assert pixel(odd["gray.png"]) == (100, 100, 100)
    assert pixel(odd["bilevel.bmp"]) == (255, 255, 255)
    assert pixel(odd["gray_alpha.png"]) == (255, 255, 255)  # fully transparent -> white


def test_rgba_is_composited_on_white(odd):
    assert pixel(odd["rgba.png"], (2, 2)) == (255, 0, 0)
    assert pixel(odd["rgba.png"], (20, 2)) == (255, 255, 255)


def test_palette_with_transparency(odd):
    assert pixel(odd["palette_transparent.png"], (2, 2)) == (0, 200, 0)
    assert pixel(odd["palette_transparent.png"], (20, 2)) == (255, 255, 255)


def test_cmyk_becomes_rgb(odd):
    assert all(channel >= 250 for channel in pixel(odd["cmyk.jpg"]))


def test_sixteen_bit_and_float_are_scaled_to_eight_bit(odd):
    assert pixel(odd["sixteen_bit.png"]) == (255, 255, 255)
    assert pixel(odd["sixteen_bit.tif"]) == (128, 128, 128)
    assert pixel(odd["float.tif"]) == (128, 128, 128)


def test_exif_orientation_is_applied(odd):
    image = load_rgb(odd["exif_rotated.jpg"])
    assert image.size == (20, 40)  # 40x20 stored, shown rotated by 90 degrees
    top, bottom = np.asarray(image)[2, 10], np.asarray(image)[37, 10]
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60
    _, full_size = decode(odd["exif_rotated.jpg"])
    assert full_size == (20, 40)


def test_gif_gives_first_frame(odd):
    red, green, _ = pixel(odd["animated.gif"])
    assert red > 200 and green < 50


def test_upper_case_extension_and_webp(odd):
    assert load_rgb(odd["upper_case.JPEG"]).size == (20, 20)
    assert load_rgb(odd["webp_image.webp"]).size == (20, 20)


@pytest.mark.parametrize(
    "name",
    ["not_an_image.jpg", "zero_bytes.png", "truncated.jpg", "corrupt.png", "bomb.png", "two_channel.tif"],
)
def test_unusable_files_raise_plain_reasons(tmp_path, name):
    expected = write_unusable_files(tmp_path)
    if name not in expected:
        pytest.skip(f"{name} needs tifffile to be generated")
    with pytest.raises(StudioError, match=expected[name]):
        load_rgb(tmp_path / name)


def test_max_pixels_limit_is_per_call(tmp_path):
    path = tmp_path / "normal.png"
    make_image(40, seed=1).save(path)
    assert load_rgb(path).size == (40, 40)
    with pytest.raises(StudioError, match="decompression bomb"):
        load_rgb(path, max_pixels=1000)


def test_bomb_from_bytes_and_missing_file(tmp_path):
    with pytest.raises(StudioError, match="pixels"):
        image_from_bytes(bomb_png_bytes())
    with pytest.raises(StudioError, match="empty"):
        image_from_bytes(b"")
    with pytest.raises(StudioError, match="not found"):
        load_rgb(tmp_path / "missing.jpg")


def test_draft_size_decodes_large_jpeg_smaller_but_keeps_short_side(tmp_path):
    path = tmp_path / "big.jpg"
    make_image((800, 600), seed=2).save(path, quality=90)
    small = load_rgb(path, draft_size=150)
    assert min(small.size) >= 150 and small.size[0] < 800
    assert load_rgb(path, draft_size=1000).size == (800, 600)  # smaller than draft_size: full decode
    _, full_size = decode(path, draft_size=150)
    assert full_size == (800, 600)


def test_accepts_file_objects(tmp_path):
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 7).save(buffer, "PNG")
    buffer.seek(0)
    assert load_rgb(buffer).getpixel((0, 0)) == (7, 7, 7)


def test_twelve_bit_scans_in_sixteen_bit_files_keep_their_contrast(tmp_path):
    # CT/MRI/X-ray values 0..4095 in a 16-bit PNG: divided as 16-bit they were 0..16, all but black
    ramp = np.linspace(0, 4095, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "scan12.png")
    gray = np.asarray(load_rgb(tmp_path / "scan12.png"))[..., 0]
    assert gray.max() == 255 and len(np.unique(gray)) > 200
    Image.fromarray(np.full((8, 8), 200, dtype=np.uint16)).save(tmp_path / "eight_in_sixteen.png")
    assert pixel(tmp_path / "eight_in_sixteen.png") == (200, 200, 200)  # 8-bit values kept as they are
    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(tmp_path / "sixteen.png")
    assert pixel(tmp_path / "sixteen.png") == (156, 156, 156)  # a real 16-bit value: 40000 / 257
