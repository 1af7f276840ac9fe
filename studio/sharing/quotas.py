"""Bounded queues: at most one queued training per user (besides one running), and a cap on the service's
waiting jobs overall."""

from __future__ import annotations

import threading
from typing import Any

from studio.errors import StudioError

MAX_QUEUED_JOBS = 16  # jobs waiting for the device, all users together
QUEUE_FULL = (
    "the queue is full: {n} jobs are already waiting for the device; try again when some have finished"
)


class JobQuota:
    """Admission control in front of the trainer service (which itself queues without bound)."""

    def __init__(self, max_queued: int = MAX_QUEUED_JOBS, per_user_training: int = 1) -> None:
        self.max_queued = max_queued
        self.per_user_training = per_user_training
        self._owners: dict[str, str] = {}  # job id -> user who queued it
        self._lock = threading.Lock()

    def admit(self, service: Any, user: str, kind: str, submit: Any) -> Any:
        """Run `submit()` (which queues one job and returns it) when `user` may queue one more `kind` job."""
        with self._lock:
            waiting = service.queued_jobs()
            if len(waiting) >= self.max_queued:
                raise StudioError(QUEUE_FULL.format(n=len(waiting)))
            if kind == "train":
                mine = [job for job in waiting if job.kind == "train" and self._owners.get(job.id) == user]
                if len(mine) >= self.per_user_training:
                    raise StudioError(f"you already have a training waiting in the queue (job {mine[0].id}): "
                                      "wait for it to start or cancel it before queueing another")
            job = submit()
            self._owners[job.id] = user
            return job

    def owner_of(self, job_id: str) -> str | None:
        return self._owners.get(job_id)


def outcome_or_cancel(service: Any, job: Any, timeout: float) -> Any:
    """`job.outcome(timeout)`; a wait that gives up cancels the job too (nobody is left to read its
    result)."""
    if not job.wait(timeout):
        service.cancel(job.id)
        raise StudioError(f"Job {job.id} did not finish within {timeout:g} s and was cancelled; try again "
                          "when the device is less busy.")
    return job.outcome(0)
