"""Export a real (tiny) trained run as ONNX and TorchScript bundles and check they predict like the studio."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import timm
import torch
from conftest import CLASSES, val_paths

from studio.errors import StudioError
from studio.export import bundle as bundle_module
from studio.export import export_run, export_zip, is_bundle
from studio.export.parity import MAX_VALIDATION_IMAGES, TOLERANCE, reference_predictor, validation_images
from studio.predict.checkpoint import load_model, make_checkpoint, preprocessing_dict, save_checkpoint

FILES = {"classes.json", "preprocessing.json", "decision.json", "predict.py", "parity.json", "model_card.md"}


def _studio_probs(run_dir: Path, paths: list[str]) -> np.ndarray:
    return reference_predictor(load_model(run_dir)).probabilities(paths)[:, 0]


def test_onnx_bundle_has_every_file_and_passes_parity(trained_run, onnx_bundle):
    dest, result = onnx_bundle
    assert set(result["files"]) == FILES | {"model.onnx"} and is_bundle(dest)
    assert json.loads((dest / "classes.json").read_text()) == CLASSES
    pre = json.loads((dest / "preprocessing.json").read_text())
    assert pre["image_size"] == 32 and pre["resize_shorter_to"] == 36 and pre["input"]["dtype"] == "uint8"
    report = json.loads((dest / "parity.json").read_text())
    assert report["passed"] and report["max_abs_diff"] <= TOLERANCE
    assert report["validation_images"] == len(val_paths(trained_run)) > 0
    assert report["identical_crops"] == report["images"]  # the preprocessing is the studio's, pixel for pixel
    metadata = {p.key: p.value for p in onnx.load(str(dest / "model.onnx")).metadata_props}
    assert json.loads(metadata["class_names"]) == CLASSES


def test_model_card_records_training_metrics_and_parity(trained_run, onnx_bundle):
    dest, result = onnx_bundle
    card = (dest / "model_card.md").read_text()
    evaluation = json.loads((trained_run / "eval.json").read_text())
    assert "tf_efficientnet_lite0" in card and "linear" in card
    assert f"{100 * evaluation['accuracy']:.1f}%" in card
    assert "Training images: 8, validation images: 4" in card and "| apple | 4 |" in card
    assert f"{result['parity']['max_abs_diff']:.2e}" in card


def test_bundle_predict_script_runs_without_studio_or_torch(trained_run, onnx_bundle, tmp_path):
    dest, _ = onnx_bundle
    paths = val_paths(trained_run)
    broken = tmp_path / "half-copied.jpg"  # an unreadable file among them is skipped, not fatal
    broken.write_bytes(Path(paths[0]).read_bytes()[:100])
    probe = (
        "import json, runpy, sys\n"
        f"sys.argv = ['predict.py', {paths[0]!r}, {str(broken)!r}, *{paths[1:]!r}, "
        "'--json', '--top-k', '2']\n"
        "try:\n"
        f"    runpy.run_path({str(dest / 'predict.py')!r}, run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    assert not stop.code, stop.code\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('studio', 'torch', 'timm', 'cv2'))\n"
        "print(json.dumps({'leaked': leaked}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    predictions, modules = (json.loads(line) for line in done.stdout.strip().splitlines()[-2:])
    assert modules["leaked"] == []
    skipped = predictions.pop(1)
    assert skipped["top"] == [] and skipped["error"] and f"skipped {broken}" in done.stderr
    expected = _studio_probs(trained_run, paths)
    for row, result in zip(expected, predictions):
        assert result["top"][0]["class"] == CLASSES[int(row.argmax())]
        assert abs(result["top"][0]["probability"] - float(row.max())) <= TOLERANCE


def test_torchscript_bundle_loads_with_torch_jit_and_matches(trained_run, torchscript_bundle):
    dest, result = torchscript_bundle
    assert "model.torchscript.pt" in result["files"] and result["parity"]["passed"]
    extra = {"classes.json": "", "preprocessing.json": ""}
    module = torch.jit.load(str(dest / "model.torchscript.pt"), _extra_files=extra)
    assert json.loads(extra["classes.json"]) == CLASSES
    from studio.export.standalone import preprocess

    paths = val_paths(trained_run)
    pre = json.loads(extra["preprocessing.json"])
    crops = torch.from_numpy(np.stack([preprocess(p, pre) for p in paths]))
    with torch.inference_mode():
        probs, novelty = module(crops)  # a probe run: probabilities, and the novelty score of each crop
    assert np.abs(probs.numpy() - _studio_probs(trained_run, paths)).max() <= TOLERANCE
    assert novelty.shape == (len(paths),)


def test_parity_check_fails_loudly_when_preprocessing_differs(trained_run, tmp_path, monkeypatch):
    real = bundle_module.bundle_preprocessing

    def wrong_crop(preprocessing):  # a bundle that forgot timm's crop_pct: the classic export bug
        return {**real(preprocessing), "crop_pct": 1.0, "resize_shorter_to": preprocessing["image_size"]}

    monkeypatch.setattr(bundle_module, "bundle_preprocessing", wrong_crop)
    dest = tmp_path / "bad"
    with pytest.raises(StudioError, match="parity"):
        export_run(trained_run, dest, "onnx")
    assert not dest.exists() and not any(tmp_path.iterdir())  # no half-made bundle left behind


def test_scikit_learn_heads_are_refused_with_what_to_do(tmp_path):
    from sklearn.svm import SVC

    model = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    estimator = SVC(probability=True).fit(np.random.default_rng(0).normal(size=(10, model.num_features)),
                                          [0, 1] * 5)
    pre = preprocessing_dict(32, {"mean": (0.5,) * 3, "std": (0.5,) * 3})
    checkpoint = make_checkpoint(model, backbone="resnet10t", class_names=["a", "b"], preprocessing=pre,
                                 strategy="linear", head="svm", sklearn_head=estimator)
    assert checkpoint["sklearn_head"]["__estimator__"] == "SVC"  # stored as tensors and JSON, not a pickle
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(checkpoint, run / "model.pt")
    with pytest.raises(StudioError, match="logistic-regression"):
        export_run(run, tmp_path / "out", "onnx")
    assert not (tmp_path / "out").exists()


def test_bad_destination_and_format_are_user_errors(trained_run, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StudioError, match="other files"):
        export_run(trained_run, tmp_path, "onnx")
    with pytest.raises(StudioError, match="onnx, torchscript"):
        export_run(trained_run, tmp_path / "x", "tflite")
    with pytest.raises(StudioError, match="checkpoint"):
        export_run(tmp_path, tmp_path / "y", "onnx")
    with pytest.raises(StudioError, match="cannot create .*choose a folder you can write to"):
        export_run(trained_run, tmp_path / "notes.txt" / "bundle", "onnx")  # under a file


def test_export_zip_holds_one_bundle_folder(trained_run, tmp_path):
    archive = export_zip(trained_run, "onnx", cache_dir=tmp_path)
    assert archive.suffix == ".zip" and archive.is_file()
    names = zipfile.ZipFile(archive).namelist()
    folder = f"{trained_run.name}-onnx/"
    assert {n[len(folder):] for n in names if n.startswith(folder)} >= FILES | {"model.onnx"}


def test_parity_images_come_from_the_run_snapshot_and_tolerate_a_missing_one(trained_run, tmp_path):
    assert validation_images(trained_run) == val_paths(trained_run)[:MAX_VALIDATION_IMAGES] != []
    assert validation_images(tmp_path) == []  # no split.json: parity runs on generated images only
    (tmp_path / "split.json").write_text("{not json")
    assert validation_images(tmp_path) == []


def test_an_earlier_export_is_replaced_but_never_files_of_the_users(trained_run, onnx_bundle, tmp_path):
    dest = tmp_path / "bundle"
    shutil.copytree(onnx_bundle[0], dest)
    (dest / "results").mkdir()
    (dest / "results" / "r.csv").write_text("mine")
    (dest / "my_notes.txt").write_text("mine")
    with pytest.raises(StudioError, match=r"files of yours \(my_notes.txt, results/\)"):
        export_run(trained_run, dest, "onnx")
    assert (dest / "my_notes.txt").read_text() == "mine" and (dest / "results" / "r.csv").exists()
    shutil.rmtree(dest / "results")
    (dest / "my_notes.txt").unlink()
    assert export_run(trained_run, dest, "onnx")["dest"] == str(dest.resolve())  # a bundle alone: replaced
