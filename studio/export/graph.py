"""The exported computation: raw pixels in, class probabilities out (and, for a run with a novelty
reference, the novelty score as a second output: studio.predict.novelty).

Normalization and softmax live inside the graph, so the only preprocessing left outside is the
resize + center crop that `predict.py` (studio/export/standalone.py) reproduces exactly.
"""

from __future__ import annotations

import torch

from studio.errors import StudioError
from studio.predict.checkpoint import SKLEARN_HEADS, LoadedModel
from studio.predict.novelty import scoring_model

INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"
NOVELTY_NAME = "novelty"


class PixelsToProbabilities(torch.nn.Module):
    """uint8 N x H x W x 3 RGB pixels -> N x classes probabilities (float32); with `novelty` (the model's
    last output column is its novelty score), (probabilities, N novelty scores)."""

    def __init__(
        self, model: torch.nn.Module, mean: list[float], std: list[float], temperature: float = 1.0,
        novelty: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.novelty = novelty
        self.temperature = float(temperature)  # the run's calibration (logits / T), as LoadedModel does
        # The same arithmetic as the studio's inference (x - 255*mean) / (255*std), for identical inputs.
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = pixels.permute(0, 3, 1, 2).float()
        outputs = self.model((x - self.mean) / self.std).float()
        if not self.novelty:
            return torch.softmax(outputs / self.temperature, dim=1)
        return torch.softmax(outputs[:, :-1] / self.temperature, dim=1), outputs[:, -1]

    @property
    def output_names(self) -> list[str]:
        return [OUTPUT_NAME, NOVELTY_NAME] if self.novelty else [OUTPUT_NAME]


def exportable_module(loaded: LoadedModel) -> PixelsToProbabilities:
    """The wrapper for a checkpoint with a linear head; StudioError for scikit-learn heads."""
    if loaded.head in SKLEARN_HEADS or loaded.sklearn_head is not None:
        raise StudioError(
            f"This run classifies with a scikit-learn {loaded.head.upper()} head, which cannot be exported "
            "(that needs skl2onnx, which the studio does not ship). Retrain with the default "
            "logistic-regression head (--head logreg) or a fine-tuned strategy, then export that run."
        )
    network = loaded.model.float().eval()
    separate = None if loaded.novelty_backbone is None else loaded.novelty_backbone.float().eval()
    model = scoring_model(network, loaded.checkpoint, separate)
    module = PixelsToProbabilities(model, loaded.preprocessing["mean"], loaded.preprocessing["std"],
                                   loaded.temperature, novelty=model is not network).eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def example_input(preprocessing: dict, batch: int = 2) -> torch.Tensor:
    size = int(preprocessing["image_size"])
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=generator)
