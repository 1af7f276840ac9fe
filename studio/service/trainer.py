"""The trainer service: one per process, it owns the device and runs every heavy job for every tab.

Jobs go through one queue. The main lane (a worker thread) runs them one at a time: interactive jobs
first, the rest in submission order, so two training runs never share the device. A side lane runs
short interactive jobs (predicting a few images) beside a running job when the device has room, so the
UI does not wait for training to end: always on CPU, where the side lane limits itself to a few threads
(see `limit_thread_cpu`), and on CUDA while `torch.cuda.mem_get_info` reports enough free memory.
"""

from __future__ import annotations

import atexit
import logging
import platform
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from studio.errors import StudioError
from studio.service import runs, tasks
from studio.service.jobs import Job, JobContext, JobState
from studio.service.predictors import Loader, PredictorCache, limit_thread_cpu, load_predictor
from studio.service.worker import JobQueue, run_job
from studio.system import cpu_count

log = logging.getLogger(__name__)

GiB = 1024**3
# Kinds that must have the device to themselves (never interactive, never on the side lane).
EXCLUSIVE_KINDS = frozenset({"train"})


def resolve_device(name: Any = "auto") -> Any:
    """The engine's one device resolver (`studio.predict.device.select_device`), imported when used."""
    from studio.predict.device import select_device

    return select_device(name)


class TrainerService:
    """Job queue, worker lanes, event histories, cancel, and warm predictors for the UI.

    device: "auto", "cpu", "cuda", ... (what every job's `ctx.device` is).
    keep_finished / keep_interactive: finished jobs remembered for `list_jobs` (oldest forgotten first).
    beside_min_free_bytes: free CUDA memory an interactive job needs to run beside a running job.
    side_threads: CPU threads of the side lane (default: a quarter of the cores, at least one).
    can_run_beside: replaces the device check above (tests, or a stricter policy).
    predictor_loader: how a run's predictor is loaded (default: `studio.predict.Predictor.from_run`).
    """

    def __init__(self, device: Any = "auto", *, keep_finished: int = 200, keep_interactive: int = 50,
                 predictor_cache_size: int = 3, beside_min_free_bytes: int = int(1.5 * GiB),
                 side_threads: int | None = None, can_run_beside: Callable[[], bool] | None = None,
                 predictor_loader: Loader = load_predictor) -> None:
        self.device = resolve_device(device)
        self.keep_finished = keep_finished
        self.keep_interactive = keep_interactive
        self.beside_min_free_bytes = beside_min_free_bytes
        self.predictors = PredictorCache(predictor_cache_size, loader=predictor_loader)
        self._beside_policy = can_run_beside
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._jobs_lock = threading.Lock()
        self._queue = JobQueue()
        self._side_ready = threading.Event()
        self._main = threading.Thread(target=self._lane, args=(self._queue.take_main,),
                                      name="studio-worker", daemon=True)
        self._side = threading.Thread(target=self._side_lane, args=(side_threads,),
                                      name="studio-side-worker", daemon=True)
        self._main.start()
        self._start_side_lane()

    # ---- submitting ----------------------------------------------------------------------------------

    def submit(self, kind: str, fn: Callable[[JobContext], Any], *, config: dict | None = None,
               interactive: bool = False, project: str | None = None) -> Job:
        """Queue `fn(ctx)` as a job. Interactive jobs (short: a few images) jump ahead of queued ones."""
        if not kind:
            raise ValueError("a job needs a kind")
        if interactive and kind in EXCLUSIVE_KINDS:
            raise ValueError(f"{kind} jobs need the device to themselves and cannot be interactive")
        job = Job(kind, fn, config=config, interactive=interactive,
                  project=None if project is None else str(project))
        job.on_finish = self._settle_run_folder
        with self._jobs_lock:
            self._jobs[job.id] = job
            self._forget_old()
        self._queue.put(job)
        return job

    def submit_train(self, project_root: str | Path, train_config: dict[str, Any] | None = None, *,
                     nproc: int = 1) -> Job:
        """Train a model on the project (`studio.train.train`); settings as in `TrainConfig.to_dict()`.
        `nproc` > 1: one job running a torchrun process group (`studio.train.distributed.launch`)."""
        config = dict(train_config or {})
        job_config = config if nproc == 1 else {**config, "nproc": nproc}
        return self.submit("train", tasks.train_job(project_root, config, nproc), config=job_config,
                           project=project_root)

    def submit_evaluate(self, run_dir: str | Path, tta: bool = False,
                        project_root: str | Path | None = None) -> Job:
        """Evaluate a run's checkpoint (`studio.predict.evaluate`)."""
        return self.submit("evaluate", tasks.evaluate_job(run_dir, tta, project_root),
                           config={"run_dir": str(run_dir), "tta": tta}, project=project_root)

    def submit_predict(self, run_dir: str | Path, images: Sequence[Any], tta: bool | None = None,
                       top_k: int = 5, *, interactive: bool = True, skip_unreadable: bool = False) -> Job:
        """Predict images with a run's model; interactive unless it is a big batch the caller marks so.
        `skip_unreadable`: see Predictor.predict."""
        images = list(images)
        config = {"run_dir": str(run_dir), "images": len(images), "tta": tta, "top_k": top_k}
        return self.submit(
            "predict",
            tasks.predict_job(self.predictors, run_dir, images, tta, top_k, skip_unreadable),
            config=config,
            interactive=interactive,
        )

    def submit_features(self, project_root: str | Path, backbone: str | None = None, *,
                        image_ids: Sequence[int] | None = None, interactive: bool = False) -> Job:
        """Compute (and cache) frozen-backbone features for the project's images, or some of them."""
        config = {"backbone": backbone, "images": None if image_ids is None else len(image_ids)}
        ids = None if image_ids is None else list(image_ids)
        return self.submit("features", tasks.features_job(project_root, backbone, ids), config=config,
                           interactive=interactive, project=project_root)

    def submit_curate(self, project_root: str | Path, backbone: str | None = None) -> Job:
        """Analyse the project for curation (duplicates, leakage, label issues, outliers, embedding map);
        results land in `cache/curate/` (see `tasks.curate_job`)."""
        return self.submit("curate", tasks.curate_job(project_root, backbone), config={"backbone": backbone},
                           project=project_root)

    def predict(self, run_dir: str | Path, images: Sequence[Any], tta: bool | None = None, top_k: int = 5,
                *, timeout: float | None = None, skip_unreadable: bool = False) -> list[dict[str, Any]]:
        """Predict now and return the results (the UI's call): runs beside training where it can,
        otherwise next in line; StudioError if it fails."""
        job = self.submit_predict(run_dir, images, tta, top_k, skip_unreadable=skip_unreadable)
        if timeout is not None and not job.wait(timeout):
            self.cancel(job.id)  # the caller gave up: the job must not run later for nobody
        return job.outcome(0 if timeout is not None else None)

    # ---- control and introspection -------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        with self._jobs_lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise StudioError(f"No job {job_id!r}; it may have finished long ago. See the job list.")
        return job

    def cancel(self, job_id: str) -> bool:
        """Cancel a job: a queued one never starts, a running one stops within one batch and keeps its
        checkpoint so far. False if it had already finished."""
        job = self.get(job_id)
        if job.is_finished:
            return False
        job.cancel_event.set()
        if self._queue.remove(job):
            job._set_state(JobState.CANCELLED)
        else:
            job._emit(
                {"type": "log", "level": "info", "message": "Cancel requested; stopping after this batch."}
            )
        return True

    def list_jobs(self, kind: str | None = None) -> list[Job]:
        """Known jobs, most recent first."""
        with self._jobs_lock:
            jobs = list(self._jobs.values())
        return [j for j in reversed(jobs) if kind is None or j.kind == kind]

    def running_job(self) -> Job | None:
        """The job the main lane is running (the one holding the device), if any."""
        job = self._queue.main_job
        return job if job is not None and job.state is JobState.RUNNING else None

    def queued_jobs(self) -> list[Job]:
        """Waiting jobs in the order they will start."""
        return self._queue.queued()

    def device_info(self) -> dict[str, Any]:
        """The device in use: type, name, threads, and for CUDA its memory (bytes)."""
        import torch

        info: dict[str, Any] = {"device": str(self.device), "type": self.device.type,
                                "threads": torch.get_num_threads()}
        if self.device.type == "cuda":
            free, total = torch.cuda.mem_get_info(self.device)
            info.update(name=torch.cuda.get_device_name(self.device), memory_total=total, memory_free=free,
                        memory_allocated=torch.cuda.memory_allocated(self.device),
                        memory_reserved=torch.cuda.memory_reserved(self.device))
        else:
            info["name"] = platform.processor() or platform.machine() or self.device.type
        return info

    def can_run_beside(self) -> bool:
        """Whether an interactive job may run now beside the job holding the device."""
        if self._beside_policy is not None:
            return self._beside_policy()
        if self.device.type == "cpu":
            return True
        if self.device.type == "cuda":
            import torch

            free, _ = torch.cuda.mem_get_info(self.device)
            return free >= self.beside_min_free_bytes
        return False  # MPS shares memory with the system and cannot say what is free: wait instead

    def list_runs(self, project_root: str | Path) -> list[dict[str, Any]]:
        """Past and current runs of a project (see `studio.service.runs.list_runs`)."""
        return runs.list_runs(project_root, active=self._live_run_dirs())

    @staticmethod
    def run_curves(run_dir: str | Path) -> pd.DataFrame:
        return runs.run_curves(run_dir)

    @property
    def closed(self) -> bool:
        return self._queue.closed

    def shutdown(self, timeout: float = 30.0) -> bool:
        """Stop: queued jobs are cancelled, running ones asked to stop, the lanes joined. A job that did
        not stop in time is marked cancelled and its run folder never left saying `running` or `done`.
        True if every lane stopped within `timeout`."""
        for job in self._queue.close():
            job.cancel_event.set()
            job._set_state(JobState.CANCELLED)
        running = [j for j in self.list_jobs() if j.state is JobState.RUNNING]
        for job in running:
            job.cancel_event.set()
        stopped = True
        for lane in (self._main, self._side):
            if lane.is_alive() and lane is not threading.current_thread():
                lane.join(timeout)
                stopped = stopped and not lane.is_alive()
        for job in running:
            job._set_state(JobState.CANCELLED, error="The studio shut down before the job could stop.")
        return stopped

    # ---- lanes ---------------------------------------------------------------------------------------

    def _start_side_lane(self) -> None:
        if self.device.type != "cpu":
            self._side.start()
            return
        import torch

        # The side lane limits its own CPU threads; set_num_threads also changes the process default,
        # so restore that from this thread once the side lane has taken its limit.
        default = torch.get_num_threads()
        self._side.start()
        self._side_ready.wait()
        torch.set_num_threads(default)

    def _side_lane(self, threads: int | None) -> None:
        if self.device.type == "cpu":
            limit_thread_cpu(threads or max(1, cpu_count() // 4))
            self._side_ready.set()
        self._lane(lambda: self._queue.take_side(self.can_run_beside))

    def _lane(self, take: Callable[[], Job | None]) -> None:
        while (job := take()) is not None:
            try:
                run_job(job, JobContext(job, self.device, on_run_dir=self._write_job_file))
            except Exception:  # bookkeeping must never stop the lane
                log.exception("Trainer service: finishing job %s failed", job.id)
            finally:
                self._queue.finished(job)

    # ---- bookkeeping ---------------------------------------------------------------------------------

    def _write_job_file(self, job: Job) -> None:
        if job.run_dir is not None and job.kind in EXCLUSIVE_KINDS:  # the run folder's own job
            try:
                runs.write_job_file(job.run_dir, job.to_dict())
            except OSError as error:
                job._emit(
                    {"type": "log", "level": "warning", "message": f"Could not write job.json: {error}"}
                )

    def _settle_run_folder(self, job: Job) -> None:
        """Record the final state in the run folder; a job that did not finish is never marked done."""
        if job.run_dir is None:  # the engine announces its folder (RunStarted) as soon as it creates it
            return
        if job.state is not JobState.DONE:
            runs.settle_status(job.run_dir, job.state.value, job.error)
        self._write_job_file(job)

    def _live_run_dirs(self) -> list[Path]:
        return [j.run_dir for j in self.list_jobs() if j.run_dir and not j.is_finished]

    def _forget_old(self) -> None:
        # Called under _jobs_lock: drop the oldest finished jobs beyond the limits.
        for interactive, limit in ((True, self.keep_interactive), (False, self.keep_finished)):
            done = [j.id for j in self._jobs.values() if j.interactive == interactive and j.is_finished]
            for job_id in done[:max(0, len(done) - limit)]:
                del self._jobs[job_id]


_service: TrainerService | None = None
_service_lock = threading.Lock()


def get_service(**options: Any) -> TrainerService:
    """The process-wide service, started on first use with `options` (later calls ignore them) and
    shut down at interpreter exit."""
    global _service
    with _service_lock:
        if _service is None or _service.closed:
            _service = TrainerService(**options)
            atexit.register(_service.shutdown, 10.0)
        return _service
