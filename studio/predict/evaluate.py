"""Evaluate a run on its validation images: accuracy, per-class precision/recall/F1, confusion matrix,
top losses (the most confident mistakes), with and without test-time augmentation.

By default the images are the run's own snapshot (its split.json), so what a run reports does not change
when images are relabeled or excluded later; `current_split=True` uses the project's val split of today
(with the same exclusions as a new snapshot). Storing the report is the run store's job
(`studio.train.runs.save_evaluation`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from studio.data.snapshot import Snapshot, current_validation
from studio.data.store import Project
from studio.errors import StudioError
from studio.predict.calibration import (
    apply_temperature,
    expected_calibration_error,
    per_image_log_loss,
    reliability_bins,
)
from studio.predict.checkpoint import LoadedModel
from studio.predict.inference import IDENTITY, TTA_VIEWS
from studio.predict.predictor import Predictor

TOP_LOSSES = 20


def metrics_from_probs(
    targets: np.ndarray,
    probs: np.ndarray,
    class_names: list[str],
    image_ids: list | None = None,
    paths: list | None = None,
    top_n: int = TOP_LOSSES,
) -> dict:
    """Metrics for true class indices and predicted probabilities (N x classes)."""
    targets = np.asarray(targets, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    predicted = probs.argmax(axis=1)
    labels = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        targets, predicted, labels=labels, zero_division=0)
    true_prob = probs[np.arange(len(targets)), targets]
    losses = per_image_log_loss(probs, targets)
    mistakes = np.flatnonzero(predicted != targets)
    # Most confident mistakes first: highest loss on the true class (ties: higher wrong confidence).
    order = sorted(mistakes, key=lambda i: (-losses[i], -probs[i, predicted[i]]))[:top_n]
    top_losses = [{
        "image_id": None if image_ids is None else _plain(image_ids[i]),
        "path": None if paths is None else str(paths[i]),
        "label": class_names[targets[i]], "predicted": class_names[predicted[i]],
        "probability": float(probs[i, predicted[i]]), "true_probability": float(true_prob[i]),
        "loss": float(losses[i]),
    } for i in order]
    return {
        "n": len(targets),
        "accuracy": float((predicted == targets).mean()) if len(targets) else 0.0,
        "loss": float(losses.mean()) if len(targets) else 0.0,
        "classes": list(class_names),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i])} for i, name in enumerate(class_names)},
        "macro_f1": macro_f1(f1, support, predicted, len(class_names)),
        "confusion_matrix": confusion_matrix(targets, predicted, labels=labels).tolist(),
        "top_losses": top_losses,
    }


def macro_f1(f1: np.ndarray, support: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """The mean F1 over the classes these images concern: those with images here or predicted here. A
    class with neither (none of its images among the validation images) has no F1: counting it as 0
    would mark a perfect result down (1 of 2 classes absent: macro F1 0.5 at accuracy 1.0)."""
    seen = (np.asarray(support) > 0) | np.isin(np.arange(n_classes), predicted)
    return float(np.mean(np.asarray(f1)[seen])) if seen.any() else 0.0


def calibration_report(loaded: LoadedModel, targets: np.ndarray, probs: np.ndarray,
                       predicted: np.ndarray, novelty: np.ndarray | None = None) -> dict:
    """ECE before/after the run's temperature on these images (`probs`: the identity view), the reliability
    bins, and the unknown rate: the share of `predicted` (the run's default prediction, TTA-averaged when it
    predicts with TTA) below the threshold or, by their `novelty` scores, unlike the training images: the
    images `studio predict` flags."""
    temperature = loaded.temperature
    raw = apply_temperature(probs, 1.0 / temperature)  # undo the calibration: softmax(T * log p)
    threshold = loaded.unknown_threshold
    stored = loaded.checkpoint.get("calibration") or {}
    unknown, unlike = loaded.unknown_flags(np.asarray(predicted).reshape(len(probs), -1), novelty)
    report = {
        "calibration": {"temperature": temperature, "ece_before": expected_calibration_error(raw, targets),
                        "ece_after": expected_calibration_error(probs, targets),
                        "fitted_on": stored.get("fitted_on"),
                        # the ECE pair is these images' (the run's log gives the fitting images' own)
                        "measured_on": f"the {len(probs)} evaluated images"},
        "reliability": {"before": reliability_bins(raw, targets), "after": reliability_bins(probs, targets)},
        "unknown_threshold": threshold,
        "unknown_rate": float(unknown.mean()) if len(probs) else 0.0,
    }
    if loaded.novelty_threshold is not None:
        record = loaded.checkpoint["novelty"]
        report["novelty"] = {"threshold": loaded.novelty_threshold, "k": int(record["k"]),
                             "n": int(record["n"]), "keep": float(record["keep"]),
                             "unlike_rate": float(unlike.mean()) if len(probs) else 0.0}
    return report


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _validation_items(run_dir: Path, project: Project | None, current_split: bool,
                      class_names: list[str]) -> tuple[list[dict], list[str]]:
    """The run's own snapshot's val images, or (current_split) the project's val split of today; with notes
    on what was left out: images the run trained on (the split changed since) and images of classes the
    model does not know (added or renamed since)."""
    notes = []
    if current_split:
        if project is None:
            raise StudioError("Evaluating on the current split needs the project (--project PROJECT).")
        val, _ = current_validation(project)
        try:
            trained = set(Snapshot.load(run_dir).train["hash"])
        except StudioError:  # no split.json: which images it trained on is unknown
            trained = set()
        seen = val["hash"].isin(trained)
        if seen.any():
            notes.append(f"{int(seen.sum())} of today's validation images were training images of this run "
                         "(the split changed since it trained): left out, a model scores its own training "
                         "images too well")
            val = val[~seen]
    else:
        val = Snapshot.load(run_dir).val
    items = val[["image_id", "path", "label"]].to_dict(orient="records")
    unknown = sorted({item["label"] for item in items if item["label"] not in class_names})
    if unknown:
        count = sum(item["label"] in unknown for item in items)
        notes.append(f"{count} validation image(s) of classes this model does not know were left out "
                     f"({', '.join(unknown)}: added or renamed since it trained)")
        items = [item for item in items if item["label"] in class_names]
    if not items:
        raise StudioError("No validation images with the model's classes: "
                          "label some images in the 'val' split.")
    return items, notes


def evaluate(run_dir: str | os.PathLike, project: Project | None = None, *, current_split: bool = False,
             tta: bool = False, device: torch.device | str | None = None,
             predictor: Predictor | None = None) -> dict:
    """Metrics of a run's model on its snapshot's validation images (or, with `current_split`, on the
    project's val split of today); with `tta`, also under `"tta"` with TTA. `"images"` in the report
    says which set was used (`snapshot` or `current-split`); an image that can no longer be read (its file
    damaged since the run) is left out and listed under `"unreadable"` (image_id, path, error).

    `"tta_default"` says whether the run predicts with TTA by default (then `"tta"` is always there, and
    `"default_accuracy"` is its accuracy: what the run's predictions score)."""
    run_dir = Path(run_dir)
    predictor = predictor or Predictor.from_run(run_dir, device)
    loaded = getattr(predictor, "loaded", None)  # a stand-in predictor may not carry a checkpoint
    tta_default = bool(loaded is not None and loaded.tta)
    tta = tta or tta_default
    class_names = predictor.class_names
    items, notes = _validation_items(run_dir, project, current_split, class_names)
    index = {name: i for i, name in enumerate(class_names)}
    targets = np.array([index[item["label"]] for item in items])
    paths = [item["path"] for item in items]
    ids = [item["image_id"] for item in items]
    views = TTA_VIEWS if tta else (IDENTITY,)
    errors: dict[int, str] = {}
    novelty = None
    if hasattr(predictor, "scores"):  # views[0] is the identity view, the one the novelty score reads
        probs, novelty = predictor.scores(paths, views, errors)
    else:  # a stand-in predictor
        probs = predictor.probabilities(paths, views, errors)
    unreadable = [{"image_id": ids[i], "path": paths[i], "error": errors[i]} for i in sorted(errors)]
    if errors:
        readable = [i for i in range(len(paths)) if i not in errors]
        if not readable:
            raise StudioError(f"None of the {len(paths)} validation images can be read now "
                              f"(first: {unreadable[0]['path']}: {unreadable[0]['error']}).")
        targets, probs = targets[readable], probs[readable]
        novelty = None if novelty is None else novelty[readable]
        paths, ids = [paths[i] for i in readable], [ids[i] for i in readable]
    report = metrics_from_probs(targets, probs[:, 0], class_names, ids, paths)
    averaged = probs.mean(axis=1)
    if loaded is not None:  # the unknown rate of what the run's predictions give
        predicted = averaged if tta_default else probs[:, 0]
        report.update(calibration_report(loaded, targets, probs[:, 0], predicted, novelty))
    if tta:
        report["tta"] = metrics_from_probs(targets, averaged, class_names, ids, paths)
        report["tta"]["views"] = [v.name for v in views]
    report["tta_default"] = tta_default
    report["default_accuracy"] = report["tta"]["accuracy"] if tta_default else report["accuracy"]
    report["images"] = "current-split" if current_split else "snapshot"
    report["unreadable"] = unreadable
    report["notes"] = notes
    return report
