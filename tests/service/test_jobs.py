"""The job runner with fake jobs: states, exclusivity, ordering, cancel, failures, event histories."""

from __future__ import annotations

import threading

import pytest
from service_helpers import GUARD_S, Gate

from studio.app.jobs import read_job
from studio.errors import StudioError
from studio.service import JobState, TrainerService


class ConcurrencyProbe:
    """A job fn that counts how many instances run at once (under a lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.order: list[str] = []

    def job(self, name: str, hold: threading.Event | None = None):
        def run(ctx):
            with self.lock:
                self.active += 1
                self.max_active = max(self.max_active, self.active)
                self.order.append(name)
            try:
                # Hold the device a moment so an overlapping job would be caught inside.
                (hold or threading.Event()).wait(0.02)
                return name
            finally:
                with self.lock:
                    self.active -= 1
        return run


def test_jobs_from_many_threads_all_finish(service):
    jobs: list = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def client(n):
        barrier.wait(GUARD_S)
        for i in range(5):
            job = service.submit("calc", lambda ctx, v=(n, i): v[0] * 100 + v[1], interactive=(i % 2 == 0))
            with lock:
                jobs.append((n * 100 + i, job))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUARD_S)
    assert len(jobs) == 40
    for expected, job in jobs:
        assert job.outcome(GUARD_S) == expected
        assert job.state is JobState.DONE and job.progress == 1.0
        assert job.created <= job.started <= job.finished


def test_only_one_training_job_runs_at_a_time(service):
    probe = ConcurrencyProbe()
    trains = [service.submit("train", probe.job(f"t{i}")) for i in range(5)]
    # Interactive jobs run beside training on CPU, but never two trainings together.
    side = [service.submit("predict", lambda ctx: "p", interactive=True) for _ in range(5)]
    for job in trains + side:
        job.wait(GUARD_S)
    assert probe.max_active == 1
    assert probe.order == [f"t{i}" for i in range(5)]  # FIFO
    assert all(j.state is JobState.DONE for j in trains + side)


def test_training_cannot_be_interactive(service):
    with pytest.raises(ValueError):
        service.submit("train", lambda ctx: None, interactive=True)


def test_cancel_running_job(service):
    gate = Gate()
    job = service.submit("train", gate)
    assert gate.started.wait(GUARD_S)
    assert service.running_job() is job
    assert service.cancel(job.id) is True
    assert job.wait(GUARD_S)
    assert job.state is JobState.CANCELLED
    assert service.cancel(job.id) is False  # already finished


def test_cancel_queued_job_never_starts(service):
    gate = Gate()
    first = service.submit("train", gate)
    assert gate.started.wait(GUARD_S)
    ran = threading.Event()
    queued = service.submit("train", lambda ctx: ran.set())
    assert service.queued_jobs() == [queued]
    service.cancel(queued.id)
    assert queued.state is JobState.CANCELLED and queued.started is None
    gate.release.set()
    after = service.submit("train", lambda ctx: "next")
    assert after.outcome(GUARD_S) == "next"
    assert first.state is JobState.DONE and not ran.is_set()


def test_job_fn_can_stop_itself_with_check_cancelled(service):
    entered = threading.Event()

    def loop(ctx):
        entered.set()
        while True:
            ctx.check_cancelled()
            ctx.cancel_event.wait(0.01)

    job = service.submit("features", loop)
    assert entered.wait(GUARD_S)
    service.cancel(job.id)
    job.wait(GUARD_S)
    assert job.state is JobState.CANCELLED


def test_failing_job_does_not_stop_the_worker(service):
    def boom(ctx):
        raise ValueError("boom")

    def user_error(ctx):
        raise StudioError("Add at least two classes before training.")

    bad = service.submit("train", boom)
    clean = service.submit("train", user_error)
    good = service.submit("train", lambda ctx: 42)
    assert good.outcome(GUARD_S) == 42
    assert bad.state is JobState.FAILED and bad.error == "ValueError: boom"
    assert any("Traceback" in e.get("message", "") for e in bad.events())
    assert clean.state is JobState.FAILED and clean.error == "Add at least two classes before training."
    with pytest.raises(StudioError, match="two classes"):
        clean.outcome(0)


def test_late_subscriber_gets_the_whole_history(service):
    def fn(ctx):
        ctx.log("starting")
        for epoch in range(3):
            ctx.emit({"type": "epoch", "epoch": epoch, "val_accuracy": 0.5 + epoch / 10})
            ctx.progress((epoch + 1) / 3, eta_s=3 - epoch)
        return "ok"

    job = service.submit("train", fn, config={"epochs": 3})
    job.wait(GUARD_S)
    history = job.events(since=0)
    kinds = [e["type"] for e in history]
    assert [e["state"] for e in history if e["type"] == "state"] == ["queued", "running", "done"]
    assert kinds.count("epoch") == 3 and kinds.count("progress") == 3 and "log" in kinds
    assert [e["seq"] for e in history] == list(range(1, len(history) + 1))
    assert job.to_dict()["config"] == {"epochs": 3}


def test_a_poll_that_sees_finished_has_every_event(service):
    """The Train tab stops polling once a job has finished: what it read with that must include the job's
    last events. Here the job ends right after its events were read (the race a poll can lose)."""
    gate = Gate()
    job = service.submit("train", gate)
    assert gate.started.wait(GUARD_S)
    read_events = job.events

    def events_then_finish(since: int = 0) -> list[dict]:
        seen = read_events(since)
        gate.release.set()
        assert job.wait(GUARD_S)
        return seen

    job.events = events_then_finish
    finished, events = read_job(job)
    assert job.is_finished
    assert not finished, "read as finished while the final state event is missing: polling would stop early"
    assert "done" not in [e.get("state") for e in events]
    job.events = read_events
    finished, events = read_job(job)
    assert finished and events[-1]["state"] == "done"


def test_live_subscriber_follows_a_running_job(service):
    step = threading.Event()
    proceed = threading.Event()

    def fn(ctx):
        for epoch in range(3):
            ctx.emit({"type": "epoch", "epoch": epoch})
            step.set()
            proceed.wait(GUARD_S)
            proceed.clear()

    job = service.submit("train", fn)
    seen: list = []
    since = 0
    while not job.is_finished or job.events(since):
        batch = job.wait_events(since, timeout=GUARD_S)
        if not batch:
            break
        seen.extend(batch)
        since = batch[-1]["seq"]
        proceed.set()
    assert [e["epoch"] for e in seen if e["type"] == "epoch"] == [0, 1, 2]
    assert (seen[-1]["type"], seen[-1]["state"]) == ("state", "done")


def test_interactive_job_is_served_while_training_runs(service):
    gate = Gate()
    train = service.submit("train", gate)
    assert gate.started.wait(GUARD_S)
    quick = service.submit("predict", lambda ctx: "served", interactive=True)
    assert quick.outcome(GUARD_S) == "served"
    assert train.state is JobState.RUNNING  # training was never interrupted
    gate.release.set()
    assert train.outcome(GUARD_S) == "released"


def test_interactive_job_jumps_the_queue_when_it_cannot_run_beside():
    svc = TrainerService("cpu", can_run_beside=lambda: False)
    try:
        order: list[str] = []
        gate = Gate()
        first = svc.submit("train", gate)
        assert gate.started.wait(GUARD_S)
        queued_train = svc.submit("train", lambda ctx: order.append("train"))
        quick = svc.submit("predict", lambda ctx: order.append("predict"), interactive=True)
        assert quick.state is JobState.QUEUED  # waits its turn: no room beside the running job
        gate.release.set()
        for job in (first, queued_train, quick):
            job.wait(GUARD_S)
        assert order == ["predict", "train"]
    finally:
        svc.shutdown(GUARD_S)


def test_side_lane_uses_its_own_thread_limit(service):
    import torch

    before = torch.get_num_threads()
    gate = Gate()
    service.submit("train", gate)
    assert gate.started.wait(GUARD_S)
    side = service.submit("predict", lambda ctx: torch.get_num_threads(), interactive=True)
    assert side.outcome(GUARD_S) == 1
    assert torch.get_num_threads() == before  # the caller's (and the process default) untouched
    gate.release.set()


def test_introspection(service):
    a = service.submit("evaluate", lambda ctx: 1)
    b = service.submit("predict", lambda ctx: 2, interactive=True)
    b.wait(GUARD_S)
    a.wait(GUARD_S)
    assert service.list_jobs()[:2] == [b, a]
    assert service.list_jobs(kind="evaluate") == [a]
    assert service.get(a.id) is a
    with pytest.raises(StudioError):
        service.get("nope")
    info = service.device_info()
    assert info["type"] == "cpu" and info["threads"] >= 1 and info["name"]


def test_old_finished_jobs_are_forgotten():
    svc = TrainerService("cpu", keep_finished=3, keep_interactive=2)
    try:
        jobs = [svc.submit("evaluate", lambda ctx: None) for _ in range(6)]
        for job in jobs:
            job.wait(GUARD_S)
        svc.submit("evaluate", lambda ctx: None).wait(GUARD_S)
        assert len(svc.list_jobs(kind="evaluate")) <= 4
    finally:
        svc.shutdown(GUARD_S)
