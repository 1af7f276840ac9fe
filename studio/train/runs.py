"""The run folder and the event stream.

`runs/<timestamp>-<strategy>/` holds config.json, split.json (the exact images), metrics.csv (one row
per epoch event), model.pt (best checkpoint), eval.json and status.json. status.json says `running`
first and `done` / `cancelled` / `failed` only at the end, so a half-written run never looks finished.
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

from studio.durable import atomic_write_text

METRIC_COLUMNS = ("stage", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
                  "images_per_s", "eta_s", "elapsed_s")
STATUS_FILE = "status.json"


def write_json(path: Path, data: Any) -> None:
    """Durable JSON write (studio.durable: unique temp file, fsync, rename)."""
    atomic_write_text(path, json.dumps(data, indent=2, default=str))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


class RunFolder:
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
        with open(self.path / "metrics.csv", "w", newline="") as handle:
            csv.writer(handle).writerow(METRIC_COLUMNS)

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "model.pt"

    def write(self, name: str, data: Any) -> None:
        write_json(self.path / name, data)

    def set_status(self, state: str, message: str | None = None, **extra: Any) -> None:
        self.write(STATUS_FILE, {"status": state, "message": message, "updated": datetime.now().isoformat(),
                                 **extra})

    def append_metrics(self, event: dict) -> None:
        row = {**event, "elapsed_s": round(time.time() - self.started, 2)}
        with open(self.path / "metrics.csv", "a", newline="") as handle:
            csv.writer(handle).writerow([_cell(row.get(c)) for c in METRIC_COLUMNS])


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


class Events:
    """Sends events to the caller's callback and epoch rows to metrics.csv; holds the cancel flag."""

    def __init__(self, callback: Callable[[dict], None] | None, cancel: threading.Event | None,
                 folder: RunFolder) -> None:
        self.callback = callback
        self.cancel = cancel or threading.Event()
        self.folder = folder

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def emit(self, event: dict) -> None:
        if event.get("type") == "epoch":
            self.folder.append_metrics(event)
        if self.callback is not None:
            self.callback(event)

    def log(self, message: str) -> None:
        self.emit({"type": "log", "message": message})

    def stage(self, name: str) -> None:
        self.emit({"type": "stage", "name": name})
