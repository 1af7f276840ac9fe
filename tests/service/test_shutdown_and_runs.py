"""Run folders: job.json, honest status on cancel and shutdown, listing past runs and their curves."""

from __future__ import annotations

import json
import threading

from service_helpers import GUARD_S, fake_run_dir

from studio.service import JobState, TrainerService, list_runs, run_curves
from studio.train.events import RunStarted

METRICS = "stage,epoch,train_loss,val_accuracy\nfinetune,1,1.2,0.5\nfinetune,2,0.8,0.75\n"


def fake_train(
    run_dir, started: threading.Event, *, obey_cancel: bool = True, stuck: threading.Event | None = None
):
    """Writes a run folder like the engine (status running), names it, then waits to be stopped."""

    def run(ctx):
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "status.json").write_text(json.dumps({"status": "running"}))
        ctx.emit(RunStarted(str(run_dir)))
        started.set()
        if not obey_cancel:
            stuck.wait(GUARD_S)
            (run_dir / "status.json").write_text(json.dumps({"status": "done"}))  # too late to matter?
            return {"status": "done"}
        ctx.cancel_event.wait(GUARD_S)
        return {"status": "cancelled", "run_dir": str(run_dir)}

    return run


def status_of(run_dir):
    return json.loads((run_dir / "status.json").read_text())["status"]


def test_job_json_records_config_and_final_state(service, tmp_path):
    run_dir = tmp_path / "runs" / "r1"

    def fn(ctx):
        run_dir.mkdir(parents=True)
        ctx.emit(RunStarted(str(run_dir)))
        assert json.loads((run_dir / "job.json").read_text())["state"] == "running"
        (run_dir / "status.json").write_text(json.dumps({"status": "done"}))
        return {"run_dir": str(run_dir), "status": "done", "val_accuracy": 0.9}

    job = service.submit("train", fn, config={"strategy": "linear"})
    job.outcome(GUARD_S)
    record = json.loads((run_dir / "job.json").read_text())
    assert record["state"] == "done" and record["config"] == {"strategy": "linear"}
    assert record["result"]["val_accuracy"] == 0.9 and record["run_dir"] == str(run_dir)
    assert status_of(run_dir) == "done"


def test_cancelled_run_folder_is_marked_cancelled(service, tmp_path):
    run_dir, started = tmp_path / "runs" / "r1", threading.Event()
    job = service.submit("train", fake_train(run_dir, started))
    assert started.wait(GUARD_S)
    service.cancel(job.id)
    job.wait(GUARD_S)
    assert job.state is JobState.CANCELLED
    assert status_of(run_dir) == "cancelled"
    assert json.loads((run_dir / "job.json").read_text())["state"] == "cancelled"


def test_failed_job_never_leaves_its_run_running(service, tmp_path):
    run_dir = tmp_path / "runs" / "r1"

    def fn(ctx):
        run_dir.mkdir(parents=True)
        (run_dir / "status.json").write_text(json.dumps({"status": "running"}))
        ctx.set_run_dir(run_dir)
        raise RuntimeError("disk full")

    job = service.submit("train", fn)
    job.wait(GUARD_S)
    assert status_of(run_dir) == "failed"


def test_shutdown_cancels_running_and_queued_and_marks_nothing_done(tmp_path):
    svc = TrainerService("cpu")
    run_dir, started = tmp_path / "runs" / "r1", threading.Event()
    running = svc.submit("train", fake_train(run_dir, started))
    assert started.wait(GUARD_S)
    queued = svc.submit("train", lambda ctx: "never")
    assert svc.shutdown(GUARD_S) is True
    assert running.state is JobState.CANCELLED and queued.state is JobState.CANCELLED
    assert queued.started is None
    assert status_of(run_dir) == "cancelled"
    assert svc.closed


def test_shutdown_with_a_job_that_does_not_stop_in_time(tmp_path):
    svc = TrainerService("cpu")
    run_dir, started, stuck = tmp_path / "runs" / "r1", threading.Event(), threading.Event()
    job = svc.submit("train", fake_train(run_dir, started, obey_cancel=False, stuck=stuck))
    assert started.wait(GUARD_S)
    assert svc.shutdown(0.05) is False
    assert job.state is JobState.CANCELLED and "shut down" in job.error
    assert status_of(run_dir) == "cancelled"
    stuck.set()  # let the thread end; the job keeps its cancelled ending
    job.wait(GUARD_S)
    assert job.state is JobState.CANCELLED


def test_the_run_folder_comes_from_the_engines_event_never_from_guessing(tmp_path):
    """The service ties a job to the folder its RunStarted event names; a running folder it was not told
    about (another studio process training on the same project) is left alone."""
    svc = TrainerService("cpu")
    started = threading.Event()
    other = fake_run_dir(tmp_path, "20990101-000000-finetune", status="running")

    def fn(ctx):
        ctx.emit(RunStarted(str(fake_run_dir(tmp_path, "20990101-000001-linear", status="running"))))
        started.set()
        ctx.cancel_event.wait(GUARD_S)
        return {"status": "cancelled"}

    job = svc.submit("train", fn, project=str(tmp_path))
    assert started.wait(GUARD_S)
    assert job.run_dir == tmp_path / "runs" / "20990101-000001-linear"
    assert {"type": "run_started", "run_dir": str(job.run_dir)} in [
        {k: e.get(k) for k in ("type", "run_dir")} for e in job.events()]  # recorded in its JSON form
    svc.shutdown(GUARD_S)
    assert status_of(job.run_dir) == "cancelled"
    assert status_of(other) == "running"


def test_list_runs_and_curves(tmp_path):
    fake_run_dir(tmp_path, "20240101-000000-linear", status="done", metrics=METRICS)
    fake_run_dir(tmp_path, "20240102-000000-finetune", status="running", metrics="stage,epoch\n")
    runs = list_runs(tmp_path)
    assert [r["name"] for r in runs] == ["20240102-000000-finetune", "20240101-000000-linear"]
    newest, oldest = runs
    assert newest["status"] == "interrupted"  # says running, but no live job owns it
    assert newest["epochs"] == 0 and newest["best_val_accuracy"] is None
    assert oldest["status"] == "done" and oldest["epochs"] == 2 and oldest["best_val_accuracy"] == 0.75
    assert oldest["config"] == {"config": {"strategy": "linear"}} and oldest["has_model"]
    assert list_runs(tmp_path, active=[newest["run_dir"]])[0]["status"] == "running"
    assert oldest["val_accuracy"] == 0.75  # no reported result yet: the curve's best stands in
    curves = run_curves(oldest["run_dir"])
    assert list(curves["val_accuracy"]) == [0.5, 0.75]
    assert run_curves(tmp_path / "missing").empty
    assert list_runs(tmp_path / "no-project") == []


def test_a_finished_run_lists_its_reported_accuracy_not_its_curve_s(tmp_path):
    """Auto's curve scores held-out training images; the list shows the validation number it reports
    (as the run predicts: with TTA when it chose TTA), the one the Evaluate tab and the CLI give."""
    run = fake_run_dir(tmp_path, "20240101-000000-auto", status="done", metrics=METRICS)
    result = {"val_accuracy": 0.6, "val_accuracy_tta": 0.65, "tta": True, "accuracy": 0.65}
    (run / "status.json").write_text(json.dumps({"status": "done", "result": result}))
    listed = list_runs(tmp_path)[0]
    assert listed["best_val_accuracy"] == 0.75 and listed["val_accuracy"] == 0.65
    # still running, it has no validation number yet: its curve's best is no stand-in
    running = fake_run_dir(tmp_path, "20240102-000000-auto", status="running", metrics=METRICS)
    (running / "config.json").write_text(json.dumps({"config": {"strategy": "auto"}}))
    listed = list_runs(tmp_path, active=[running])[0]
    assert listed["name"] == running.name and listed["val_accuracy"] is None


def test_service_lists_its_live_run_as_running(service, tmp_path):
    run_dir, started = tmp_path / "runs" / "20240101-000000-auto", threading.Event()
    job = service.submit("train", fake_train(run_dir, started), project=str(tmp_path))
    assert started.wait(GUARD_S)
    assert service.list_runs(tmp_path)[0]["status"] == "running"
    service.cancel(job.id)
    job.wait(GUARD_S)
    assert service.list_runs(tmp_path)[0]["status"] == "cancelled"
