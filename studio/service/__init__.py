"""The shared in-process trainer service: one job queue, one worker owning the device, event
histories any tab can replay, cancel, and warm predictors for the UI. Never imports gradio."""

from studio.service.events import EventLog
from studio.service.jobs import Job, JobCancelled, JobContext, JobState
from studio.service.runs import list_runs, run_curves
from studio.service.trainer import TrainerService, get_service

__all__ = ["EventLog", "Job", "JobCancelled", "JobContext", "JobState", "TrainerService", "get_service",
           "list_runs", "run_curves"]
