"""Predict classes for images with a trained run, optionally with test-time augmentation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from studio.errors import StudioError

# One rule for the arguments and one CSV for `studio predict` and the exported predict.py.
from studio.export.standalone import image_paths, write_predictions_csv
from studio.predict.checkpoint import LoadedModel, load_model
from studio.predict.device import inference_dtype, select_device
from studio.predict.inference import IDENTITY, TTA_VIEWS, ImageInput, InferenceRunner, View
from studio.predict.novelty import scoring_model


class Predictor:
    """A loaded model ready to predict. TTA averages the eval crop and the whole frame, each also mirrored."""

    def __init__(
        self, loaded: LoadedModel, device: torch.device | str | None = None, batch_size: int = 32
    ) -> None:
        self.loaded = loaded
        self.device = device if isinstance(device, torch.device) else select_device(device or "auto")
        # With a novelty reference the runner's outputs carry the novelty score as a last column.
        self.scored = scoring_model(loaded.model, loaded.checkpoint, loaded.novelty_backbone)
        self.runner = InferenceRunner(self.scored, loaded.preprocessing, self.device,
                                      inference_dtype(self.device), batch_size=batch_size)

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, device: torch.device | str | None = None) -> Predictor:
        return cls(load_model(run_dir), device)

    @property
    def class_names(self) -> list[str]:
        return self.loaded.class_names

    def probabilities(self, images: Sequence[ImageInput], views: Sequence[View] = (IDENTITY,),
                      errors: dict[int, str] | None = None) -> np.ndarray:
        """Class probabilities for every image and view: N x views x classes. An unreadable image raises
        a StudioError naming it; with `errors`, its reason is recorded there instead (its rows are junk)."""
        return self.scores(images, views, errors)[0]

    def scores(self, images: Sequence[ImageInput], views: Sequence[View] = (IDENTITY,),
               errors: dict[int, str] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(`probabilities`, novelty): the novelty score of each image's first view (N; None for a run
        without a novelty reference), from the same forward pass."""
        outputs = self.runner.run(list(images), views, errors=errors)
        scored = self.scored is not self.loaded.model
        if len(outputs) == 0:
            return (np.zeros((0, len(views), len(self.class_names)), dtype=np.float32),
                    np.zeros(0, dtype=np.float32) if scored else None)
        novelty = outputs[:, 0, -1].copy() if scored else None
        if scored:
            outputs = outputs[..., :-1]
        flat = torch.from_numpy(np.ascontiguousarray(outputs).reshape(len(outputs) * len(views), -1))
        return self.loaded.probabilities(flat).reshape(len(outputs), len(views), -1), novelty

    @property
    def tta(self) -> bool:
        """Whether this run predicts with TTA by default (its own choice, made on training images)."""
        return self.loaded.tta

    def predict(self, images: ImageInput | Sequence[ImageInput], *, tta: bool | None = None,
                top_k: int = 5, skip_unreadable: bool = False) -> list[dict]:
        """Top-k classes per image: [{"path", "top": [{"class", "probability"}], "unknown", "unlike_training",
        "probs"}].

        `tta`: average the TTA views; None (the default) follows the run's own choice (`self.tta`).

        `unknown` is True when the top probability is below the run's rejection threshold or the image is
        unlike the training images (`unlike_training`: studio.predict.novelty) ("none of these": the top
        guesses are still given).

        An unreadable image raises a StudioError naming it, unless `skip_unreadable`: then its result
        is {"path", "top": [], "probs": None, "error": reason} and the other images are still predicted.
        """
        if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)):
            images = [images]
        images = list(images)
        errors: dict[int, str] | None = {} if skip_unreadable else None
        tta = self.tta if tta is None else tta
        views, novelty = self.scores(images, TTA_VIEWS if tta else (IDENTITY,), errors)
        probs = views.mean(axis=1)
        unknown, unlike = self.loaded.unknown_flags(probs, novelty)
        k = max(1, min(top_k, len(self.class_names)))
        results = []
        for index, (image, row) in enumerate(zip(images, probs)):
            path = str(image) if isinstance(image, (str, os.PathLike)) else None
            if errors and index in errors:
                results.append({"path": path, "top": [], "probs": None, "error": errors[index]})
                continue
            order = np.argsort(-row, kind="stable")[:k]
            results.append({
                "path": path,
                "top": [{"class": self.class_names[i], "probability": float(row[i])} for i in order],
                "unknown": bool(unknown[index]),
                "unlike_training": bool(unlike[index]),
                "probs": row,
            })
        return results

    def predict_folder(self, folder: str | os.PathLike, csv_path: str | os.PathLike | None = None, *,
                       tta: bool | None = None, top_k: int = 5) -> list[dict]:
        """Predict every image in a folder (recursively); write a CSV when `csv_path` is given. Unreadable
        images do not stop the others: their results and CSV rows carry an `error` instead."""
        paths = image_files(folder)
        results = self.predict(paths, tta=tta, top_k=top_k, skip_unreadable=True)
        if csv_path is not None:
            write_predictions_csv(results, csv_path, self.class_names)
        return results


def image_files(folder: str | os.PathLike) -> list[str]:
    """Every image in a folder, recursively, sorted."""
    if not Path(folder).is_dir():
        raise StudioError(f"{folder} is not a folder.")
    return image_arguments([folder])


def image_arguments(items: Sequence[str | os.PathLike]) -> list[str]:
    """Image files as given, folders replaced by their images: the exported bundle's own rule, so
    `studio predict` and its `predict.py` read the same arguments as the same images."""
    try:
        return image_paths(items)
    except ValueError as error:
        raise StudioError(str(error)) from None
