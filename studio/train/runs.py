"""The run store: creates run folders and is the one reader and writer of their files.

`runs/<timestamp>-<strategy>/` holds config.json, split.json (the run's snapshot: the exact images),
metrics.csv (one row per epoch event), model.pt (the kept checkpoint), eval.json (the training-time
evaluation on the snapshot's val images, never overwritten), eval-current-split.json (an evaluation on
the project's val split of a later day, when asked for) and status.json. status.json says `running`
first and `done` / `cancelled` / `failed` only at the end, so a half-written run never looks finished.
Every JSON file is written atomically (`studio.durable`); a missing or damaged one reads as None.
"""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from studio.durable import atomic_write_json
from studio.train.events import METRIC_COLUMNS, Epoch, Log, RunStarted, Stage, TrainEvent

STATUS_FILE = "status.json"
CONFIG_FILE = "config.json"
SPLIT_FILE = "split.json"
METRICS_FILE = "metrics.csv"
MODEL_FILE = "model.pt"
EVAL_FILE = "eval.json"
CURRENT_SPLIT_EVAL_FILE = "eval-current-split.json"


def write_json(path: Path, data: Any) -> None:
    atomic_write_json(path, data)


def read_json(path: Path) -> Any:
    """The parsed file, or None when it is missing or unreadable (a run being written, a damaged file)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def save_evaluation(run_dir: str | Path, report: dict, *, current_split: bool = False) -> Path | None:
    """Store an evaluation report in the run folder; returns the file written, or None.

    On the run's own snapshot the report goes to eval.json only when the run has none yet (a cancelled
    run): the training-time file is never overwritten, and the same model on the same images gives the
    same numbers anyway. An evaluation on today's split always goes to its own file.
    """
    path = Path(run_dir) / (CURRENT_SPLIT_EVAL_FILE if current_split else EVAL_FILE)
    if not current_split and path.exists():
        return None
    write_json(path, report)
    return path


class RunStore:
    """One run folder being written by the engine (created, with status `running`, on construction)."""

    def __init__(self, runs_dir: Path, strategy: str) -> None:
        runs_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = runs_dir / f"{stamp}-{strategy}"
        suffix = 2
        while True:
            try:
                path.mkdir()
                break
            except FileExistsError:  # two runs in the same second
                path = runs_dir / f"{stamp}-{strategy}-{suffix}"
                suffix += 1
        self.path = path
        self.started = time.time()
        self.set_status("running")
        with open(self.path / METRICS_FILE, "w", newline="") as handle:
            csv.writer(handle).writerow(METRIC_COLUMNS)

    @property
    def checkpoint_path(self) -> Path:
        return self.path / MODEL_FILE

    def write(self, name: str, data: Any) -> None:
        write_json(self.path / name, data)

    def set_status(self, state: str, message: str | None = None, **extra: Any) -> None:
        self.write(STATUS_FILE, {"status": state, "message": message, "updated": datetime.now().isoformat(),
                                 **extra})

    def append_metrics(self, event: Epoch) -> None:
        row = {**event.to_dict(), "elapsed_s": round(time.time() - self.started, 2)}
        with open(self.path / METRICS_FILE, "a", newline="") as handle:
            csv.writer(handle).writerow([_cell(row.get(c)) for c in METRIC_COLUMNS])


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


class Events:
    """Sends typed events to the caller's callback and epoch rows to metrics.csv; holds the cancel flag.

    The first event of every run is `RunStarted` with the folder: that is how a caller learns where
    the run lives."""

    def __init__(self, callback: Callable[[TrainEvent], None] | None, cancel: threading.Event | None,
                 folder: RunStore) -> None:
        self.callback = callback
        self.cancel = cancel or threading.Event()
        self.folder = folder
        self.emit(RunStarted(str(folder.path)))

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def emit(self, event: TrainEvent) -> None:
        if isinstance(event, Epoch):
            self.folder.append_metrics(event)
        if self.callback is not None:
            self.callback(event)

    def log(self, message: str) -> None:
        self.emit(Log(message))

    def stage(self, name: str) -> None:
        self.emit(Stage(name))
