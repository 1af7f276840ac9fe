"""Distributed training (torchrun, DDP, gloo on CPU) with two processes on a tiny project.

Each test starts torchrun and two ranks (a few seconds of imports each on a busy 2-core machine).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from train_helpers import TINY_BACKBONE, tiny_config

from studio.cli import main
from studio.errors import StudioError
from studio.predict.checkpoint import load_model
from studio.service.jobs import JobState
from studio.service.trainer import TrainerService
from studio.train.distributed import FAIL_RANK_ENV, World, check_nproc, launch

WAIT_S = 240.0


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (the test's own project path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_two_processes_train_a_loadable_run_recording_world_size(project, capsys):
    args = [
        "train",
        str(project.root),
        "--backbone",
        TINY_BACKBONE,
        "--no-pretrained",
        "--strategy",
        "finetune",
        "--image-size",
        "64",
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--nproc",
        "2",
        "--json",
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = Path(result["run_dir"])
    assert result["status"] == "done" and result["epochs_run"] == 2
    config = json.loads((run / "config.json").read_text())
    assert config["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert json.loads((run / "status.json").read_text())["status"] == "done"
    metrics = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(metrics) == 1 + 2  # header + one row per epoch, written once (rank 0 only)
    assert load_model(run).class_names == ["cat", "dog"]
    assert [p.name for p in project.runs_dir.iterdir()] == [run.name]  # no folder from rank 1
    assert _processes_mentioning(str(project.root)) == []


def test_cancelling_the_service_job_ends_every_process(project):
    service = TrainerService("cpu")
    try:
        job = service.submit_train(project.root, tiny_config(epochs=200, batch_size=2).to_dict(), nproc=2)
        seen = 0
        stepped = False
        while not stepped:
            events = job.wait_events(seen, timeout=WAIT_S)
            assert events, f"no training step within {WAIT_S} s: {job.to_dict()}"
            seen = events[-1]["seq"]
            stepped = any(e.get("type") == "step" for e in events)
        assert _processes_mentioning(str(project.root))  # torchrun and its ranks are running
        assert service.cancel(job.id)
        assert job.wait(WAIT_S)
        assert job.state is JobState.CANCELLED
        run = job.run_dir
        assert run is not None and json.loads((run / "status.json").read_text())["status"] == "cancelled"
        assert _processes_mentioning(str(project.root)) == []
    finally:
        service.shutdown()


def test_a_failing_rank_fails_the_run_with_its_message(project, monkeypatch):
    monkeypatch.setenv(FAIL_RANK_ENV, "1")
    with pytest.raises(StudioError, match=r"rank 1 of 2: rank 1 was told to fail"):
        launch(project.root, tiny_config().to_dict(), 2)
    assert _processes_mentioning(str(project.root)) == []
    for run in project.runs_dir.glob("*") if project.runs_dir.is_dir() else []:
        assert json.loads((run / "status.json").read_text())["status"] != "running"


@pytest.mark.parametrize("nproc, strategy, message", [
    (0, "finetune", "at least 1"),
    (2, "auto", "Strategy 'auto' cannot train on several processes"),
    (2, "linear", "Strategy 'linear'"),
    (10_000, "finetune", "more CPU processes than"),
])
def test_settings_distributed_training_cannot_run_are_refused(nproc, strategy, message):
    with pytest.raises(StudioError, match=message):
        check_nproc(nproc, strategy, "cpu")


def test_cli_refuses_auto_on_several_processes_before_starting_any(project, capsys):
    assert main(["train", str(project.root), "--nproc", "2", "--device", "cpu"]) == 2
    assert "cannot train on several processes" in capsys.readouterr().err


def test_single_process_world_is_a_no_op():
    world = World()
    assert world.is_main and not world.distributed
    assert world.sum([1.0, 2.0]) == [1.0, 2.0] and world.any(True) and not world.any(False)
    assert list(range(5))[World(1, 2).shard(5)] == [1, 3]
