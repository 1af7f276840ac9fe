"""Decode any supported image file to a plain RGB PIL image, or say in plain words why it can't be used.

Everything that reads pixels (import validation, thumbnails, feature extraction, training) goes through
`load_rgb`, so every part of the studio sees the same pixels for the same file.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from studio.errors import StudioError

# 50 megapixels: a large DSLR photo is ~45 MP; anything bigger is almost surely a decompression bomb
# or a scan that is useless at the 224-384 px the backbones see.
MAX_PIXELS = 50_000_000

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})

# Pillow has its own global bomb guard (MAX_IMAGE_PIXELS); our per-call limit is checked first and the
# global one is only a backstop, so we leave it at Pillow's default.

_SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees
# The same table as PIL.ImageOps.exif_transpose; applied after mode conversion, which drops EXIF.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def is_image_name(name: str | os.PathLike) -> bool:
    """True when the file name has one of the supported image extensions (any case)."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def load_rgb(
    path: str | os.PathLike | BinaryIO,
    *,
    max_pixels: int = MAX_PIXELS,
    draft_size: int | None = None,
) -> Image.Image:
    """Decode `path` (a path or a binary file object) to an RGB image with EXIF orientation applied.

    L, LA, P, RGBA (composited on white), CMYK and 16-bit/float images all become 8-bit RGB; GIF and
    multi-page TIFF give their first frame. With `draft_size`, a JPEG whose shorter side is at least
    that big is decoded at a reduced scale that keeps the shorter side >= draft_size (much faster).
    Raises StudioError with a plain reason for anything unusable.
    """
    image, _ = decode(path, max_pixels=max_pixels, draft_size=draft_size)
    return image


def decode(
    path: str | os.PathLike | BinaryIO,
    *,
    max_pixels: int = MAX_PIXELS,
    draft_size: int | None = None,
) -> tuple[Image.Image, tuple[int, int]]:
    """Like `load_rgb`, but also returns the full-resolution (width, height) after EXIF orientation.

    The import uses this to validate with a cheap draft decode while still recording the true size.
    """
    if isinstance(path, (str, os.PathLike)):
        _check_not_empty(Path(path))
    with _open(path) as image:
        width, height = image.size
        if width * height > max_pixels:
            raise StudioError(
                f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
                f"{max_pixels:,} (a possible decompression bomb); shrink it before importing"
            )
        if draft_size and image.format == "JPEG" and min(width, height) >= draft_size:
            # draft picks the largest DCT scale whose result is still at least the requested size.
            image.draft("RGB", (draft_size, draft_size))
        try:
            image.seek(0)  # first frame of GIF / multi-page TIFF
            image.load()
            rgb = _to_rgb(image)
        except StudioError:
            raise
        except (
            OSError,
            SyntaxError,
            ValueError,
            EOFError,
            IndexError,
            Image.DecompressionBombError,
        ) as error:
            raise StudioError(_decode_reason(error)) from error
        # Only after load(): PNG's getexif() loads the image itself and would swallow decode errors.
        orientation = _orientation(image)
        full_size = (height, width) if orientation in _SWAPS_SIDES else (width, height)
        if orientation in _TRANSPOSE:
            rgb = rgb.transpose(_TRANSPOSE[orientation])
    return rgb, full_size


def _check_not_empty(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError as error:
        raise StudioError(f"file not found: {path}") from error
    except OSError as error:
        raise StudioError(f"cannot read the file ({error.strerror or error})") from error
    if size == 0:
        raise StudioError("file is empty (0 bytes)")


def _open(source) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow warns (rather than raises) between 1x and 2x its own limit; our limit decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(source)
    except UnidentifiedImageError as error:
        kind = _sniff(source)
        if kind is not None:
            raise StudioError(
                f"a {kind} file whose pixel layout the studio cannot read (e.g. 2-channel, floating-point "
                "color or an unusual compression); convert it to an 8-bit RGB PNG or JPEG"
            ) from error
        raise StudioError("not an image, or an image format the studio cannot read") from error
    except Image.DecompressionBombError as error:
        raise StudioError(
            "image has too many pixels (a possible decompression bomb); shrink it before importing"
        ) from error
    except PermissionError as error:
        raise StudioError("cannot read the file (permission denied)") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise StudioError(_decode_reason(error)) from error


_SIGNATURES = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG": "PNG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def _sniff(source) -> str | None:
    """The image format a file's first bytes claim, if any (to tell "not an image" from "can't read")."""
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as handle:
                head = handle.read(12)
        else:
            source.seek(0)
            head = source.read(12)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _SIGNATURES.items() if head.startswith(magic)), None)


def _decode_reason(error: BaseException) -> str:
    text = str(error).lower()
    if "truncated" in text or isinstance(error, EOFError):
        return "image file is truncated (incomplete download or copy?)"
    if "mode" in text:
        return f"image uses a pixel format the studio cannot convert ({error})"
    return f"image file is corrupt and cannot be decoded ({error})"


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1) or 1)
    except (ValueError, TypeError, OSError, SyntaxError, struct.error):  # a broken EXIF block: ignore it
        return 1


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(image), mode)).convert("RGB")
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("1", "L", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return image.convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise StudioError(f"image uses a pixel format the studio cannot convert (mode {mode})") from error


def _scale_to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit integer and float grayscale to 8-bit, keeping relative brightness."""
    data = array.astype(np.float64)
    if mode.startswith("I;16"):
        scaled = data / 257.0
    elif mode == "I":
        # PNG 16-bit grayscale can arrive as mode I with values up to 65535.
        scaled = data / 257.0 if data.max(initial=0) > 255 else data
    else:  # "F": floats in 0..1 are the usual convention, otherwise stretch the range
        low, high = float(np.nanmin(data, initial=0.0)), float(np.nanmax(data, initial=0.0))
        if low >= 0.0 and high <= 1.0:
            scaled = data * 255.0
        elif high > low:
            scaled = (data - low) / (high - low) * 255.0
        else:
            scaled = np.zeros_like(data)
    return np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8)


def image_from_bytes(data: bytes, **kwargs) -> Image.Image:
    """`load_rgb` for bytes already in memory (zero bytes give the same plain reason as an empty file)."""
    if not data:
        raise StudioError("file is empty (0 bytes)")
    return load_rgb(io.BytesIO(data), **kwargs)
