"""A demo project from images that ship inside scikit-learn (its 8x8 handwritten digits): no network.

Four digit classes, 30 labeled images each (enough to train in well under a minute on a CPU), plus a few
unlabeled ones so the Label tab has work to show. Digits are upscaled to 64 px RGB PNGs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from studio.data.importers import ImportReport, import_source
from studio.data.store import Project
from studio.errors import StudioError

DEMO_CLASSES = {0: "zero", 1: "one", 2: "two", 3: "three"}
DEMO_LABELED_PER_CLASS = 30
DEMO_UNLABELED_PER_CLASS = 5
DEMO_IMAGE_SIZE = 64


def _digit_image(pixels: np.ndarray) -> Image.Image:
    """An 8x8 digit (0..16, ink high) as a 64 px RGB image: dark ink on white paper."""
    gray = (255 - pixels.reshape(8, 8) * (255 / 16)).clip(0, 255).astype(np.uint8)
    return (
        Image.fromarray(gray, "L")
        .resize((DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE), Image.Resampling.BICUBIC)
        .convert("RGB")
    )


def write_demo_images(
    folder: Path, labeled: int = DEMO_LABELED_PER_CLASS, unlabeled: int = DEMO_UNLABELED_PER_CLASS
) -> tuple[Path, Path]:
    """Class folders under `folder/labeled` and loose files under `folder/unlabeled`; returns both."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:  # scikit-learn is a dependency; this only guards broken installs
        raise StudioError("the demo needs scikit-learn's bundled digits: reinstall with `uv sync`") from error
    digits = load_digits()
    labeled_root, unlabeled_root = folder / "labeled", folder / "unlabeled"
    unlabeled_root.mkdir(parents=True, exist_ok=True)
    for digit, name in DEMO_CLASSES.items():
        indices = np.flatnonzero(digits.target == digit)[: labeled + unlabeled]
        (labeled_root / name).mkdir(parents=True, exist_ok=True)
        for position, index in enumerate(indices):
            image = _digit_image(digits.data[index])
            if position < labeled:
                image.save(labeled_root / name / f"{name}_{index:04d}.png")
            else:
                image.save(unlabeled_root / f"scan_{index:04d}.png")
    return labeled_root, unlabeled_root


def fill_demo_project(project: Project) -> list[ImportReport]:
    """Import the demo digits into `project` (labeled ones split train/val); returns the import reports."""
    for name in DEMO_CLASSES.values():  # digit order rather than the importer's alphabetical order
        project.add_class(name)
    with tempfile.TemporaryDirectory(prefix="studio-demo-") as scratch:
        labeled, unlabeled = write_demo_images(Path(scratch))
        return [
            import_source(project, labeled, "class-folders", val_fraction=0.2, seed=0),
            import_source(project, unlabeled, "flat"),
        ]


def free_demo_name(workspace: Path, base: str = "digits-demo") -> str:
    """`digits-demo`, or `digits-demo-2`, ... when taken."""
    name, number = base, 1
    while (workspace / name).exists():
        number += 1
        name = f"{base}-{number}"
    return name
