"""The model behind a demo: a studio run (Predictor) or an exported bundle (onnxruntime / torch.jit
through the bundle's standalone code). Both average the same TTA views: the crop and the whole frame,
each also mirrored."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from studio.errors import StudioError
from studio.export.bundle import is_bundle
from studio.predict.checkpoint import CHECKPOINT_NAME


class Classifier(Protocol):
    class_names: list[str]
    tta: bool  # whether the run predicts with TTA by default (its own choice)

    def verdict(self, image: np.ndarray, tta: bool) -> tuple[np.ndarray, bool, bool]:
        """(probabilities in class order, unknown, unlike the training images): the run's own rule."""
        ...


class RunClassifier:
    def __init__(self, path: Path) -> None:
        from studio.predict.predictor import Predictor

        self.predictor = Predictor.from_run(path)
        self.class_names = self.predictor.class_names
        self.tta = self.predictor.tta

    def verdict(self, image: np.ndarray, tta: bool) -> tuple[np.ndarray, bool, bool]:
        result = self.predictor.predict([image], tta=tta, top_k=1)[0]
        return result["probs"], result["unknown"], result["unlike_training"]


class BundleClassifier:
    def __init__(self, path: Path) -> None:
        from studio.export.standalone import BundleModel

        try:
            self.model = BundleModel(path)
        except ImportError as error:
            raise StudioError(
                f"This bundle needs {error.name}, which is not installed: pip install {error.name}."
            ) from error
        self.class_names = self.model.class_names
        self.tta = self.model.tta

    def verdict(self, image: np.ndarray, tta: bool) -> tuple[np.ndarray, bool, bool]:
        result = self.model.predict([image], tta=tta, top_k=len(self.class_names))[0]
        by_class = {t["class"]: t["probability"] for t in result["top"]}
        return (np.array([by_class[c] for c in self.class_names]), result["unknown"],
                result["unlike_training"])


@dataclass
class DemoModel:
    """A loaded classifier plus what the page says about it."""

    classifier: Classifier
    title: str
    description: str
    kind: str  # "run" | "onnx" | "torchscript"

    @property
    def class_names(self) -> list[str]:
        return self.classifier.class_names

    @property
    def tta(self) -> bool:
        return self.classifier.tta

    def verdict(self, image: np.ndarray, *, tta: bool | None = None,
                top_k: int = 5) -> tuple[dict[str, float], str | None]:
        """({class: probability} of the k most likely classes (`tta` None: the run's choice), what to say
        when the run flags the image unknown, or None): the studio's rule."""
        tta = self.tta if tta is None else tta
        probs, unknown, unlike = self.classifier.verdict(image, tta)
        probs = np.asarray(probs, dtype=np.float64)
        order = np.argsort(-probs, kind="stable")[:max(1, min(top_k, len(self.class_names)))]
        top = {self.class_names[i]: float(probs[i]) for i in order}
        if not unknown:
            return top, None
        why = "unlike the training images" if unlike else "none of the classes fits well"
        return top, f"Not sure: {why}; the bars show its top guesses."


def _describe(backbone: str, class_names: list[str]) -> str:
    return f"Backbone `{backbone}`. Classes: {', '.join(class_names)}."


def load_demo_model(path: str | os.PathLike) -> DemoModel:
    """A run folder, its model.pt, or an exported bundle folder; StudioError for anything else."""
    path = Path(path).expanduser()
    if is_bundle(path):
        classifier = BundleClassifier(path)
        backbone = _bundle_backbone(path)
        return DemoModel(classifier, f"{path.name}", _describe(backbone, classifier.class_names),
                         classifier.model.format)
    run = path.parent if path.name == CHECKPOINT_NAME else path
    if (run / CHECKPOINT_NAME).is_file():
        classifier = RunClassifier(run)
        return DemoModel(classifier, run.name, _describe(classifier.predictor.loaded.backbone,
                                                         classifier.class_names), "run")
    raise StudioError(
        f"{path} is neither a run folder with a model.pt nor an exported bundle (a folder with model.onnx "
        "or model.torchscript.pt, classes.json and preprocessing.json). Pass project/runs/<run> or an "
        "export folder."
    )


def _bundle_backbone(path: Path) -> str:
    """The backbone named in the bundle's model card, or "an exported model"."""
    card = path / "model_card.md"
    if card.is_file():
        for line in card.read_text().splitlines():
            if line.startswith("- Backbone: `"):
                return line.split("`")[1]
    return "an exported model"
