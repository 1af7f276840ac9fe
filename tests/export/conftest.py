"""Fixtures for the export tests: one tiny run trained by the engine (shared by the module's tests), and
bundles exported from it once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/helpers_images.py

from helpers_images import make_image_folder

from studio.data.importers import import_source
from studio.data.store import Project

CLASSES = ["apple", "pear"]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """2 classes x 6 images (48 px), linear probe (logistic regression folded into a linear layer) at 32 px
    on the bundled EfficientNet-Lite0 weights: a real engine run in a few seconds on a CPU."""
    from studio.train import TrainConfig, train

    root = tmp_path_factory.mktemp("export-project")
    images = make_image_folder(root / "source", CLASSES, 6, size=48)
    with Project.create(root / "project") as project:
        import_source(project, images, val_fraction=0.34, seed=0)
        result = train(project, TrainConfig(strategy="linear", image_size=32, device="cpu", seed=0))
    assert result.status == "done", result
    return Path(result.run_dir)


@pytest.fixture(scope="session")
def onnx_bundle(trained_run, tmp_path_factory) -> tuple[Path, dict]:
    from studio.export import export_run

    dest = tmp_path_factory.mktemp("bundles") / "onnx"
    return dest, export_run(trained_run, dest, "onnx")


@pytest.fixture(scope="session")
def torchscript_bundle(trained_run, tmp_path_factory) -> tuple[Path, dict]:
    from studio.export import export_run

    dest = tmp_path_factory.mktemp("bundles") / "torchscript"
    return dest, export_run(trained_run, dest, "torchscript")


def val_paths(run_dir: Path) -> list[str]:
    import json

    return [item["path"] for item in json.loads((run_dir / "split.json").read_text())["val"]]
