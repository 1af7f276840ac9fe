"""Run folders as the service sees them: job.json, honest final status, and listing past runs.

The engine writes config.json, metrics.csv, model.pt and status.json through the run store
(`studio.train.runs`, whose file names and JSON reading and writing this module uses too). The service
adds job.json (the job's config and final state) and makes sure a folder whose job did not finish never
says `done`. Listing reads only files, so after a restart the app can show past runs and their curves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from studio.train.runs import CONFIG_FILE, METRICS_FILE, MODEL_FILE, STATUS_FILE, read_json, write_json

JOB_FILE = "job.json"
# A run folder whose status.json still says `running` with no live job behind it: the process died.
INTERRUPTED = "interrupted"


def write_job_file(run_dir: Path, job_summary: dict) -> None:
    if Path(run_dir).is_dir():
        write_json(Path(run_dir) / JOB_FILE, job_summary)


def settle_status(run_dir: Path, state: str, message: str | None = None) -> bool:
    """Make sure a run whose job ended `cancelled`/`failed` is not marked `running` or `done`.

    The engine normally writes the right status itself; this covers a job stopped from outside (shutdown,
    an exception before the engine could record it). Returns True if status.json was rewritten.
    """
    if state == "done":
        return False
    path = Path(run_dir) / STATUS_FILE
    if not Path(run_dir).is_dir():
        return False
    current = read_json(path) or {}
    if current.get("status") in ("cancelled", "failed"):
        return False
    write_json(path, {**current, "status": state, "message": message or current.get("message"),
                      "updated": datetime.now().isoformat(), "settled_by": "service"})
    return True


def run_status(run_dir: str | Path) -> str | None:
    """The state its status.json records (done, running, cancelled, failed); None without one (an older
    run folder, read as finished)."""
    return (read_json(Path(run_dir) / STATUS_FILE) or {}).get("status")


def latest_model_run(project_root: str | Path) -> Path | None:
    """The newest finished run with a checkpoint (run folder names start with their start time)."""
    runs_dir = Path(project_root) / "runs"
    if not runs_dir.is_dir():
        return None
    for run in sorted((p for p in runs_dir.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True):
        if (run / MODEL_FILE).is_file() and run_status(run) in (None, "done"):
            return run
    return None


def run_curves(run_dir: str | Path) -> pd.DataFrame:
    """The run's metrics.csv (one row per epoch event); an empty frame when there is none yet."""
    path = Path(run_dir) / METRICS_FILE
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return pd.DataFrame()


def run_settings(run: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(the settings a run was started with, the backbone it trained): `list_runs` entry in. The backbone
    is the record's own (auto may have chosen another than the one asked for; written when the run ends)."""
    record = run.get("config") or {}
    if not isinstance(record, dict):
        return {}, ""
    settings = record.get("config", record)
    return settings, str(record.get("backbone") or settings.get("backbone") or "")


def list_runs(project_root: str | Path, *, active: Iterable[str | Path] = ()) -> list[dict[str, Any]]:
    """Every run folder under `<project>/runs`, most recently started first.

    Each entry: run_dir, name, status (from status.json; `running` with no live job in `active` reads
    `interrupted`), message, config, job (job.json or None), epochs (metrics rows), best_val_accuracy
    (the curve's best: for auto, held-out training images, not val), val_accuracy (the run's reported
    validation accuracy, as it predicts, once it has one; else the curve's best), last (the last metrics
    row as a dict), has_model, modified (epoch s).
    """
    runs_dir = Path(project_root) / "runs"
    if not runs_dir.is_dir():
        return []
    live = {str(Path(p).resolve()) for p in active}
    entries = [_describe(path, live) for path in runs_dir.iterdir() if path.is_dir()]
    # Folder names start with the run's start time (YYYYmmdd-HHMMSS), so by name is by start.
    return sorted(entries, key=lambda e: e["name"], reverse=True)


def _describe(path: Path, live: set[str]) -> dict[str, Any]:
    status = read_json(path / STATUS_FILE) or {}
    state = status.get("status", "unknown")
    if state == "running" and str(path.resolve()) not in live:
        state = INTERRUPTED
    curves = run_curves(path)
    best = None
    if "val_accuracy" in curves and curves["val_accuracy"].notna().any():
        best = float(curves["val_accuracy"].max())
    result = status.get("result") or {}
    reported = result.get("accuracy", result.get("val_accuracy"))
    config = read_json(path / CONFIG_FILE)
    # Until it reports, an auto run has no validation number: its curve scores held-out training images.
    curve_is_val = run_settings({"config": config})[0].get("strategy", "auto") != "auto"
    last = curves.iloc[-1].dropna().to_dict() if len(curves) else {}
    times = [p.stat().st_mtime for p in (path / STATUS_FILE, path / CONFIG_FILE, path) if p.exists()]
    return {
        "run_dir": str(path), "name": path.name, "status": state, "message": status.get("message"),
        "config": config, "job": read_json(path / JOB_FILE),
        "epochs": len(curves), "best_val_accuracy": best,
        "val_accuracy": (best if curve_is_val else None) if reported is None else float(reported),
        "last": last,
        "has_model": (path / MODEL_FILE).is_file(), "modified": max(times),
    }
