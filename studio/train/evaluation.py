"""Evaluating a run and keeping the report in its folder: the one call behind `studio eval`, the
service's evaluate job and the Evaluate tab.

By default a run is evaluated on its own snapshot (the val images it was trained against): the numbers
do not move when images are relabeled or excluded later, and the training-time eval.json is kept as it
is. Evaluating on today's validation split is an explicit choice and goes to its own file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.data.store import Project
from studio.train.runs import save_evaluation


def evaluate_run(run_dir: str | Path, project: Project | None = None, *, current_split: bool = False,
                 tta: bool = False, device: Any = None, predictor: Any = None) -> dict[str, Any]:
    """Evaluate and store the report (see `studio.train.runs.save_evaluation`); returns the report."""
    from studio.predict.evaluate import evaluate

    report = evaluate(run_dir, project, current_split=current_split, tta=tta, device=device,
                      predictor=predictor)
    save_evaluation(run_dir, report, current_split=current_split)
    return report
