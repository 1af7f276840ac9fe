"""Jobs: what was asked (kind, config), where it stands (state, progress), how it ended (result, error).

A `Job` is shared between the worker that runs it and any number of readers (UI tabs, the CLI), so its
fields change only under its lock and its events go through an `EventLog`. A job function receives a
`JobContext`: the job's side of that contract (emit events, report progress, see cancel requests).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from studio.errors import StudioError
from studio.service.events import EventLog
from studio.train.events import RunStarted, TrainEvent


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class JobCancelled(Exception):
    """Raised by `JobContext.check_cancelled` so a job function can stop early; the job ends `cancelled`."""


_ids = itertools.count(1)


class Job:
    """One unit of device work and its history. Read it from any thread; only the service changes it."""

    def __init__(self, kind: str, fn: Callable[[JobContext], Any], *, config: dict | None = None,
                 interactive: bool = False, project: str | None = None,
                 events: EventLog | None = None) -> None:
        self.id = f"{next(_ids):05d}-{kind}"
        self.kind = kind
        self.fn = fn
        self.config = dict(config or {})
        self.interactive = interactive
        self.project = project
        self.cancel_event = threading.Event()
        self._events = events or EventLog()
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self.state = JobState.QUEUED
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.progress = 0.0
        self.eta_s: float | None = None
        self.result: Any = None
        self.error: str | None = None
        self.run_dir: Path | None = None
        # Called with the job once its final state is set, before anyone waiting is woken (the service
        # records the ending in the run folder here, so a waiter always finds the folder settled).
        self.on_finish: Callable[[Job], None] | None = None
        self._events.append({"type": "state", "state": self.state.value})

    # ---- reading -------------------------------------------------------------------------------------

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """This job's events after sequence number `since` (0: the whole history)."""
        return self._events.since(since)

    def wait_events(self, since: int = 0, timeout: float | None = None) -> list[dict[str, Any]]:
        """Events after `since`, blocking up to `timeout` s for new ones; empty on timeout or when the
        job has finished and nothing newer is left."""
        return self._events.wait(since, timeout)

    @property
    def event_count(self) -> int:
        return len(self._events)

    @property
    def is_finished(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished; False if `timeout` passed first."""
        return self._finished.wait(timeout)

    def outcome(self, timeout: float | None = None) -> Any:
        """The result of a job that ended `done`; StudioError with the reason for any other ending."""
        if not self.wait(timeout):
            raise StudioError(f"Job {self.id} did not finish within {timeout:g} s; it is still {self.state}.")
        if self.state is JobState.DONE:
            return self.result
        if self.state is JobState.CANCELLED:
            raise StudioError(f"Job {self.id} was cancelled.")
        raise StudioError(self.error or f"Job {self.id} failed.")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what `job.json` and the UI's job list show)."""
        with self._lock:
            return {
                "id": self.id, "kind": self.kind, "state": self.state.value, "project": self.project,
                "interactive": self.interactive, "config": _jsonable(self.config),
                "created": self.created, "started": self.started, "finished": self.finished,
                "progress": self.progress, "eta_s": self.eta_s, "error": self.error,
                "run_dir": str(self.run_dir) if self.run_dir else None, "result": _jsonable(self.result),
            }

    def __repr__(self) -> str:
        return f"Job({self.id!r}, state={self.state.value!r})"

    # ---- changes (service side) ----------------------------------------------------------------------

    def _emit(self, event: dict[str, Any]) -> dict[str, Any]:
        return self._events.append(event)

    def _set_state(self, state: JobState, *, error: str | None = None, result: Any = None) -> bool:
        """Move to `state` (False if already finished: the first ending wins)."""
        with self._lock:
            if self.state.finished:
                return False
            now = time.time()
            self.state = state
            if state is JobState.RUNNING:
                self.started = now
            if state.finished:
                self.finished = now
                self.error = error
                self.result = result
                if state is JobState.DONE:
                    self.progress, self.eta_s = 1.0, 0.0
        if state.finished and self.on_finish is not None:
            try:
                self.on_finish(self)
            except Exception:  # bookkeeping must not keep the job from finishing
                logging.getLogger(__name__).exception("Recording the end of job %s failed", self.id)
        event: dict[str, Any] = {"type": "state", "state": state.value}
        if error:
            event["error"] = error
        self._emit(event)
        if state.finished:
            self._events.close()
            self._finished.set()
        return True

    def _set_progress(self, fraction: float, eta_s: float | None) -> None:
        with self._lock:
            self.progress = min(1.0, max(0.0, float(fraction)))
            self.eta_s = None if eta_s is None else max(0.0, float(eta_s))


class JobContext:
    """What a job function sees: emit events, report progress, watch for cancellation, use the device."""

    def __init__(self, job: Job, device: Any, on_run_dir: Callable[[Job], None] | None = None) -> None:
        self.job = job
        self.device = device
        self._on_run_dir = on_run_dir

    @property
    def cancel_event(self) -> threading.Event:
        """Pass this to the engine's `cancel=`; it is set when someone cancels the job."""
        return self.job.cancel_event

    @property
    def cancelled(self) -> bool:
        return self.job.cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Raise JobCancelled if the job was cancelled (for job functions with their own loop)."""
        if self.cancelled:
            raise JobCancelled

    def emit(self, event: TrainEvent | dict[str, Any]) -> None:
        """Record an event (the engine's callback): typed engine events are kept in their JSON form; the
        engine's RunStarted ties the job to its run folder; progress fields update the job's progress."""
        if isinstance(event, RunStarted):
            self.set_run_dir(event.run_dir)
        if isinstance(event, TrainEvent):
            event = event.to_dict()
        fraction = _number(event.get("fraction", event.get("progress")))
        eta_s = _number(event.get("eta_s"))
        if fraction is not None or eta_s is not None:
            self.job._set_progress(self.job.progress if fraction is None else fraction, eta_s)
        self.job._emit(event)

    def progress(self, fraction: float, eta_s: float | None = None) -> None:
        """Report how far the job is (0..1) and the estimated seconds left."""
        self.job._set_progress(fraction, eta_s)
        self.job._emit({"type": "progress", "fraction": self.job.progress, "eta_s": self.job.eta_s})

    def log(self, message: str, level: str = "info") -> None:
        self.job._emit({"type": "log", "level": level, "message": str(message)})

    def set_run_dir(self, path: str | Path) -> None:
        """Tie the job to its run folder (its job.json is written there)."""
        path = Path(path)
        if self.job.run_dir == path:
            return
        self.job.run_dir = path
        if self._on_run_dir is not None:
            self._on_run_dir(self.job)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _jsonable(value: Any) -> Any:
    """Plain JSON types from results (dicts, lists, paths, numpy scalars, dataclasses)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return _jsonable(dataclasses.asdict(value))
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy scalar
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return repr(value)
