"""Browser-ready copies of project images (thumbnails and display-sized views).

Why a separate media folder: the server serves no folder on disk directly (`allowed_paths` stays empty),
so images reach the browser only as files inside Gradio's own upload/cache folder. We write small,
browser-friendly copies there once per image and size (named by the image's content hash, so a copy is
never stale); Gradio then serves them without copying or hashing again, which keeps labeling fast.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from studio.data.imaging import load_rgb
from studio.durable import atomic_write_bytes
from studio.errors import StudioError

THUMB_SIZE = 160
DISPLAY_SIZE = 720
_WEB_FORMATS = {".jpg", ".jpeg", ".png", ".webp", ".gif"}
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="studio-media")


def media_root() -> Path:
    """Our subfolder of Gradio's upload folder (GRADIO_TEMP_DIR, else <tmp>/gradio)."""
    base = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
    return Path(base).resolve() / "studio-media"


def output_folder(kind: str) -> Path:
    """A fresh folder for files the user downloads (prediction CSVs, exported models) inside the media
    root, which Gradio serves; the app's cache cleanup removes them after two hours."""
    folder = media_root() / kind / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _folder_for(project_root: Path) -> Path:
    key = hashlib.sha256(str(project_root).encode("utf-8")).hexdigest()[:16]
    return media_root() / key


def web_image(project_root: Path, source: str | Path, size: int) -> str:
    """Path of a copy of `source` no larger than `size` px on its longer side, in a browser format.

    Small JPEG/PNG/WebP files are linked or copied as they are; everything else is decoded (EXIF turned,
    16-bit scaled, ...) and written as JPEG. Raises StudioError when the image cannot be read.
    """
    source = Path(source)
    folder = _folder_for(Path(project_root))
    target = folder / f"{source.stem}_{size}.jpg"
    if target.exists():
        return str(target)
    folder.mkdir(parents=True, exist_ok=True)
    if source.suffix.lower() in _WEB_FORMATS and _fits(source, size):
        same = folder / f"{source.stem}_{size}{source.suffix.lower()}"
        if not same.exists():
            _link_or_copy(source, same)
        return str(same)
    image = load_rgb(source, draft_size=size)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    atomic_write_bytes(target, buffer.getvalue())
    return str(target)


def _fits(path: Path, size: int) -> bool:
    try:
        with Image.open(path) as image:
            return max(image.size) <= size and image.mode in ("RGB", "L", "RGBA", "P")
    except OSError:
        return False


def _link_or_copy(source: Path, target: Path) -> None:
    scratch = target.with_name(target.name + ".part")
    try:
        os.link(source, scratch)
    except OSError:  # another filesystem or no hard links: copy
        shutil.copyfile(source, scratch)
    os.replace(scratch, target)


def thumbnail(project_root: Path, source: str | Path) -> str:
    return web_image(project_root, source, THUMB_SIZE)


def display_image(project_root: Path, source: str | Path) -> str:
    return web_image(project_root, source, DISPLAY_SIZE)


def thumbnails(project_root: Path, sources: list[str]) -> list[str | None]:
    """Thumbnails for many images (two threads); None for an image that cannot be read."""

    def one(source: str) -> str | None:
        try:
            return thumbnail(project_root, source)
        except (StudioError, OSError):
            return None

    return list(_POOL.map(one, sources))
