"""Small generated images for tests: distinct content per file, so no two files are duplicates.

Also a generated corpus of awkward-but-valid images (`write_odd_images`) and of files an import must
reject (`write_unusable_files`), for any test that feeds files to the studio.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def make_image(
    size: int | tuple[int, int] = 32, seed: int = 0, color: tuple[int, int, int] | None = None
) -> Image.Image:
    """An RGB image: a class-ish base color plus seeded noise (distinct bytes for distinct seeds)."""
    width, height = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    base = np.array(color if color is not None else rng.integers(0, 256, 3), dtype=np.int16)
    noise = rng.integers(-40, 41, (height, width, 3), dtype=np.int16)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def _class_color(name: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(name.encode()).digest()
    return digest[0], digest[1], digest[2]


def make_image_folder(
    root: str | Path, classes: list[str] | tuple[str, ...], per_class: int, size: int = 32, *, seed: int = 0
) -> Path:
    """Write `per_class` small images into `root/<class>/` for each class (alternating JPEG and PNG).

    Each class has its own base color, so the classes are learnable; every file has distinct bytes.
    Returns `root`.
    """
    root = Path(root)
    for class_index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image = make_image(
                size, seed=seed * 1_000_003 + class_index * 10_007 + index, color=_class_color(name)
            )
            if index % 2 == 0:
                image.save(folder / f"{name}_{index:04d}.jpg", quality=90)
            else:
                image.save(folder / f"{name}_{index:04d}.png")
    return root


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def bomb_png_bytes(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims a huge image (the classic decompression bomb shape)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def jpeg_bytes(size: int = 64, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    make_image(size, seed=seed).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def write_unusable_files(folder: Path) -> dict[str, str]:
    """Files the import must reject; returns {file name: a word the reason must contain}."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "not_an_image.jpg").write_bytes(b"this is a text file, not a photo\n" * 20)
    (folder / "zero_bytes.png").write_bytes(b"")
    data = jpeg_bytes(64, seed=7)
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    png = io.BytesIO()
    make_image(64, seed=8).save(png, "PNG")
    raw = bytearray(png.getvalue())
    raw[60:200] = b"\x13" * 140  # garbage inside the compressed pixel data
    (folder / "corrupt.png").write_bytes(bytes(raw))
    (folder / "bomb.png").write_bytes(bomb_png_bytes())
    (folder / "readme.txt").write_text("hello")
    expected = {}
    try:  # a real TIFF in a pixel layout Pillow can't read (2 channels); tifffile is a test-only extra
        import tifffile

        tifffile.imwrite(
            folder / "two_channel.tif",
            np.zeros((8, 8, 2), np.uint8),
            photometric="minisblack",
            planarconfig="contig",
        )
        expected["two_channel.tif"] = "pixel layout"
    except ImportError:
        pass
    return expected | {
        "not_an_image.jpg": "not an image",
        "zero_bytes.png": "empty",
        "truncated.jpg": "truncated",
        "corrupt.png": "corrupt",
        "bomb.png": "pixels",
        "readme.txt": "not a supported image type",
    }


def write_odd_images(folder: Path) -> dict[str, Path]:
    """Valid images in every awkward mode/format the decoder must turn into RGB."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}

    def save(name: str, image: Image.Image, **kwargs) -> None:
        paths[name] = folder / name
        image.save(paths[name], **kwargs)

    save("gray.png", Image.new("L", (24, 16), 100))
    save("gray_alpha.png", Image.new("LA", (24, 16), (100, 0)))
    save("bilevel.bmp", Image.new("1", (24, 16), 1))
    rgba = Image.new("RGBA", (24, 16), (255, 0, 0, 255))
    rgba.paste((0, 0, 255, 0), (12, 0, 24, 16))  # right half fully transparent
    save("rgba.png", rgba)
    palette = Image.new("P", (24, 16), 0)
    palette.putpalette([0, 200, 0, 9, 9, 9] + [0] * 762)
    palette.paste(1, (12, 0, 24, 16))
    save("palette_transparent.png", palette, transparency=1)
    save("cmyk.jpg", Image.new("CMYK", (24, 16), (0, 0, 0, 0)), quality=95)
    save("sixteen_bit.png", Image.fromarray(np.full((16, 24), 65535, dtype=np.uint16)))
    save("sixteen_bit.tif", Image.fromarray(np.full((16, 24), 32768, dtype=np.uint16)))
    save("float.tif", Image.fromarray(np.full((16, 24), 0.5, dtype=np.float32)))
    oriented = Image.new("RGB", (40, 20), (255, 0, 0))
    oriented.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    save("exif_rotated.jpg", oriented, quality=95, exif=exif.tobytes())
    frames = [Image.new("RGB", (24, 16), (255, 0, 0)), Image.new("RGB", (24, 16), (0, 255, 0))]
    paths["animated.gif"] = folder / "animated.gif"
    frames[0].save(paths["animated.gif"], save_all=True, append_images=frames[1:], duration=100, loop=0)
    save("upper_case.JPEG", make_image(20, seed=3), quality=90)
    save("webp_image.webp", make_image(20, seed=4))
    return paths
