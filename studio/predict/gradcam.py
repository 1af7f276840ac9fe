"""Grad-CAM: where in the image the model looked for a class.

For CNNs, the gradient of the class score weights the channels of the last feature map (timm's
`forward_features` output). For ViT-like models the patch tokens of the last block are reshaped to
their grid and treated the same way (gradient-weighted tokens; no attention maps needed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from studio.errors import StudioError
from studio.predict.ensemble import ProbabilityAverage
from studio.predict.inference import Cropper, ImageInput, to_model_input
from studio.predict.predictor import Predictor


@dataclass
class GradCam:
    heatmap: np.ndarray  # H x W float32 in [0, 1], over the model's input crop
    overlay: Image.Image  # the input crop with the heatmap blended on top
    image: Image.Image  # the input crop the model saw
    class_name: str
    class_index: int
    probability: float


def _feature_grid(features: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """N x C x h x w feature map from a CNN map or from ViT-style tokens (N x tokens x C)."""
    if features.ndim == 4:
        return features
    if features.ndim == 3:
        prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)
        tokens = features[:, prefix:]
        side = math.isqrt(tokens.shape[1])
        if side * side != tokens.shape[1]:
            raise StudioError("Grad-CAM cannot map this model's tokens to an image grid.")
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], side, side)
    raise StudioError(f"Grad-CAM does not support this backbone (features of shape {tuple(features.shape)}).")


def _member_cam(model: torch.nn.Module, x: torch.Tensor, index: int) -> torch.Tensor:
    """1 x 1 x h x w: the gradient-weighted feature map of one network for class `index`."""
    with torch.enable_grad():
        features = model.forward_features(x)
        features.retain_grad()
        logits = model.forward_head(features)
        model.zero_grad(set_to_none=True)
        logits[0, index].backward()
    grid = _feature_grid(features.detach(), model)
    grads = _feature_grid(features.grad, model)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * grid).sum(dim=1, keepdim=True))


def grad_cam(
    predictor: Predictor, image: ImageInput, class_name: str | None = None, *, alpha: float = 0.45
) -> GradCam:
    """Grad-CAM of `image` for `class_name` (default: the predicted class)."""
    loaded = predictor.loaded
    if loaded.sklearn_head is not None:
        raise StudioError(
            f"Grad-CAM needs a torch classifier, but this run uses a {loaded.head} head on features. "
            "Use a run trained with the logreg head or any fine-tuning strategy."
        )
    model = loaded.model
    # An ensemble (auto's fine-tune + probe): each member's map for the class, weighted as its vote.
    ensemble = isinstance(model, ProbabilityAverage)
    members = list(zip(model.members, model.weights)) if ensemble else [(model, 1.0)]
    if not all(hasattr(m, "forward_features") and hasattr(m, "forward_head") for m, _ in members):
        raise StudioError("Grad-CAM needs a timm model with forward_features/forward_head.")
    crop = Cropper(loaded.preprocessing, [1.0])(image)[0]
    predictor.runner.prepare()  # on the predictor's device, eval mode
    device = predictor.device
    x = to_model_input(crop[None], loaded.preprocessing["mean"], loaded.preprocessing["std"], device)
    with torch.no_grad():  # the probability the Predict tab shows (calibrated, the whole ensemble)
        probs = torch.from_numpy(loaded.probabilities(model(x).float()))[0]
    if class_name is None:
        index = int(probs.argmax())
    elif class_name in loaded.class_names:
        index = loaded.class_names.index(class_name)
    else:
        raise StudioError(
            f"Unknown class {class_name!r}; the model knows: {', '.join(loaded.class_names)}."
        )
    cam = sum(weight * _member_cam(member, x, index) for member, weight in members)
    cam = F.interpolate(cam.float(), size=crop.shape[:2], mode="bilinear", align_corners=False)[0, 0].cpu()
    peak = float(cam.max())
    heatmap = (cam / peak if peak > 0 else cam).numpy().astype(np.float32)
    colored = cv2.applyColorMap((heatmap * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    blended = (crop.astype(np.float32) * (1 - alpha) + colored.astype(np.float32) * alpha).clip(0, 255)
    return GradCam(heatmap, Image.fromarray(blended.astype(np.uint8)), Image.fromarray(crop),
                   loaded.class_names[index], index, probs[index].item())
