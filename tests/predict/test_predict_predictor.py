"""Checkpoint round trip and Predictor: inputs of every kind, TTA, folders, folded heads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from studio.errors import StudioError
from studio.predict import Predictor
from studio.predict.checkpoint import load_model, read_checkpoint


def test_checkpoint_holds_everything_needed(trained):
    _, result = trained
    checkpoint = read_checkpoint(result.run_dir)
    assert checkpoint["class_names"] == ["cat", "dog"] and checkpoint["backbone"] == "test_efficientnet"
    assert set(checkpoint["preprocessing"]) == {"image_size", "mean", "std", "interpolation", "crop_pct",
                                                "resampler"}
    assert checkpoint["preprocessing"]["resampler"] == "pillow"  # timm's eval resampling
    assert checkpoint["preprocessing"]["image_size"] == 64 and checkpoint["head"] == "linear"
    loaded = load_model(result.run_dir / "model.pt")
    assert loaded.model.get_classifier().out_features == 2


def test_paths_pil_and_numpy_give_the_same_prediction(trained):
    project, result = trained
    predictor = Predictor.from_run(result.run_dir, "cpu")
    path = project.dataset()["path"].iloc[0]
    image = Image.open(path).convert("RGB")
    by_path, by_pil, by_array = (predictor.predict(x)[0] for x in (path, image, np.asarray(image)))
    assert by_path["path"] == path and by_pil["path"] is None
    np.testing.assert_allclose(by_path["probs"], by_pil["probs"], atol=1e-5)
    np.testing.assert_allclose(by_path["probs"], by_array["probs"], atol=1e-5)


def test_tta_averages_views_and_top_k(trained):
    project, result = trained
    predictor = Predictor.from_run(result.run_dir, "cpu")
    paths = project.dataset()["path"].tolist()[:3]
    plain = predictor.predict(paths, top_k=1)
    tta = predictor.predict(paths, tta=True, top_k=5)
    assert all(len(p["top"]) == 1 for p in plain) and all(len(p["top"]) == 2 for p in tta)
    from studio.predict.inference import TTA_VIEWS

    views = predictor.probabilities(paths, TTA_VIEWS)
    np.testing.assert_allclose(views[:, 0], np.stack([p["probs"] for p in plain]), atol=1e-5)
    np.testing.assert_allclose(views.mean(1), np.stack([p["probs"] for p in tta]), atol=1e-5)
    assert not np.allclose(views[:, 0], views[:, 1])  # the flip really is another view


def test_predict_folder_writes_csv(trained, tmp_path):
    project, result = trained
    predictor = Predictor.from_run(result.run_dir, "cpu")
    results = predictor.predict_folder(project.images_dir, tmp_path / "out.csv")
    lines = (tmp_path / "out.csv").read_text().strip().splitlines()
    assert len(lines) == len(results) + 1 and lines[0].startswith("path,prediction,probability")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudioError, match="No images"):
        predictor.predict_folder(tmp_path / "empty")


def test_unreadable_images_are_named_or_skipped(trained, tmp_path):
    project, result = trained
    predictor = Predictor.from_run(result.run_dir, "cpu")
    good = project.dataset()["path"].tolist()[:2]
    broken = tmp_path / "half.jpg"
    broken.write_bytes(Path(good[0]).read_bytes()[:80])
    with pytest.raises(StudioError, match="half.jpg: "):
        predictor.predict([good[0], str(broken)])
    results = predictor.predict([good[0], str(broken), good[1]], tta=True, skip_unreadable=True)
    assert results[1]["top"] == [] and results[1]["probs"] is None and results[1]["error"]
    alone = predictor.predict(good, tta=True)  # the blank stand-in does not disturb the others
    np.testing.assert_allclose(results[0]["probs"], alone[0]["probs"], atol=1e-5)
    np.testing.assert_allclose(results[2]["probs"], alone[1]["probs"], atol=1e-5)

    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "ok.png").write_bytes(Path(good[0]).read_bytes())
    (folder / "bad.png").write_text("not an image")
    predictor.predict_folder(folder, tmp_path / "out.csv")
    rows = (tmp_path / "out.csv").read_text().strip().splitlines()
    assert rows[0].endswith(",error") and len(rows) == 3
    assert "not an image" in next(r for r in rows if "bad.png" in r)


def test_folded_logistic_regression_matches_sklearn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from studio.train.heads import fold_linear

    rng = np.random.default_rng(0)
    for classes in (2, 3):
        x = rng.normal(size=(60, 8)) * rng.uniform(0.5, 5, 8) + rng.normal(size=8)
        y = np.arange(60) % classes
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=500)).fit(x, y)
        layer = torch.nn.Linear(8, classes).double()
        fold_linear(pipeline, layer)
        folded = torch.softmax(layer(torch.from_numpy(x)), dim=1).detach().numpy()
        np.testing.assert_allclose(folded, pipeline.predict_proba(x), atol=1e-8)
    # The studio's own probe pipeline (identity scaler on raw features) folds the same way.
    from studio.train.heads import fit_logreg

    pipeline, _ = fit_logreg(x, y, np.arange(60), seed=0, balance_options=(False,))
    layer = torch.nn.Linear(8, classes).double()
    fold_linear(pipeline, layer)
    folded = torch.softmax(layer(torch.from_numpy(x)), dim=1).detach().numpy()
    np.testing.assert_allclose(folded, pipeline.predict_proba(x), atol=1e-8)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(StudioError, match="No model checkpoint"):
        Predictor.from_run(tmp_path, "cpu")


def test_tta_views_keep_the_whole_frame():
    """TTA's second scale shows the whole image (the eval crop cuts the border off); no view crops tighter."""
    from studio.predict.inference import TTA_VIEWS, Cropper, zooms_of

    image = np.zeros((100, 100, 3), np.uint8)
    image[:, :4] = 255  # a white stripe at the left border
    crops = Cropper({"image_size": 64, "crop_pct": 0.875, "interpolation": "bilinear"}, zooms_of(TTA_VIEWS))(
        image
    )
    eval_crop, whole = crops
    assert eval_crop[:, 0].max() == 0 and whole[:, 0].min() > 200
    assert all(view.zoom <= 1.0 for view in TTA_VIEWS) and {v.flip for v in TTA_VIEWS} == {False, True}
