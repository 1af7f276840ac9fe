"""A job's status as the Train tab and its /train_status endpoint report it, read from the job's event
history (the JSON form of `studio.train.events`)."""

from __future__ import annotations

from typing import Any

from studio.train.events import Epoch, Stage, Step

# The last epoch's numbers shown beside the progress bar.
STATUS_METRICS = ("stage", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr")


def read_job(job: Any, since: int = 0) -> tuple[bool, list[dict[str, Any]]]:
    """Whether `job` had finished, and its events after `since`, read in that order. A job emits its last
    event before it counts as finished, so True here means the list holds every event; read the other way
    round, a poll could see "finished" without the final events, stop polling and show a running job for
    good (the Train tab's bar once stayed short of "Done" that way)."""
    finished = job.is_finished
    return finished, job.events(since)


def job_status(job: Any, events: list[dict[str, Any]], queue_position: int | None = None) -> dict[str, Any]:
    """What /train_status returns: state, progress (0..1 of the current stage), eta_s, last metrics."""
    info = job.to_dict()
    stage, stage_start, eta, epoch, metrics, when = None, None, None, None, {}, None
    for event in events:
        kind = event.get("type")
        name = event.get("stage") or (event.get("name") if kind == Stage.TYPE else None)
        if name and name != stage:
            stage, stage_start, eta, epoch = name, event.get("time"), None, None
        if event.get("eta_s") is not None:
            eta, when = float(event["eta_s"]), event.get("time")
        if kind in (Step.TYPE, Epoch.TYPE) and event.get("epoch") is not None:
            epoch = event["epoch"]
        if kind == Epoch.TYPE:
            metrics = {k: event.get(k) for k in STATUS_METRICS if event.get(k) is not None}
    progress = float(info["progress"] or 0.0)
    if info["state"] == "running" and not progress and eta is not None and stage_start and when:
        # The engine reports time left per stage; the bar shows how far the current stage is.
        spent = max(0.0, when - stage_start)
        progress = spent / (spent + eta) if spent + eta > 0 else 0.0
    if info["state"] == "done":
        progress, eta = 1.0, 0.0
    return {
        "job_id": info["id"], "kind": info["kind"], "state": info["state"], "progress": round(progress, 4),
        "eta_s": None if eta is None or info["state"] != "running" else round(eta, 1),
        "stage": stage, "epoch": epoch, "metrics": metrics, "error": info["error"],
        "run_dir": info["run_dir"],
        "queue_position": queue_position, "result": info["result"] if info["state"] == "done" else None,
    }
