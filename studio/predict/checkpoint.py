"""The `model.pt` checkpoint: one format for every strategy, so prediction and export never care how a
model was trained.

A checkpoint is a plain dict saved with torch.save (loadable with weights_only=True):
- `backbone`, `num_classes`, `class_names`, `preprocessing` ({image_size, mean, std, interpolation,
  crop_pct}), `strategy`, `weights_source`;
- `head`: "linear" when the timm model's own classifier gives the logits (fine-tuned models, and
  linear probes whose scaler + logistic regression were folded into that layer), or "svm" / "knn"
  when a scikit-learn estimator classifies the pooled features (the model then has no classifier);
- `state_dict`: the timm model's weights; `sklearn_head`: the estimator as tensors and JSON
  (`studio.predict.sklearn_state`, never a pickle) or None. Readers ignore keys they do not know;
- optional `ensemble` ({weights}): the model is a studio.predict.ensemble.ProbabilityAverage of that many
  networks of `backbone` (auto's fine-tune and linear probe), `state_dict` the average's (members.0.*, ...);
- optional `calibration` ({temperature, ece_before, ece_after, fitted_on, n}: linear heads divide their
  logits by the temperature) and `unknown_threshold` (a prediction whose top probability is below it is
  flagged unknown), both plain floats fitted on held-out training predictions (studio.predict.calibration);
- optional `novelty` ({k, threshold, keep, n, reference, and for a model without a probe network of its
  own `backbone_state`, the pretrained backbone's weights}: a prediction whose pooled pretrained features
  are farther than `threshold` from their k-th nearest training image, the rows of `reference`, is
  flagged unknown too; studio.predict.novelty).
"""

from __future__ import annotations

import io
import os
import pickle  # only to name the error torch raises for a pickled payload
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch

from studio.durable import atomic_write_bytes
from studio.errors import StudioError
from studio.export.standalone import RESAMPLER
from studio.predict.ensemble import ProbabilityAverage
from studio.predict.novelty import novelty_network, separate_backbone
from studio.predict.sklearn_state import from_state, to_state

FORMAT = "studio-checkpoint/1"
CHECKPOINT_NAME = "model.pt"
SKLEARN_HEADS = ("svm", "knn")
MAX_ENSEMBLE_MEMBERS = 8  # a damaged or hostile file must not make the reader build networks without end


def preprocessing_dict(image_size: int, data_cfg: dict) -> dict:
    """The eval preprocessing a checkpoint records (timm's data config at the trained image size)."""
    return {
        "image_size": int(image_size),
        "mean": [float(v) for v in data_cfg["mean"]],
        "std": [float(v) for v in data_cfg["std"]],
        "interpolation": str(data_cfg.get("interpolation", "bicubic")),
        "crop_pct": float(data_cfg.get("crop_pct", 0.875)),
        "resampler": RESAMPLER,  # checkpoints without it were trained and evaluated with LEGACY_RESAMPLER
    }


def make_checkpoint(
    model: torch.nn.Module,
    *,
    backbone: str,
    class_names: list[str],
    preprocessing: dict,
    strategy: str,
    head: str = "linear",
    sklearn_head: Any = None,
    weights_source: dict | None = None,
    extra: dict | None = None,
) -> dict:
    """A checkpoint dict holding a CPU copy of the model's weights (safe to keep while training goes on)."""
    if head in SKLEARN_HEADS and sklearn_head is None:
        raise ValueError(f"head {head!r} needs its fitted scikit-learn estimator")
    ensemble = isinstance(model, ProbabilityAverage)
    if ensemble and head != "linear":
        raise ValueError("an ensemble's members give logits themselves (head 'linear')")
    checkpoint = {
        "format": FORMAT,
        "backbone": backbone,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "preprocessing": dict(preprocessing),
        "strategy": strategy,
        "head": head,
        "state_dict": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "sklearn_head": to_state(sklearn_head) if sklearn_head is not None else None,
        "weights_source": weights_source or {},
        "extra": extra or {},
    }
    if ensemble:
        checkpoint["ensemble"] = {"weights": list(model.weights)}
    return checkpoint


def save_checkpoint(checkpoint: dict, path: str | os.PathLike) -> Path:
    """Write durably (studio.durable): a reader never sees a half-written model.pt."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def set_decision(path: str | os.PathLike, decision: dict) -> None:
    """Store `calibration`, `unknown_threshold` (plain floats; a run that keeps no training images aside
    has neither), when fitted the `novelty` reference, and when the run chose it, `tta` (whether it
    predicts with TTA by default, and on what that was decided) in a saved checkpoint."""
    path = Path(path)
    checkpoint = read_checkpoint(path)
    if "calibration" in decision:
        checkpoint["calibration"] = {k: (float(v) if isinstance(v, (int, float)) else v)
                                     for k, v in decision["calibration"].items()}
        checkpoint["unknown_threshold"] = float(decision["unknown_threshold"])
    checkpoint.pop("novelty", None)
    if decision.get("novelty"):
        novelty = decision["novelty"]
        checkpoint["novelty"] = {"k": int(novelty["k"]), "threshold": float(novelty["threshold"]),
                                 "keep": float(novelty["keep"]), "n": int(novelty["n"]),
                                 "reference": novelty["reference"].float().contiguous()}
        if novelty.get("backbone_state") is not None:
            checkpoint["novelty"]["backbone_state"] = {
                key: value.detach().to("cpu", copy=True) for key, value in novelty["backbone_state"].items()}
    if "tta" in decision:
        checkpoint["tta"] = {k: (float(v) if isinstance(v, float) else v) for k, v in decision["tta"].items()}
    save_checkpoint(checkpoint, path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        raise StudioError(f"{path} does not exist: give a run folder (one of PROJECT/runs/) or its "
                          "model.pt, or the project itself for its newest run with a model.")
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise StudioError(
            f"No model checkpoint at {path}: the run may have failed or been cancelled before its first "
            "checkpoint. Train again or pick another run."
        )
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive: anything else is another file
        raise StudioError(f"{path} is not a studio model checkpoint; give a run folder (PROJECT/runs/NAME) "
                          f"or its {CHECKPOINT_NAME}.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise StudioError(
            f"The checkpoint {path} holds Python objects (a pickle), which could run code when "
            "opened: refused. Studio checkpoints hold only tensors and JSON; train again."
        ) from error
    except Exception as error:  # torch raises many types for a damaged file
        raise StudioError(
            f"The checkpoint {path} cannot be read ({type(error).__name__}); train again."
        ) from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise StudioError(f"{path} is not a studio checkpoint (format {FORMAT}).")
    return checkpoint


def tta_default(checkpoint: dict) -> bool:
    """Whether a checkpoint's run predicts with TTA by default (auto chooses it; other runs and older
    ones: no)."""
    return bool((checkpoint.get("tta") or {}).get("tta", False))


@dataclass
class LoadedModel:
    """A checkpoint turned back into a model: `model` gives logits (head "linear") or features."""

    model: torch.nn.Module
    class_names: list[str]
    preprocessing: dict
    backbone: str
    head: str
    sklearn_head: Any
    checkpoint: dict
    # The pretrained backbone stored beside a model without a probe network of its own, for the novelty
    # score (studio.predict.novelty); None otherwise.
    novelty_backbone: torch.nn.Module | None = None

    @property
    def temperature(self) -> float:
        """The calibration temperature (1.0 for an uncalibrated run or a scikit-learn head)."""
        if self.sklearn_head is not None:
            return 1.0
        return float((self.checkpoint.get("calibration") or {}).get("temperature", 1.0))

    @property
    def unknown_threshold(self) -> float:
        """Top probabilities below this are flagged unknown (0.0: never, for runs without one)."""
        return float(self.checkpoint.get("unknown_threshold") or 0.0)

    @property
    def novelty_threshold(self) -> float | None:
        """Predictions whose novelty score (studio.predict.novelty) is above this are flagged unknown; None
        for runs without a novelty reference."""
        stored = self.checkpoint.get("novelty")
        return float(stored["threshold"]) if stored else None

    def unknown_flags(self, predicted: np.ndarray,
                      novelty: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(unknown, unlike_training) per image: the top probability of `predicted` (the run's default
        prediction, N x classes) below the confidence threshold, or the image unlike the training images
        (its `novelty` score above the novelty threshold; never without a score or a reference)."""
        unlike = np.zeros(len(predicted), dtype=bool)
        if novelty is not None and self.novelty_threshold is not None:
            unlike = np.asarray(novelty) > self.novelty_threshold
        return (np.asarray(predicted).max(axis=1) < self.unknown_threshold) | unlike, unlike

    @property
    def tta(self) -> bool:
        """Whether predictions use TTA by default (`tta_default`)."""
        return tta_default(self.checkpoint)

    def probabilities(self, outputs: torch.Tensor) -> np.ndarray:
        """Class probabilities (N x classes) from the model's outputs for a batch (calibrated)."""
        outputs = outputs.float()
        if self.sklearn_head is None:
            return torch.softmax(outputs / self.temperature, dim=1).cpu().numpy()
        return np.asarray(self.sklearn_head.predict_proba(outputs.cpu().numpy()), dtype=np.float32)


def build_model(checkpoint: dict) -> LoadedModel:
    """The timm model of a checkpoint with its weights (no download: the weights are in the file)."""
    head = checkpoint["head"]
    num_classes = 0 if head in SKLEARN_HEADS else int(checkpoint["num_classes"])
    ensemble = checkpoint.get("ensemble")
    if ensemble:
        weights = ensemble.get("weights") if isinstance(ensemble, dict) else None
        if not (isinstance(weights, list) and 1 <= len(weights) <= MAX_ENSEMBLE_MEMBERS
                and all(isinstance(w, (int, float)) and w > 0 for w in weights)):
            raise StudioError(
                f"This checkpoint's ensemble record is damaged ({ensemble!r:.80}); train again.")
        model = ProbabilityAverage([timm.create_model(checkpoint["backbone"], pretrained=False,
                                                      num_classes=num_classes) for _ in weights], weights)
    else:
        model = timm.create_model(checkpoint["backbone"], pretrained=False, num_classes=num_classes)
    model.load_state_dict(checkpoint["state_dict"], strict=True)
    model.eval()
    stored = checkpoint.get("sklearn_head")
    if isinstance(stored, (bytes, bytearray)):
        raise StudioError(
            "This checkpoint keeps its SVM/k-NN head as a pickle (an older studio), which could run "
            "code when opened: refused. Train the run again."
        )
    estimator = from_state(stored) if stored is not None else None
    novelty_backbone = _novelty_backbone(checkpoint, model)
    return LoadedModel(
        model=model,
        class_names=list(checkpoint["class_names"]),
        preprocessing=dict(checkpoint["preprocessing"]),
        backbone=checkpoint["backbone"],
        head=head,
        sklearn_head=estimator,
        checkpoint=checkpoint,
        novelty_backbone=novelty_backbone,
    )


def _novelty_backbone(checkpoint: dict, model: torch.nn.Module) -> torch.nn.Module | None:
    """The pretrained backbone stored beside the model for its novelty score (None when the model's own
    probe network gives it, or without a record); a damaged or hostile record is refused, not half-applied."""
    stored = checkpoint.get("novelty")
    if not stored:
        return None
    damaged = StudioError(
        f"This checkpoint's novelty record is damaged ({type(stored).__name__}); train again.")
    reference = stored.get("reference") if isinstance(stored, dict) else None
    if not (isinstance(reference, torch.Tensor) and reference.ndim == 2 and len(reference) >= 1
            and isinstance(stored.get("k"), int) and stored["k"] >= 1
            and isinstance(stored.get("threshold"), float)):
        raise damaged
    network = novelty_network(model, checkpoint)
    separate = None
    if network is None:
        try:
            separate = network = separate_backbone(checkpoint)
        except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as error:
            raise damaged from error
    if network is not None and reference.shape[1] != getattr(network, "num_features", None):
        raise damaged
    return separate


def load_model(path: str | os.PathLike) -> LoadedModel:
    """Read a run's (or a file's) checkpoint and rebuild its model on the CPU."""
    return build_model(read_checkpoint(path))
