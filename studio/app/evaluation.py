"""The Evaluate tab's evaluation job: `studio.train.evaluation.evaluate_run` (what `studio eval` runs)
plus every image's prediction, so the tab's confusion cells can list their images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from studio.data.store import Project
from studio.train.evaluation import evaluate_run


class _RecordingPredictor:
    """Passes `evaluate`'s calls to the real predictor and keeps the probabilities it computed, so the
    confusion cells can list every image without a second pass over the validation set."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.paths: list[str] = []
        self.probs: np.ndarray | None = None

    @property
    def class_names(self) -> list[str]:
        return self.predictor.class_names

    @property
    def loaded(self) -> Any:  # the checkpoint's calibration and unknown threshold, for evaluate()
        return self.predictor.loaded

    def scores(self, images: Any, views: Any,
               errors: dict[int, str] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The predictor's (probabilities, novelty), recording the probabilities: evaluate() reads both,
        so the Evaluate tab's "not sure" count is the CLI's."""
        probs, novelty = self.predictor.scores(images, views, errors)
        readable = [i for i in range(len(images)) if not errors or i not in errors]  # junk rows left out
        self.paths, self.probs = [str(images[i]) for i in readable], probs[readable]
        return probs, novelty


def evaluation_job(service: Any, open_project: Callable[[Path], Project], project_root: Path, run_dir: Path,
                   *, current_split: bool = False):
    """Job function for the service: evaluate with TTA (the run's snapshot, or today's split), per-image
    predictions added for the Evaluate tab's confusion cells."""

    def run(ctx: Any) -> dict[str, Any]:
        project = open_project(project_root)
        with service.predictors.use(run_dir, ctx.device) as predictor:
            recorder = _RecordingPredictor(predictor)
            report = evaluate_run(run_dir, project, current_split=current_split, tta=True, predictor=recorder)
        rows = project.dataset(labeled_only=True).set_index("path")
        names = recorder.class_names
        images = []
        if recorder.probs is not None:
            plain, tta = recorder.probs[:, 0], recorder.probs.mean(axis=1)
            for i, path in enumerate(recorder.paths):
                if path not in rows.index:
                    continue
                row = rows.loc[path]
                images.append({"image_id": int(row["image_id"]), "path": path, "label": row["label"],
                               "plain": names[int(plain[i].argmax())], "tta": names[int(tta[i].argmax())],
                               "plain_p": float(plain[i].max()), "tta_p": float(tta[i].max())})
        return {"run_dir": str(run_dir), "report": report, "images": images}

    return run
