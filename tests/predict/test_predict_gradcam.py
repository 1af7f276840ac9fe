"""Grad-CAM heatmaps for CNN checkpoints, a ViT fallback, and a clear error for sklearn heads."""

from __future__ import annotations

import numpy as np
import pytest
import timm
from PIL import Image
from predict_helpers import tiny_run

from studio.errors import StudioError
from studio.predict import Predictor
from studio.predict.checkpoint import build_model, make_checkpoint
from studio.predict.gradcam import grad_cam


def test_gradcam_on_cnn(trained):
    project, result = trained
    predictor = Predictor.from_run(result.run_dir, "cpu")
    path = project.dataset()["path"].iloc[0]
    cam = grad_cam(predictor, path)
    assert cam.heatmap.shape == (64, 64) and cam.heatmap.dtype == np.float32
    assert 0.0 <= cam.heatmap.min() and cam.heatmap.max() <= 1.0
    assert cam.overlay.size == (64, 64) and cam.class_name == predictor.predict(path)[0]["top"][0]["class"]
    other = "dog" if cam.class_name == "cat" else "cat"
    assert grad_cam(predictor, path, other).class_name == other
    with pytest.raises(StudioError, match="Unknown class"):
        grad_cam(predictor, path, "horse")


def test_gradcam_on_vit_tokens():
    model = timm.create_model("test_vit", pretrained=False, num_classes=2)
    size = model.pretrained_cfg["input_size"][-1]
    prep = {
        "image_size": size,
        "mean": [0.5] * 3,
        "std": [0.5] * 3,
        "interpolation": "bicubic",
        "crop_pct": 0.9,
    }
    checkpoint = make_checkpoint(model, backbone="test_vit", class_names=["a", "b"], preprocessing=prep,
                                 strategy="finetune")
    predictor = Predictor(build_model(checkpoint), "cpu")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 90, 3), dtype=np.uint8))
    cam = grad_cam(predictor, image, "b")
    assert cam.heatmap.shape == (size, size) and cam.class_index == 1


def test_gradcam_needs_a_torch_head(tmp_path):
    project, result = tiny_run(tmp_path, head="knn")
    predictor = Predictor.from_run(result.run_dir, "cpu")
    with pytest.raises(StudioError, match="torch classifier"):
        grad_cam(predictor, project.dataset()["path"].iloc[0])
    project.close()
