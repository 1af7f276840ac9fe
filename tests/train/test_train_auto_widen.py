"""Auto's fine-tune: scored on the held-out fifth of the training split a third of the way, then trained on
every training image for the rest of its schedule; stopped for the probe when the probe is clearly better."""

from __future__ import annotations

import json

import numpy as np
import pytest
from train_helpers import make_project, tiny_config

from studio.predict.checkpoint import read_checkpoint
from studio.train import loop, strategies, train
from studio.train.selection import choose_tta, clearly_better


@pytest.fixture
def seen_per_epoch(monkeypatch):
    """How many training images each loader the Trainer builds draws from."""
    sizes = []
    real = loop.AugmentedImages.__init__

    def spy(self, images, targets, transform):
        sizes.append(len(targets))
        real(self, images, targets, transform)

    monkeypatch.setattr(loop.AugmentedImages, "__init__", spy)
    return sizes


def _run(tmp_path, probe_better: bool, monkeypatch):
    monkeypatch.setattr(strategies, "clearly_better", lambda a, b: probe_better)
    project = make_project(tmp_path, classes=("cat", "dog", "owl"), per_class=9)
    data = project.dataset(labeled_only=True)
    n_train = int((data["split"] == "train").sum())
    # Shuffled training labels: the probe cannot be perfect on held-out images, so auto fine-tunes.
    rows = data[data["split"] == "train"]
    shuffled = np.random.default_rng(0).permutation(rows["label"].to_numpy())
    project.set_labels([(int(i), str(label)) for i, label in zip(rows["image_id"], shuffled)])
    events = []
    # One network (no average with the probe): what is checked here is the fine-tune's own schedule.
    result = train(project, tiny_config(strategy="auto", epochs=6, time_budget_s=600, seed=1, ensemble=False),
                   callback=lambda e: events.append(e.to_dict()))
    project.close()
    return result, events, n_train


def test_the_fine_tune_trains_on_every_training_image_after_the_check(tmp_path, monkeypatch, seen_per_epoch):
    result, events, n_train = _run(tmp_path, False, monkeypatch)
    finetune = [e for e in events if e["type"] == "epoch" and e["stage"] == "finetune"]
    assert [e["epoch"] for e in finetune] == list(range(1, 7))
    # Epochs 1-2 are scored on the held-out images; after that they are trained on: nothing to score.
    assert all(e["val_accuracy"] is not None for e in finetune[:2])
    assert all(e["val_accuracy"] is None for e in finetune[2:])
    assert seen_per_epoch[-1] == n_train and min(seen_per_epoch) < n_train
    assert result.strategy == "finetune" and result.epochs_run == 1 + 6
    assert f"then 4 more epochs on all {n_train} training images" in result.reason
    record = json.loads((result.run_dir / "config.json").read_text())["result"]["details"]
    assert record["checked_after_epoch"] == 2
    assert "after epoch 2" in record["calibration"]["fitted_on"]  # fitted on held-out predictions
    checkpoint = read_checkpoint(result.run_dir)
    assert checkpoint["strategy"] == "auto" and checkpoint["calibration"]["temperature"] > 0
    assert result.val_accuracy is not None  # the final evaluation ran on the validation split
    _check_tta_choice(result, "after epoch 2")


def _check_tta_choice(result, fitted_on: str) -> None:
    """The run chose TTA on held-out training images, recorded it, and reports the accuracy of that."""
    choice = read_checkpoint(result.run_dir)["tta"]
    assert fitted_on in choice["fitted_on"] and "held-out training images" in choice["fitted_on"]
    assert result.tta is choice["tta"] and "by default" in result.reason
    assert result.accuracy == (result.val_accuracy_tta if result.tta else result.val_accuracy)


def test_a_clearly_worse_fine_tune_is_stopped_and_the_probe_kept(tmp_path, monkeypatch, seen_per_epoch):
    result, events, n_train = _run(tmp_path, True, monkeypatch)
    finetune = [e for e in events if e["type"] == "epoch" and e["stage"] == "finetune"]
    assert [e["epoch"] for e in finetune] == [1, 2]
    # the two epochs' loaders drew from the fitting images only (an earlier one sized the plan)
    assert all(n < n_train for n in seen_per_epoch[-2:])
    assert result.strategy == "linear"
    assert "clearly below the probe: kept the linear probe" in result.reason
    assert "refit on the whole training split" in result.reason
    assert "out-of-fold" in read_checkpoint(result.run_dir)["calibration"]["fitted_on"]
    _check_tta_choice(result, "linear probe")


@pytest.mark.parametrize("tta", [True, False])
def test_a_kept_probe_that_predicts_with_tta_gets_its_threshold_from_out_of_fold_tta_averages(
        tmp_path, monkeypatch, seen_per_epoch, tta):
    monkeypatch.setattr(strategies, "choose_tta", lambda views, targets, fitted_on: {
        "tta": tta, "fitted_on": fitted_on, "n": len(targets), "accuracy_plain": 0.5, "accuracy_tta": 0.5})
    seen = []
    real = strategies.fit_decision

    def spy(probs, targets, fitted_on, tta_views=None):
        seen.append((probs, targets, tta_views))
        return real(probs, targets, fitted_on, tta_views)

    monkeypatch.setattr(strategies, "fit_decision", spy)
    result, _, n_train = _run(tmp_path, True, monkeypatch)
    assert result.strategy == "linear" and result.tta is tta
    (probs, targets, views), = seen  # the refit's out-of-fold predictions, once
    assert probs.shape == (n_train, 3)
    if not tta:
        assert views is None
        return
    assert views.shape == (n_train, 4, 3)  # every TTA view of every training image, out of fold
    np.testing.assert_allclose(views[:, 0], probs, atol=1e-6)  # the first view is the identity
    threshold = read_checkpoint(result.run_dir)["unknown_threshold"]
    temperature = read_checkpoint(result.run_dir)["calibration"]["temperature"]
    assert threshold == pytest.approx(real(probs, targets, "t", views)["unknown_threshold"])
    assert temperature == pytest.approx(real(probs, targets, "t")["calibration"]["temperature"])


def test_tta_is_the_default_unless_it_clearly_hurts_on_held_out_images():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, 60)
    right = np.eye(2)[targets] * 0.8 + 0.1  # 0.9 on the right class
    # Views that agree (or TTA helps a little): TTA stays on.
    agree = np.stack([right, right, right, right], axis=1)
    assert choose_tta(agree, targets, "t")["tta"] is True
    noisy = agree.copy()
    noisy[:2, 0] = noisy[:2, 0, ::-1]  # the plain crop wrong on 2 images, TTA still right
    assert choose_tta(noisy, targets, "t") == {"tta": True, "fitted_on": "t", "n": 60,
                                               "accuracy_plain": 58 / 60, "accuracy_tta": 1.0}
    # A mirror that swaps the classes (arrows, text): the mirrored views outvote the plain crop.
    mirrored = np.stack([right, right[:, ::-1], right, right[:, ::-1]], axis=1)
    mirrored[:, 2] = right[:, ::-1]  # and the whole frame disagrees too
    choice = choose_tta(mirrored, targets, "t")
    assert choice["tta"] is False and choice["accuracy_plain"] == 1.0 and choice["accuracy_tta"] < 0.5


def test_clearly_better_needs_more_than_noise():
    right, wrong = np.ones(100, bool), np.zeros(100, bool)
    assert clearly_better(right, wrong)
    assert not clearly_better(wrong, right)
    a = np.r_[np.ones(52, bool), np.zeros(48, bool)]
    b = np.r_[np.zeros(2, bool), np.ones(50, bool), np.zeros(48, bool)]
    assert not clearly_better(a, b)  # 2 images of 100 apart: noise
    assert not clearly_better(a, a)


def test_plan_epochs_fits_the_narrow_third_and_the_wide_rest():
    # 9 epochs: 3 at 10 s, 6 at 20 s = 150 s.
    assert strategies.plan_epochs(9, 10.0, 20.0, 150.0) == 9
    assert strategies.plan_epochs(20, 10.0, 20.0, 150.0) == 9
    assert strategies.plan_epochs(9, 10.0, 20.0, 149.0) == 8
    assert strategies.plan_epochs(9, 10.0, 20.0, 20.0) == 0  # not even 2 epochs
