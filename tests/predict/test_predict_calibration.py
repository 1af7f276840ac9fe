"""Temperature scaling lowers the calibration error; the rejection threshold keeps 95% of correct ones."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax, softmax

from studio.predict.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_decision,
    fit_temperature,
    rejection_threshold,
)


def _overconfident(n=2000, k=4, seed=0):
    """Logits of a classifier right ~70% of the time but sure of itself (scaled up 4x)."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), targets] += 1.2
    return softmax(4.0 * logits, axis=1), targets


def test_temperature_scaling_lowers_ece_on_a_generated_set():
    probs, targets = _overconfident()
    temperature = fit_temperature(np.log(probs), targets)
    assert 2.5 < temperature < 6.0  # undoes the 4x sharpening
    calibrated = apply_temperature(probs, temperature)
    assert expected_calibration_error(calibrated, targets) < 0.5 * expected_calibration_error(probs, targets)
    assert np.array_equal(calibrated.argmax(1), probs.argmax(1))  # never changes the top class


def test_fit_decision_reports_before_after_and_a_threshold_keeping_95_percent():
    probs, targets = _overconfident(seed=1)
    decision = fit_decision(probs, targets, "generated")
    calibration = decision["calibration"]
    assert set(calibration) >= {"temperature", "ece_before", "ece_after"}
    assert calibration["ece_after"] < calibration["ece_before"]
    calibrated = apply_temperature(probs, calibration["temperature"])
    correct = calibrated.argmax(1) == targets
    kept = (calibrated.max(1)[correct] >= decision["unknown_threshold"]).mean()
    assert 0.94 <= kept <= 0.97
    assert rejection_threshold(probs, (probs.argmax(1) + 1) % 4) == 0.0  # nothing correct: reject nothing


def test_a_run_that_predicts_with_tta_gets_its_threshold_from_the_average_of_its_calibrated_views():
    probs, targets = _overconfident(n=400)
    rng = np.random.default_rng(1)
    # Four views: the identity and three noisier ones, flatter on average (as averaged views are).
    views = np.stack([probs] + [softmax(np.log(probs) + rng.normal(0, 2, probs.shape), axis=1)
                                for _ in range(3)], axis=1)
    plain = fit_decision(probs, targets, "t")
    tta = fit_decision(probs, targets, "t", views)
    temperature = tta["calibration"]["temperature"]
    assert temperature == plain["calibration"]["temperature"]  # fitted on the identity view either way
    assert tta["calibration"]["ece_after"] == plain["calibration"]["ece_after"]
    averaged = apply_temperature(views.reshape(-1, 4), temperature).reshape(views.shape).mean(axis=1)
    assert tta["unknown_threshold"] == pytest.approx(rejection_threshold(averaged, targets), rel=1e-5)
    assert tta["unknown_threshold"] != plain["unknown_threshold"]
    # It keeps 95% of the correct predictions as the run makes them (the average), not of the identity view.
    correct = averaged.argmax(1) == targets
    kept = (averaged.max(1)[correct] >= tta["unknown_threshold"]).mean()
    assert 0.94 <= kept <= 0.97


def _likelihood_temperature(logits, targets, low, high):
    """The maximum-likelihood T by a fine grid search: what the fit would give without its prior."""
    rows = np.arange(len(targets))
    return min(np.linspace(low, high, 4001),
               key=lambda t: -log_softmax(logits / t, axis=1)[rows, targets].sum())


def test_a_few_held_out_images_pull_the_temperature_towards_one_and_many_do_not():
    """One confident mistake among 12 pushes the likelihood's T up (every right answer then shown less
    sure); the prior on log T pulls it back towards 1. With 2000 images the data decide."""
    probs = np.full((12, 3), 0.005)
    probs[:, 0] = 0.99
    targets = np.zeros(12, dtype=int)
    targets[0] = 2  # confidently wrong
    logits = np.log(probs)
    mle = _likelihood_temperature(logits, targets, 0.05, 20.0)
    assert mle > 1.5  # the likelihood alone moves T well away from 1...
    held_back = fit_temperature(logits, targets)
    assert held_back > 1.0  # ...the prior leaves the direction the data ask for...
    assert held_back < mle - 0.05  # ...and holds the size back
    many, many_targets = _overconfident()
    logits = np.log(many)
    assert fit_temperature(logits, many_targets) == pytest.approx(
        _likelihood_temperature(logits, many_targets, 2.0, 6.0), rel=0.01)
