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

from PIL import Image, UnidentifiedImageError

from studio.errors import StudioError
from studio.export.standalone import (  # one copy, shared with exported bundles' predict.py
    EXIF_TRANSPOSE,
    IMAGE_EXTENSIONS,
    to_rgb,
    unreadable_reason,
)

# 50 megapixels: a large DSLR photo is ~45 MP; anything bigger is almost surely a decompression bomb
# or a scan that is useless at the 224-384 px the backbones see.
MAX_PIXELS = 50_000_000

# Pillow has its own global bomb guard (MAX_IMAGE_PIXELS); our per-call limit is checked first and the
# global one is only a backstop, so we leave it at Pillow's default.

_SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees


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
            raise StudioError(unreadable_reason(error)) from error
        # Only after load(): PNG's getexif() loads the image itself and would swallow decode errors.
        orientation = _orientation(image)
        full_size = (height, width) if orientation in _SWAPS_SIDES else (width, height)
        if orientation in EXIF_TRANSPOSE:
            rgb = rgb.transpose(EXIF_TRANSPOSE[orientation])
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
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise StudioError(unreadable_reason(error)) from error


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


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1) or 1)
    except (ValueError, TypeError, OSError, SyntaxError, struct.error):  # a broken EXIF block: ignore it
        return 1


def _to_rgb(image: Image.Image) -> Image.Image:
    try:
        return to_rgb(image)
    except (ValueError, OSError) as error:
        raise StudioError(
            f"image uses a pixel format the studio cannot convert (mode {image.mode})"
        ) from error


def image_from_bytes(data: bytes, **kwargs) -> Image.Image:
    """`load_rgb` for bytes already in memory (zero bytes give the same plain reason as an empty file)."""
    if not data:
        raise StudioError("file is empty (0 bytes)")
    return load_rgb(io.BytesIO(data), **kwargs)
