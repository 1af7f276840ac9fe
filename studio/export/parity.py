"""Parity: an exported bundle must give the studio's probabilities and novelty scores (max abs diff <= 1e-4).

Measured end to end on image files: the bundle's own `predict.py` decodes and crops them and the exported
model runs through onnxruntime / torch.jit, against the studio's Predictor (float32) on the same files.
Images: the run's validation images when they are still on disk, plus generated ones of awkward sizes
(JPEGs big enough for reduced-scale decoding, images smaller than the crop, both orientations).
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from PIL import Image

from studio.data.snapshot import Snapshot
from studio.errors import StudioError
from studio.predict.checkpoint import LoadedModel
from studio.predict.inference import TTA_VIEWS, Cropper
from studio.predict.predictor import Predictor

TOLERANCE = 1e-4
MAX_VALIDATION_IMAGES = 24
# (width, height, format): shrink and enlarge paths, portrait and landscape, JPEG draft decoding.
GENERATED = ((640, 480, "JPEG"), (300, 451, "PNG"), (97, 131, "JPEG"), (40, 30, "PNG"), (23, 57, "PNG"),
             (512, 512, "JPEG"))


def validation_images(run_dir: Path, limit: int = MAX_VALIDATION_IMAGES) -> list[str]:
    """Paths of the run's validation images that still exist (its stored snapshot), at most `limit`;
    none for a run without a readable snapshot (the generated images still check parity)."""
    try:
        val = Snapshot.load(run_dir).val
    except (StudioError, KeyError, TypeError):
        return []
    paths = [str(path) for path in val["path"] if isinstance(path, str) and path and Path(path).is_file()]
    return paths[:limit]


def write_generated_images(folder: Path, seed: int = 0) -> list[str]:
    """Smooth random pictures (natural-image-like gradients plus noise) in the GENERATED sizes."""
    rng = np.random.default_rng(seed)
    paths = []
    for index, (width, height, fmt) in enumerate(GENERATED):
        yy, xx = np.mgrid[0:height, 0:width]
        base = np.stack([np.sin(xx / (7 + c * 5) + c) * np.cos(yy / (9 + c * 3)) for c in range(3)], axis=-1)
        pixels = np.clip(127 + 100 * base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"parity_{index}.{'jpg' if fmt == 'JPEG' else 'png'}"
        Image.fromarray(pixels).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        paths.append(str(path))
    return paths


def load_bundle_script(bundle_dir: Path) -> ModuleType:
    """Import the bundle's own predict.py (what users run), not the studio's copy of it."""
    spec = importlib.util.spec_from_file_location(f"studio_bundle_predict_{abs(hash(bundle_dir))}",
                                                  bundle_dir / "predict.py")
    module = importlib.util.module_from_spec(spec)
    writes_bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # no __pycache__ folder left inside the bundle
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = writes_bytecode
    return module


def reference_predictor(loaded: LoadedModel) -> Predictor:
    """The studio's predictor on the CPU in float32: what the app, the CLI and the evaluation run by
    default (only an explicit STUDIO_CPU_PRECISION=bf16 changes that, and not here)."""
    predictor = Predictor(loaded, torch.device("cpu"))
    predictor.runner.dtype = None
    return predictor


def measure(loaded: LoadedModel, bundle_dir: Path, images: list[str]) -> dict:
    """Max abs differences of the bundle's probabilities (and novelty scores) from the studio's, end to
    end and model only."""
    script = load_bundle_script(bundle_dir)
    bundle = script.BundleModel(bundle_dir)
    predictor = reference_predictor(loaded)
    studio_views, studio_novelty = predictor.scores(images, TTA_VIEWS)
    studio_probs = studio_views[:, 0]
    bundle_probs, bundle_novelty = bundle.scores(images, tta=False)
    # `--tta` too: the bundle must average the same views as `studio predict --tta` and the evaluation.
    tta_diff = float(np.abs(studio_views.mean(axis=1) - bundle.probabilities(images, tta=True)).max())
    # Model only: the studio's own crops through the exported graph (isolates graph from preprocessing).
    cropper = Cropper(loaded.preprocessing, [1.0])
    crops = np.stack([cropper(path)[0] for path in images])
    graph_probs = bundle.run(crops)
    pixels_equal = sum(np.array_equal(script.preprocess(path, bundle.preprocessing), crop)
                       for path, crop in zip(images, crops))
    end_to_end = float(np.abs(studio_probs - bundle_probs).max())
    if (studio_novelty is None) != (bundle_novelty is None):  # one flags unlike images, the other cannot
        novelty_diff = float("inf")
    else:
        novelty_diff = 0.0 if studio_novelty is None else float(np.abs(studio_novelty - bundle_novelty).max())
    return {
        "max_abs_diff": end_to_end,
        "tta_max_abs_diff": tta_diff,
        "model_only_max_abs_diff": float(np.abs(studio_probs - graph_probs).max()),
        "tolerance": TOLERANCE,
        "novelty_max_abs_diff": novelty_diff,
        "passed": max(end_to_end, tta_diff, novelty_diff) <= TOLERANCE,
        "images": len(images),
        "identical_crops": int(pixels_equal),
        "same_top1": int((studio_probs.argmax(1) == bundle_probs.argmax(1)).sum()),
        "reference": "studio Predictor, CPU, float32",
        "runtime": bundle.format,
    }


def check_parity(loaded: LoadedModel, bundle_dir: Path, run_dir: Path) -> dict:
    """Measure on validation + generated images; StudioError when the bundle disagrees with the studio."""
    validation = validation_images(run_dir)
    with tempfile.TemporaryDirectory(prefix="studio-parity-") as tmp:
        generated = write_generated_images(Path(tmp))
        report = measure(loaded, bundle_dir, validation + generated)
    report["validation_images"] = len(validation)
    report["generated_images"] = len(generated)
    if not report["passed"]:
        raise StudioError(
            f"Export parity check failed: the exported model's probabilities differ from the studio's by up "
            f"to {max(report['max_abs_diff'], report['tta_max_abs_diff']):.2e} (limit {TOLERANCE:.0e}; "
            f"with TTA {report['tta_max_abs_diff']:.2e}; novelty scores "
            f"{report['novelty_max_abs_diff']:.2e}; model alone {report['model_only_max_abs_diff']:.2e}, "
            f"identical crops {report['identical_crops']}/{report['images']}). Nothing was exported. "
            "Try the other format, and report this run's backbone."
        )
    return report
