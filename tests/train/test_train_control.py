"""Cancel, seed repeatability, NaN loss, out-of-memory retry."""

from __future__ import annotations

import csv
import json
import threading

import pytest
import torch
from train_helpers import tiny_config

from studio.errors import StudioError
from studio.train import loop, train
from studio.train.events import Epoch


def test_cancel_stops_within_one_batch_and_keeps_best_checkpoint(project):
    cancel = threading.Event()
    events = []

    def callback(event):
        events.append(event.to_dict())
        if isinstance(event, Epoch):  # after epoch 1 saved its checkpoint
            cancel.set()

    result = train(project, tiny_config(epochs=5), callback=callback, cancel=cancel)
    assert result.status == "cancelled"
    first_epoch = next(i for i, e in enumerate(events) if e["type"] == "epoch")
    assert not [e for e in events[first_epoch + 1:] if e["type"] in ("step", "epoch")]
    assert (result.run_dir / "model.pt").is_file()
    assert json.loads((result.run_dir / "status.json").read_text())["status"] == "cancelled"
    assert result.val_accuracy is not None


def test_cancel_before_start_leaves_no_finished_run(project):
    cancel = threading.Event()
    cancel.set()
    result = train(project, tiny_config(strategy="linear"), cancel=cancel)
    assert result.status == "cancelled"
    assert json.loads((result.run_dir / "status.json").read_text())["status"] == "cancelled"
    assert not (result.run_dir / "eval.json").exists()


def _metrics(run_dir):
    with open(run_dir / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: v for k, v in row.items() if k not in ("images_per_s", "eta_s", "elapsed_s")} for row in rows]


def test_same_seed_gives_identical_metrics(project):
    config = tiny_config(epochs=2, augment="medium", cutmix=1.0, seed=3)
    first, second = train(project, config), train(project, config)
    assert _metrics(first.run_dir) == _metrics(second.run_dir)
    assert first.val_accuracy == second.val_accuracy
    other = train(project, tiny_config(epochs=2, augment="medium", cutmix=1.0, seed=4))
    assert _metrics(other.run_dir) != _metrics(first.run_dir)


def test_nan_loss_stops_with_clear_error_and_failed_status(project, monkeypatch):
    calls = {"n": 0}
    real = loop._soft_cross_entropy

    def poisoned(logits, soft, weights):
        calls["n"] += 1
        loss = real(logits, soft, weights)
        return loss * float("nan") if calls["n"] > 3 else loss  # epoch 1 is fine (3 steps), then NaN

    monkeypatch.setattr(loop, "_soft_cross_entropy", poisoned)
    with pytest.raises(StudioError, match="NaN|nan.*learning rate"):
        train(project, tiny_config(epochs=3))
    run_dir = max(project.runs_dir.iterdir())
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "learning rate" in status["message"]
    assert (run_dir / "model.pt").is_file()  # the last good checkpoint (epoch 1) is kept


def test_huge_learning_rate_is_caught(project):
    with pytest.raises(StudioError, match="(?i)learning rate"):  # refused before training starts
        train(project, tiny_config(epochs=3, lr=1e12, backbone_lr=1e12))


def test_out_of_memory_retries_with_half_batch_then_fails_clearly(project, monkeypatch):
    real_run = loop.Trainer._run
    seen = []

    def flaky(self, stage):
        seen.append(self.batch_size)
        if len(seen) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real_run(self, stage)

    monkeypatch.setattr(loop.Trainer, "_run", flaky)
    result = train(project, tiny_config(batch_size=4))
    assert result.status == "done" and seen == [4, 2]

    def always(self, stage):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(loop.Trainer, "_run", always)
    with pytest.raises(StudioError, match="Out of memory even with batch size 2"):
        train(project, tiny_config(batch_size=4))
