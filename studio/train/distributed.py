"""Training on several processes (GPUs, or CPU processes) with torchrun and DistributedDataParallel.

Two halves:

- `launch(project_root, config, nproc, ...)` (the CLI's `--nproc N` and the trainer service's train job)
  starts `python -m torch.distributed.run --standalone --nproc-per-node N -m studio.train.distributed`
  as a child process group, follows the events rank 0 writes as JSON lines into a control folder,
  cancels through a file there (every rank stops at the same batch, the checkpoint so far is kept), and
  after a grace period terminates the whole group. A failing rank fails the run with its own message.
- `main()` (each rank, started by torchrun) joins the process group (NCCL on CUDA, gloo on CPU) and runs
  the ordinary `studio.train.train` with a `World`: the engine shards the training and validation splits
  per rank, all-reduces metrics, and only rank 0 writes the run folder, checkpoints and events.

Only the strategies that train one torch model end to end run on several processes (`finetune`,
`scratch`); the others fit a scikit-learn probe on one process and are refused with a clear message.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from studio.data.snapshot import split_new_labels
from studio.data.store import Project
from studio.errors import StudioError
from studio.system import cpu_count
from studio.train.events import RunStarted, TrainEvent, event_from_dict
from studio.train.runs import STATUS_FILE, read_json, write_json

DISTRIBUTED_STRATEGIES = ("finetune", "scratch")
EVENTS_FILE = "events.jsonl"
RESULT_FILE = "result.json"
CANCEL_FILE = "cancel"
LOG_FILE = "torchrun.log"
# Test hook: a rank whose number is in this variable fails on purpose (checks that one rank's failure
# fails the whole run with its message and leaves no process behind).
FAIL_RANK_ENV = "STUDIO_DDP_FAIL_RANK"


@dataclass(frozen=True)
class World:
    """Which process of how many this is. The default, one process, makes every method a no-op."""

    rank: int = 0
    size: int = 1
    backend: str | None = None
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def to_dict(self) -> dict[str, Any]:
        return {"world_size": self.size, "backend": self.backend}

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of `values` over all ranks (metrics: loss sums, correct counts, seen)."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self._device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on any (cancel: all ranks stop at the same batch)."""
        if not self.distributed:
            return flag
        return self.sum([1.0 if flag else 0.0])[0] > 0

    def shard(self, n: int) -> slice:
        """This rank's share of n items (a strided slice: every rank gets n // size or one more)."""
        return slice(self.rank, n, self.size)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the training step calls: DistributedDataParallel over `model` on several ranks."""
        if not self.distributed:
            return model
        device_ids = [self.local_rank] if self.backend == "nccl" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    @property
    def _device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")


SINGLE = World()


def check_nproc(nproc: int, strategy: str, device: str = "auto") -> None:
    """StudioError for a process count or strategy distributed training cannot run."""
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise StudioError(f"Processes (--nproc) must be a whole number of at least 1, not {nproc!r}.")
    if nproc == 1:
        return
    if strategy not in DISTRIBUTED_STRATEGIES:
        raise StudioError(
            f"Strategy '{strategy}' cannot train on several processes (--nproc {nproc}): it fits a linear "
            f"probe on one process. Use --strategy {' or '.join(DISTRIBUTED_STRATEGIES)} with --nproc, "
            "or --nproc 1."
        )
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "mps":
        raise StudioError("Distributed training (--nproc > 1) needs CUDA GPUs or the CPU; MPS is one device.")
    if use_cuda:
        gpus = torch.cuda.device_count()
        if nproc > gpus:
            raise StudioError(f"--nproc {nproc} asks for more GPUs than the {gpus} visible here.")
    else:
        cores = cpu_count()  # the cores this process may use (its affinity mask)
        if nproc > cores:
            raise StudioError(f"--nproc {nproc} asks for more CPU processes than the {cores} cores here.")


def visible_gpus() -> int:
    """CUDA GPUs this process can see (0 without CUDA): the Train tab offers several when there are."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def backend_for(device: str) -> str:
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return "nccl" if use_cuda else "gloo"


# ---- the launcher (CLI and trainer service) ---------------------------------------------------------

def launch(project_root: str | Path, config: dict[str, Any], nproc: int, *,
           callback: Callable[[TrainEvent], None] | None = None, cancel: threading.Event | None = None,
           grace_s: float = 30.0, poll_s: float = 0.2) -> dict[str, Any]:
    """Train with `nproc` processes under torchrun; returns the run's result (RunResult.to_dict()).

    `callback` gets rank 0's events as `train` sends them (the first, RunStarted, names the run folder).
    Setting `cancel` stops every rank after its current batch (status `cancelled`, checkpoint so far kept);
    ranks that have not stopped `grace_s` later are terminated, the whole process group with them.
    StudioError when a rank fails, naming the rank and its error.
    """
    strategy = config.get("strategy") or "auto"
    device = config.get("device") or "auto"
    check_nproc(nproc, strategy, device)
    with Project.open(project_root) as project:  # here, once: every rank must snapshot the same split
        split_new_labels(project)
    cancel = cancel or threading.Event()
    control = Path(tempfile.mkdtemp(prefix="studio-ddp-"))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "--max-restarts=0", "-m", "studio.train.distributed",
               "--project", str(Path(project_root).resolve()), "--config", json.dumps(config),
               "--control", str(control)]
    env = dict(os.environ)
    # Each rank gets its share of the cores (torchrun would otherwise set one thread and warn).
    env.setdefault("OMP_NUM_THREADS", str(max(1, cpu_count() // nproc)))
    with open(control / LOG_FILE, "wb") as log_handle:
        process = subprocess.Popen(command, stdout=log_handle, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)  # its own process group: cancel ends all of it
    follower = _EventFollower(control / EVENTS_FILE, callback)
    run_dir: Path | None = None
    cancel_sent: float | None = None
    try:
        while process.poll() is None:
            for event in follower.read():
                if isinstance(event, RunStarted):
                    run_dir = Path(event.run_dir)
            if cancel.is_set() and cancel_sent is None:
                (control / CANCEL_FILE).touch()
                cancel_sent = time.monotonic()
            if cancel_sent is not None and time.monotonic() - cancel_sent > grace_s:
                _end_group(process)
                break
            time.sleep(poll_s)
        for event in follower.read():
            if isinstance(event, RunStarted):
                run_dir = Path(event.run_dir)
        result = read_json(control / RESULT_FILE)
        if process.returncode == 0 and result is not None:
            return result
        if cancel_sent is not None:
            _settle(run_dir, "cancelled", "Cancelled; the training processes were stopped.")
            return {"run_dir": str(run_dir) if run_dir else None, "status": "cancelled",
                    "strategy": strategy, "reason": "cancelled"}
        message = _failure_message(control, process.returncode, nproc)
        _settle(run_dir, "failed", message)
        raise StudioError(message)
    finally:
        if process.poll() is None:  # an exception here (a second Ctrl-C): never leave ranks behind
            _end_group(process)
        shutil.rmtree(control, ignore_errors=True)


class _EventFollower:
    """Reads the JSON lines appended to the events file since the last read (whole lines only)."""

    def __init__(self, path: Path, callback: Callable[[TrainEvent], None] | None) -> None:
        self.path = path
        self.callback = callback
        self.offset = 0

    def read(self) -> list[TrainEvent | dict]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[:data.rfind(b"\n") + 1]
        self.offset += len(complete)
        events = [event_from_dict(json.loads(line)) for line in complete.splitlines() if line.strip()]
        if self.callback is not None:
            for event in events:
                self.callback(event)
        return events


def _end_group(process: subprocess.Popen, wait_s: float = 10.0) -> None:
    """SIGTERM to the whole process group (torchrun and every rank), SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
            # torchrun may be gone while a rank is still ending: wait for the group to empty.
            deadline = time.monotonic() + wait_s
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _group_alive(process.pid):
                return
        except subprocess.TimeoutExpired:
            continue


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _failure_message(control: Path, returncode: int | None, nproc: int) -> str:
    reports = [r for r in (read_json(p) for p in control.glob("error-rank*.json")) if r]
    if reports:
        # The rank that failed first with a reason of its own, not the ranks that lost their peer after it.
        first = min(reports, key=lambda r: (not r.get("studio_error"), r.get("time", 0.0)))
        rank = first.get("rank", "?")
        return f"Distributed training failed in rank {rank} of {nproc}: {first.get('error', 'unknown error')}"
    tail = ""
    log = control / LOG_FILE
    if log.is_file():
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        tail = " Last output: " + " | ".join(lines[-3:]) if lines else ""
    return f"Distributed training failed (torchrun exit code {returncode}) before a rank reported why.{tail}"


def _settle(run_dir: Path | None, state: str, message: str) -> None:
    """A run folder a killed rank 0 left `running` is marked with how it ended."""
    status = run_dir / STATUS_FILE if run_dir else None
    if status is None or not status.is_file():
        return
    current = read_json(status) or {}
    if current.get("status") != "running":
        return
    write_json(status, {**current, "status": state, "message": message, "settled_by": "launcher"})


# ---- each rank (started by torchrun) ---------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One rank of a distributed studio training run (torchrun).")
    parser.add_argument("--project", required=True)
    parser.add_argument("--config", required=True, help="TrainConfig as JSON")
    parser.add_argument("--control", required=True, help="folder for events, result, cancel and errors")
    args = parser.parse_args(argv)
    control = Path(args.control)
    rank = int(os.environ.get("RANK", "0"))
    world = World(rank, int(os.environ.get("WORLD_SIZE", "1")), None,
                  int(os.environ.get("LOCAL_RANK", "0")))
    try:
        result = _train_rank(Path(args.project), json.loads(args.config), control, world)
    except BaseException as error:  # noqa: BLE001 - reported to the launcher, then the rank exits non-zero
        message = str(error) if isinstance(error, StudioError) else f"{type(error).__name__}: {error}"
        report = {
            "rank": rank,
            "error": message,
            "studio_error": isinstance(error, StudioError),
            "time": time.time(),
        }
        (control / f"error-rank{rank}.json").write_text(json.dumps(report))
        return 1
    if world.is_main:
        write_json(control / RESULT_FILE, result)
    return 0


def _train_rank(project_root: Path, config_data: dict, control: Path, world: World) -> dict:
    from studio.data.store import Project
    from studio.train import TrainConfig, train

    config = TrainConfig.from_dict(config_data)
    backend = backend_for(config.device)
    if backend == "nccl":
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group(backend)
    world = World(dist.get_rank(), dist.get_world_size(), backend, world.local_rank)
    try:
        check_nproc(world.size, config.strategy, config.device)
        if str(world.rank) in os.environ.get(FAIL_RANK_ENV, "").split(","):
            raise StudioError(f"rank {world.rank} was told to fail ({FAIL_RANK_ENV}).")
        cancel = threading.Event()
        watcher = threading.Thread(target=_watch_cancel, args=(control / CANCEL_FILE, cancel), daemon=True)
        watcher.start()
        callback = _event_writer(control / EVENTS_FILE) if world.is_main else None
        with Project.open(project_root) as project:
            result = train(project, config, callback=callback, cancel=cancel, world=world)
        return result.to_dict()
    finally:
        dist.destroy_process_group()


def _watch_cancel(path: Path, cancel: threading.Event, poll_s: float = 0.2) -> None:
    while not cancel.is_set():
        if path.exists():
            cancel.set()
        time.sleep(poll_s)


def _event_writer(path: Path) -> Callable[[TrainEvent], None]:
    def write(event: TrainEvent) -> None:
        with open(path, "a") as handle:  # one whole line per event: the launcher reads complete lines
            handle.write(json.dumps(event.to_dict(), default=str) + "\n")

    return write


if __name__ == "__main__":
    sys.exit(main())
