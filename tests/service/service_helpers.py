"""Helpers for the service tests: fake long jobs and fake run folders."""

from __future__ import annotations

import json
import threading
from pathlib import Path

# A failure guard only: every wait in these tests ends on an event long before this.
GUARD_S = 20.0


class Gate:
    """A fake long job: records that it started, then blocks until released or cancelled."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, ctx):
        self.started.set()
        while not self.release.is_set():
            if ctx.cancel_event.wait(0.01):
                return {"status": "cancelled"}
        return "released"


def fake_run_dir(root: Path, name: str = "20240101-000000-linear", *, status: str = "running",
                 metrics: str | None = None, model: bool = True) -> Path:
    run = root / "runs" / name
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"status": status}))
    (run / "config.json").write_text(json.dumps({"config": {"strategy": "linear"}}))
    if metrics is not None:
        (run / "metrics.csv").write_text(metrics)
    if model:
        (run / "model.pt").write_bytes(b"weights")
    return run
