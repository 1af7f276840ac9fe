"""Early stopping counts patience from the stage's own best validation result."""

from __future__ import annotations

import json

import pytest
from train_helpers import tiny_config

from studio.train import loop, train


def _scripted_validation(monkeypatch, accuracies):
    scores = iter(accuracies)
    monkeypatch.setattr(loop.Trainer, "validate", lambda self: (next(scores), 1.0))


@pytest.mark.parametrize("accuracies, epochs_run", [
    ([0.5, 0.4, 0.3, 0.2, 0.1, 0.0], 3),  # best at epoch 1, two stale epochs: stop after epoch 3
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 6),  # improving every epoch: runs to the end
    ([0.2, 0.1, 0.3, 0.2, 0.1, 0.0], 5),  # a late improvement resets the count
])
def test_patience_counts_stale_epochs(project, monkeypatch, accuracies, epochs_run):
    _scripted_validation(monkeypatch, accuracies)
    events = []
    result = train(project, tiny_config(epochs=6, patience=2), callback=lambda e: events.append(e.to_dict()))
    assert result.epochs_run == epochs_run
    assert len([e for e in events if e["type"] == "epoch"]) == epochs_run
    stopped = [e for e in events if e["type"] == "log" and "Early stopping" in e["message"]]
    assert bool(stopped) == (epochs_run < 6)


def test_a_stage_below_an_earlier_stage_is_not_stopped_while_it_improves(project, monkeypatch):
    """two-stage: the probe scores high; stage 2 starts far below it but keeps improving."""
    _scripted_validation(monkeypatch, [0.0, 0.05, 0.1, 0.15])
    result = train(project, tiny_config(strategy="two-stage", epochs=4, patience=2))
    assert result.epochs_run == 1 + 4  # the probe, then every epoch of stage 2


def test_the_run_reason_says_how_long_it_trained_and_why_it_stopped(project, monkeypatch):
    _scripted_validation(monkeypatch, [0.5, 0.4, 0.3, 0.2])
    result = train(project, tiny_config(epochs=4, patience=2))
    assert result.reason == (
        "fine-tuned all layers for 3 epochs, stopped early (validation no longer improved); the best epoch "
        "on validation was kept (--patience), so its validation accuracy is optimistic"
    )
    assert train(project, tiny_config(epochs=1)).reason == "fine-tuned all layers for 1 epoch"


def test_without_patience_the_whole_schedule_runs_and_the_last_epoch_is_kept(project, monkeypatch):
    """The default: nothing is chosen on validation (it is scored for the charts only)."""
    _scripted_validation(monkeypatch, [0.9, 0.5, 0.4, 0.3])
    result = train(project, tiny_config(epochs=4))
    assert result.epochs_run == 4 and "optimistic" not in result.reason
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["result"]["best"]["epoch"] == 4 and config["result"]["best"]["accuracy"] == 0.3
