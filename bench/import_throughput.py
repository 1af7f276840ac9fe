"""Import throughput: generate a class-folder set of JPEGs and PNGs, import it, print images/s.

    uv run python bench/import_throughput.py [--images 2000] [--classes 10] [--workers N]

Each image is read once, hashed, decoded (validation) and copied; the database gets batches of 200.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from studio.data.importers import import_source
from studio.data.store import Project


def generate(root: Path, n_images: int, n_classes: int, seed: int = 0) -> int:
    """Smooth gradients plus noise, 128-256 px, 70% JPEG / 30% PNG; returns bytes written."""
    rng = np.random.default_rng(seed)
    total = 0
    for index in range(n_images):
        label = f"class_{index % n_classes:02d}"
        width, height = rng.integers(128, 257, 2)
        y, x = np.mgrid[0:height, 0:width]
        base = rng.integers(0, 256, 3)
        waves = np.sin(np.stack([x, y, x + y], -1).astype(np.float32) / rng.uniform(5, 30))
        pixels = base + 60 * waves + rng.normal(0, 8, (height, width, 3)).astype(np.float32)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (f"{index:05d}.jpg" if rng.random() < 0.7 else f"{index:05d}.png")
        image.save(path, quality=90) if path.suffix == ".jpg" else image.save(path, compress_level=1)
        total += path.stat().st_size
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument(
        "--workers", type=int, default=None, help="hash+decode threads (default min(4, CPUs))"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="studio-bench-") as scratch:
        source = Path(scratch) / "source"
        started = time.perf_counter()
        size = generate(source, args.images, args.classes)
        print(
            f"generated {args.images} images ({size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s"
        )
        with Project.create(Path(scratch) / "project") as project:
            started = time.perf_counter()
            report = import_source(project, source, workers=args.workers)
            seconds = time.perf_counter() - started
            started = time.perf_counter()
            again = import_source(project, source, workers=args.workers)
            reimport_seconds = time.perf_counter() - started
        assert report.imported == args.images and not report.rejected, report.to_dict()
        assert again.imported == 0 and again.duplicates == args.images
    rate = args.images / seconds
    workers = args.workers or min(4, os.cpu_count() or 1)
    print(
        f"import: {args.images} images in {seconds:.2f} s = {rate:.0f} images/s "
        f"(re-import of the same folder, all duplicates: {args.images / reimport_seconds:.0f} images/s)"
    )
    print("| images | classes | workers | CPUs | seconds | images/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.images} | {args.classes} | {workers} | {os.cpu_count()} | {seconds:.2f} | {rate:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
