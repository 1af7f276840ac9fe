"""Auto re-plans its fine-tuning epochs from the first epoch's real duration (the warm-up estimate is
rough)."""

from __future__ import annotations

import itertools

import pytest
from train_helpers import tiny_config

from studio.train import loop, strategies, train
from studio.train.schedule import MIN_LR_RATIO, WarmupCosine


def test_schedule_total_can_change_during_warmup_without_a_jump():
    factor = WarmupCosine(total_steps=40, warmup_steps=10)
    before = [factor(step) for step in range(10)]
    factor.total_steps = 100  # re-planned at the end of the warmup
    assert [factor(step) for step in range(10)] == before
    assert factor(10) == pytest.approx(1.0) and factor(9) < 1.0  # the cosine starts at the peak
    assert factor(55) == pytest.approx(
        MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5
    )  # halfway through the new cosine
    assert factor(99) == pytest.approx(MIN_LR_RATIO, abs=1e-3)


@pytest.fixture
def pessimistic_estimate(monkeypatch):
    """The warm-up steps say an epoch costs ~20 s (so 4 epochs fit in 100 s); the real ones take well under
    1 s. The probe is kept imperfect and validation improves every epoch, so only the time plan decides the
    length."""
    monkeypatch.setattr(strategies, "seconds_per_image", lambda trainer, stage: 2.0)
    probe = strategies.linear_probe

    def imperfect_probe(*args, **kwargs):
        real = probe(*args, **kwargs)
        return type("P", (), {"val_accuracy": 0.1, "details": {} if real is None else real.details,
                              "out_of_fold": None,
                              "model": None if real is None else real.model,
                              "val_probs": None if real is None else real.val_probs})()

    monkeypatch.setattr(strategies, "linear_probe", imperfect_probe)
    monkeypatch.setattr(strategies, "clearly_better", lambda a, b: False)  # the held-out check lets it go on
    monkeypatch.setattr(strategies, "MAX_FINETUNES", 1)  # one fine-tune's plan (a second one plans nothing)
    scores = itertools.count(1)
    monkeypatch.setattr(loop.Trainer, "validate", lambda self: (min(1.0, 0.2 + 0.05 * next(scores)), 1.0))


def test_auto_uses_the_measured_epoch_time(project, pessimistic_estimate):
    events = []
    result = train(
        project,
        tiny_config(strategy="auto", epochs=8, time_budget_s=100),
        callback=lambda e: events.append(e.to_dict()),
    )
    logs = [e["message"] for e in events if e["type"] == "log"]
    # The plan counts the images auto fits on (the training split less its held-out fifth).
    planned = next(int(m.split("for up to ")[1].split()[0]) for m in logs if "for up to" in m)
    assert 2 <= planned < 8, logs
    assert any(f"planning 8 epochs instead of {planned}" in m for m in logs), logs
    assert result.epochs_run == 1 + 8 and "fine-tune 8 epochs" in result.reason
    finetune = [e for e in events if e["type"] == "epoch" and e["stage"] == "finetune"]
    assert [e["epoch"] for e in finetune] == list(range(1, 9))
    peak = max(e["lr"] for e in events if e["type"] == "step" and e["stage"] == "finetune")
    assert finetune[-1]["lr"] < 0.05 * peak  # the cosine ran over the new length, down to its floor
    assert finetune[1]["eta_s"] > 0 and finetune[-1]["eta_s"] == 0


def test_auto_shortens_the_plan_when_epochs_are_slower_than_estimated(
    project, monkeypatch, pessimistic_estimate
):
    monkeypatch.setattr(strategies, "seconds_per_image", lambda trainer, stage: 0.2)  # plans all 8 epochs
    real = loop.Trainer._run

    def slow_first_epoch(self, stage):
        inner = stage.replan
        stage.replan = lambda seconds: inner(seconds + 40.0)  # as if the first epoch took 40 s more
        return real(self, stage)

    monkeypatch.setattr(loop.Trainer, "_run", slow_first_epoch)
    events = []
    result = train(
        project,
        tiny_config(strategy="auto", epochs=8, time_budget_s=100),
        callback=lambda e: events.append(e.to_dict()),
    )
    logs = [e["message"] for e in events if e["type"] == "log"]
    assert any("for up to 8 epochs" in m for m in logs), logs
    assert any("instead of 8" in m for m in logs), logs
    # ~98 s left after a 40 s first epoch on a quiet machine: two more fit, so 3 in all (and the probe's
    # epoch); on a loaded one the real seconds spent before it count too, so 2 (never more than 3).
    replanned = next(int(m.split("planning ")[1].split()[0]) for m in logs if "instead of 8" in m)
    assert 2 <= replanned <= 3, logs
    assert result.epochs_run == 1 + replanned
