"""Export a run as a self-contained bundle folder (or a zip of one).

DEST/
  model.onnx | model.torchscript.pt   uint8 pixels in, probabilities out (normalization inside)
  classes.json                        class names in output order
  preprocessing.json                  every number of the resize + crop outside the model
  decision.json                       the "unknown" thresholds predict.py applies (and the calibration)
  predict.py                          standalone prediction (numpy + Pillow + onnxruntime)
  parity.json                         measured agreement with the studio's predictor
  model_card.md                       backbone, strategy, data, validation metrics, date, parity
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from studio.errors import StudioError, cannot_create
from studio.export import FORMATS, model_card, parity, standalone
from studio.export.graph import INPUT_NAME, NOVELTY_NAME, OUTPUT_NAME, exportable_module
from studio.export.onnx_export import write_onnx
from studio.export.torchscript_export import write_torchscript
from studio.predict.checkpoint import build_model, read_checkpoint, tta_default

BUNDLE_FILES = ("classes.json", "preprocessing.json")
SCRIPT_FILE, PARITY_FILE, CARD_FILE = "predict.py", "parity.json", "model_card.md"
# Every name an export writes into its folder (and Python's cache, should predict.py be imported): the
# rest of a folder is the user's, which a new export must not replace.
EXPORT_NAMES = frozenset({*BUNDLE_FILES, *standalone.MODEL_FILES.values(), standalone.DECISION_FILE,
                          SCRIPT_FILE, PARITY_FILE, CARD_FILE, "__pycache__"})


def is_bundle(path: str | os.PathLike) -> bool:
    """True for a folder holding an exported model, classes.json and preprocessing.json."""
    path = Path(path)
    return (path.is_dir() and all((path / name).is_file() for name in BUNDLE_FILES)
            and any((path / name).is_file() for name in standalone.MODEL_FILES.values()))


def bundle_preprocessing(preprocessing: dict) -> dict:
    """preprocessing.json: the checkpoint's values plus the derived sizes predict.py uses."""
    size, crop_pct = int(preprocessing["image_size"]), float(preprocessing["crop_pct"])
    resampler = standalone.resampler_of(preprocessing)
    return {
        "image_size": size,
        "crop_pct": crop_pct,
        "resize_shorter_to": math.floor(size / crop_pct),
        "interpolation": preprocessing.get("interpolation", "bicubic"),
        "resampler": resampler,
        "downscale": "area" if resampler == standalone.LEGACY_RESAMPLER else "antialiased",
        "jpeg_draft_size": int(size / min(1.0, crop_pct)),
        "mean": list(preprocessing["mean"]),
        "std": list(preprocessing["std"]),
        "normalization": "inside the model: (pixels / 255 - mean) / std",
        "input": {"name": INPUT_NAME, "dtype": "uint8", "shape": ["batch", size, size, 3], "channels": "RGB"},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", "classes"], "softmax": True},
    }


def bundle_decision(checkpoint: dict) -> dict:
    """decision.json: the rejection thresholds predict.py applies (confidence, and the novelty score the
    model's second output gives, when the run has a novelty reference), whether it predicts with TTA by
    default (the run's own choice), and the calibration folded into the model."""
    novelty = checkpoint.get("novelty")
    return {"unknown_threshold": float(checkpoint.get("unknown_threshold") or 0.0),
            "novelty_threshold": float(novelty["threshold"]) if novelty else None,
            "tta": tta_default(checkpoint),
            "calibration": checkpoint.get("calibration")}


def _check_format(fmt: str) -> str:
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise StudioError(f"Unknown export format {fmt!r}. Choose one of: {', '.join(FORMATS)}.")
    return fmt




def _check_dest(dest: Path) -> None:
    """DEST must be new, empty, or an earlier bundle and nothing else (it is replaced as a whole: a file of
    the user's beside it would be lost)."""
    if dest.exists() and not dest.is_dir():
        raise StudioError(f"{dest} is a file; give a folder path for the export.")
    if not dest.is_dir() or not any(dest.iterdir()):
        return
    if not is_bundle(dest):
        raise StudioError(f"{dest} already holds other files; export into a new or empty folder.")
    others = sorted(p.name + ("/" if p.is_dir() else "") for p in dest.iterdir()
                    if p.name not in EXPORT_NAMES)
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise StudioError(f"{dest} holds an earlier export and files of yours ({shown}); the export replaces "
                          "the whole folder: move them out first, or export into a new folder.")


def export_run(run_dir: str | os.PathLike, dest_dir: str | os.PathLike, fmt: str = "onnx") -> dict:
    """Export a run's model as a bundle in `dest_dir`, checked for parity with the studio's predictor.

    Returns {"dest", "format", "model_file", "files", "classes", "parity"}. Raises StudioError for a run
    that cannot be exported (scikit-learn head, no checkpoint) or when parity fails; DEST is left
    untouched then.
    """
    fmt = _check_format(fmt)
    run_dir, dest = Path(run_dir).expanduser().resolve(), Path(dest_dir).expanduser().resolve()
    _check_dest(dest)
    checkpoint = read_checkpoint(run_dir)
    exported = build_model(checkpoint)
    module = exportable_module(exported)  # StudioError for svm / knn before any work
    class_names = list(checkpoint["class_names"])
    preprocessing = bundle_preprocessing(checkpoint["preprocessing"])
    if module.novelty:
        preprocessing["novelty_output"] = {
            "name": NOVELTY_NAME, "dtype": "float32", "shape": ["batch"],
            "meaning": "cosine distance of the pretrained features to the k-th nearest training image; "
                       "above decision.json's novelty_threshold: unlike the training images"}
    model_file = standalone.MODEL_FILES[fmt]

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    except OSError as error:
        raise cannot_create(dest, error) from None
    try:
        writer = write_onnx if fmt == "onnx" else write_torchscript
        writer(module, staging / model_file, class_names=class_names, preprocessing=preprocessing)
        (staging / "classes.json").write_text(json.dumps(class_names, indent=2))
        (staging / "preprocessing.json").write_text(json.dumps(preprocessing, indent=2))
        (staging / standalone.DECISION_FILE).write_text(json.dumps(bundle_decision(checkpoint), indent=2))
        shutil.copyfile(standalone.__file__, staging / SCRIPT_FILE)
        # A fresh model for the reference: the exported one was converted in place.
        report = parity.check_parity(build_model(checkpoint), staging, run_dir)
        (staging / PARITY_FILE).write_text(json.dumps(report, indent=2))
        card = model_card.render(run_dir=run_dir, checkpoint={**checkpoint, "preprocessing": preprocessing},
                                 fmt=fmt, model_file=model_file, parity=report,
                                 exported=datetime.now().astimezone())
        (staging / CARD_FILE).write_text(card)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return {
        "dest": str(dest),
        "format": fmt,
        "model_file": str(dest / model_file),
        "files": sorted(p.name for p in dest.iterdir()),
        "classes": class_names,
        "parity": report,
    }


def export_zip(
    run_dir: str | os.PathLike, fmt: str = "onnx", cache_dir: str | os.PathLike | None = None
) -> Path:
    """Export into a fresh temporary folder and zip it; returns the zip's path (for a UI download).

    The zip holds one top-level folder `<run name>-<format>/`. `cache_dir` defaults to the system temp dir.
    """
    fmt = _check_format(fmt)
    run_dir = Path(run_dir).expanduser().resolve()
    parent = Path(tempfile.mkdtemp(prefix="studio-export-", dir=cache_dir))
    name = f"{run_dir.name}-{fmt}"
    try:
        export_run(run_dir, parent / name, fmt)
        archive = shutil.make_archive(str(parent / name), "zip", root_dir=parent, base_dir=name)
    except BaseException:
        shutil.rmtree(parent, ignore_errors=True)
        raise
    shutil.rmtree(parent / name, ignore_errors=True)
    return Path(archive)
