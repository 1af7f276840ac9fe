"""Turn one source file into a validated, content-addressed copy inside a project's `images/` folder.

Each file is read once: the same bytes are hashed, decoded (validation) and written, so the import never
decodes twice. `prepare_image` is thread-safe (PIL releases the GIL while decoding), which is what lets
the importer run it on a thread pool.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from studio.data.imaging import MAX_PIXELS, decode, is_image_name
from studio.durable import atomic_write_bytes
from studio.errors import StudioError
from studio.sharing.limits import check_file_size

# Validation decodes JPEGs at reduced DCT scale: every byte of entropy data is still decoded (so
# truncation and corruption are caught), at a fraction of the cost for big photos.
VALIDATION_DRAFT_SIZE = 256


@dataclass(frozen=True)
class PreparedImage:
    """A decoded-and-stored image, ready for `Project.add_images`."""

    hash: str
    ext: str
    size: int
    width: int
    height: int
    original_name: str
    source: str | None
    label: str | None = None
    split: str | None = None


def prepare_image(
    path: str | os.PathLike,
    images_dir: Path,
    *,
    label: str | None = None,
    split: str | None = None,
    source: str | None = None,
    max_pixels: int = MAX_PIXELS,
) -> PreparedImage:
    """Read, hash, validate and store one file. Raises StudioError with a plain reason if unusable."""
    path = Path(path)
    if not is_image_name(path):
        raise StudioError(
            f"not a supported image type ({path.suffix or 'no extension'}); "
            "use .jpg .jpeg .png .bmp .webp .tif .tiff or .gif"
        )
    try:
        check_file_size(path)  # from stat: an oversized file is never read
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise StudioError("file not found") from error
    except OSError as error:
        raise StudioError(f"cannot read the file ({error.strerror or error})") from error
    if not data:
        raise StudioError("file is empty (0 bytes)")
    _, (width, height) = decode(io.BytesIO(data), max_pixels=max_pixels, draft_size=VALIDATION_DRAFT_SIZE)
    digest = hashlib.sha256(data).hexdigest()
    ext = path.suffix.lower()
    store_bytes(images_dir / f"{digest}{ext}", data)
    return PreparedImage(
        hash=digest,
        ext=ext,
        size=len(data),
        width=width,
        height=height,
        original_name=path.name,
        source=source if source is not None else str(path),
        label=label,
        split=split,
    )


def store_bytes(target: Path, data: bytes) -> None:
    """Write content-addressed bytes atomically (temp file + rename). A file already there is kept when it
    holds these bytes, and replaced when it does not (damaged after an earlier import: this repairs it)."""
    if target.exists() and target.stat().st_size == len(data) and target.read_bytes() == data:
        return
    atomic_write_bytes(target, data)
