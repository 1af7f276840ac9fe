"""The job queue with its two lanes, and the code that runs one job from start to its final state.

Lanes: the main lane owns the device and runs every job in turn, interactive ones first, otherwise in
submission order (so two training jobs never share the device). The side lane runs only interactive
jobs, only while the main lane is busy, and only when the service says the device has room for them
beside the running job (always on CPU; on CUDA when enough memory is free). Nothing is ever interrupted:
an interactive job jumps the queue, it does not pre-empt.
"""

from __future__ import annotations

import threading
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from studio.errors import StudioError
from studio.service.jobs import Job, JobCancelled, JobContext, JobState

# While interactive jobs wait only because the device is full, re-check its free memory this often.
SIDE_RECHECK_S = 0.5


class JobQueue:
    """Queued jobs in two FIFO lines (interactive, normal), shared by the main and side lanes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._interactive: deque[Job] = deque()
        self._normal: deque[Job] = deque()
        self._closed = False
        self.main_job: Job | None = None
        self.side_job: Job | None = None

    def put(self, job: Job) -> None:
        with self._cond:
            if self._closed:
                raise StudioError("The trainer service is shutting down; no new jobs are accepted.")
            (self._interactive if job.interactive else self._normal).append(job)
            self._cond.notify_all()

    def remove(self, job: Job) -> bool:
        """Take a queued job out (cancel before start); False if it is not queued any more."""
        with self._cond:
            for line in (self._interactive, self._normal):
                if job in line:
                    line.remove(job)
                    self._cond.notify_all()
                    return True
            return False

    def queued(self) -> list[Job]:
        """Queued jobs in the order the main lane would take them."""
        with self._cond:
            return [*self._interactive, *self._normal]

    def take_main(self) -> Job | None:
        """The next job for the main lane (blocks); None once the queue is closed."""
        with self._cond:
            while not self._closed:
                line = self._interactive or self._normal
                if line:
                    self.main_job = line.popleft()
                    return self.main_job
                self._cond.wait()
            return None

    def take_side(self, can_run_beside: Callable[[], bool]) -> Job | None:
        """The next interactive job that may run beside the main lane's job (blocks); None once closed."""
        with self._cond:
            while not self._closed:
                if self.main_job is not None and self._interactive:
                    if can_run_beside():
                        self.side_job = self._interactive.popleft()
                        return self.side_job
                    self._cond.wait(SIDE_RECHECK_S)
                else:
                    self._cond.wait()
            return None

    def finished(self, job: Job) -> None:
        """A lane is done with `job`: free the lane and wake the other one."""
        with self._cond:
            if self.main_job is job:
                self.main_job = None
            if self.side_job is job:
                self.side_job = None
            self._cond.notify_all()

    def close(self) -> list[Job]:
        """Refuse new jobs, stop both lanes and return the jobs that were still queued."""
        with self._cond:
            self._closed = True
            drained = [*self._interactive, *self._normal]
            self._interactive.clear()
            self._normal.clear()
            self._cond.notify_all()
            return drained

    @property
    def closed(self) -> bool:
        return self._closed


def run_job(job: Job, ctx: JobContext) -> None:
    """Run `job.fn` and settle its final state; never raises (the lane must go on to the next job)."""
    if job.cancel_event.is_set():  # cancelled between leaving the queue and starting
        job._set_state(JobState.CANCELLED)
        return
    job._set_state(JobState.RUNNING)
    try:
        result = job.fn(ctx)
    except JobCancelled:
        job._set_state(JobState.CANCELLED)
    except StudioError as error:
        job._set_state(JobState.FAILED, error=str(error))
    except Exception as error:  # noqa: BLE001 - a bug, not the user's doing: keep the traceback for the log
        job._emit({"type": "log", "level": "error", "message": traceback.format_exc()})
        job._set_state(JobState.FAILED, error=f"{type(error).__name__}: {error}")
    else:
        status = _field(result, "status")
        if status == "failed":
            job._set_state(JobState.FAILED, error=str(_field(result, "message") or "The job failed."),
                           result=result)
        elif status == "cancelled" or (status is None and job.cancel_event.is_set()):
            job._set_state(JobState.CANCELLED, result=result)
        else:  # an engine that finished its work is done even if a cancel arrived after the last batch
            job._set_state(JobState.DONE, result=result)
    finally:
        if not job.state.finished:  # BaseException (SystemExit in a job fn): never leave it running
            job._set_state(JobState.FAILED, error="The job was interrupted.")


def _field(result: Any, name: str) -> Any:
    if isinstance(result, dict):
        return result.get(name)
    return getattr(result, name, None)
