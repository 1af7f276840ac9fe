"""The logistic-regression probe's recipe (C, class weights, mirrored training views) is chosen by
cross-validated log-loss on the training images, not fixed."""

from __future__ import annotations

import numpy as np

from studio.train.heads import (
    choose_logreg_recipe,
    fit_logreg,
    out_of_fold_probs,
    probe_balance_options,
    recipe_words,
)


def _views(x: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """Rows image by image: identity view, then its mirrored view."""
    return np.stack([x, mirrored], axis=1).reshape(-1, x.shape[1])


def test_mirrored_views_that_change_the_class_are_left_out_of_training():
    # The class lives in the sign of feature 0, and mirroring flips that sign (an arrow, a left/right scan):
    # training on mirrored views teaches the opposite class.
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    x = rng.normal(size=(80, 8))
    x[:, 0] += np.where(y == 1, 1.5, -1.5)
    mirrored = x.copy()
    mirrored[:, 0] *= -1
    rows, groups = _views(x, mirrored), np.repeat(np.arange(80), 2)
    recipe = choose_logreg_recipe(rows, np.repeat(y, 2), groups, seed=0, balance_options=(False,), views=2)
    assert recipe["train_views"] == 1 and recipe["recipes"] == 2 * 4
    pipeline, details = fit_logreg(rows, np.repeat(y, 2), groups, seed=0, balance_options=(False,), views=2)
    assert details["train_views"] == 1
    assert (pipeline.predict(x) == y).mean() > 0.85  # fit on identity rows: it learned the right sign
    assert "unmirrored views only" in recipe_words(details)


def test_mirrored_views_that_keep_the_class_are_used():
    # Few images, many features: a second view of each image (another draw of the same class) is more data.
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 10)
    centers = rng.normal(size=(3, 64)) * 0.5
    x = centers[y] + rng.normal(size=(30, 64))
    mirrored = centers[y] + rng.normal(size=(30, 64))
    rows, groups = _views(x, mirrored), np.repeat(np.arange(30), 2)
    recipe = choose_logreg_recipe(rows, np.repeat(y, 2), groups, seed=0, balance_options=(False,), views=2)
    assert recipe["train_views"] == 2


def test_class_weights_are_chosen_only_when_the_balance_setting_is_auto():
    assert probe_balance_options("auto", True) == (True, False)
    assert probe_balance_options("auto", False) == (False, True)
    assert probe_balance_options("weights", True) == (True,)
    assert probe_balance_options("none", False) == (False,)
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], [90, 15])  # imbalanced and overlapping: weights shift the probabilities off
    x = rng.normal(size=(105, 6)) + np.where(y == 1, 0.5, 0.0)[:, None]
    groups = np.arange(105)
    chosen = choose_logreg_recipe(x, y, groups, seed=0, balance_options=(True, False))
    assert chosen["balanced"] is False and chosen["recipes"] == 2 * 4
    kept = choose_logreg_recipe(x, y, groups, seed=0, balance_options=(True,))
    assert kept["balanced"] is True and kept["recipes"] == 4


def test_too_few_images_to_cross_validate_give_the_default_recipe():
    x = np.eye(4)
    recipe = choose_logreg_recipe(x, np.arange(4), np.arange(4), seed=0, balance_options=(True, False))
    assert recipe == {"C": 0.3, "balanced": True, "train_views": 1, "cv": None, "cv_log_loss": None,
                      "recipes": 0}
    assert "too few images" in recipe_words(recipe)


def test_out_of_fold_predictions_under_other_views_score_each_image_by_the_fold_that_left_it_out():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 12)
    x = np.eye(3)[y] @ rng.normal(size=(3, 16)) + rng.normal(size=(36, 16))
    mirrored = x + rng.normal(scale=0.1, size=x.shape)
    rows, groups = _views(x, mirrored), np.repeat(np.arange(36), 2)
    recipe = {"c": 0.3, "seed": 0, "balanced": False, "views": 2, "train_views": 2}
    identity = out_of_fold_probs(rows, np.repeat(y, 2), groups, **recipe)
    predict = np.stack([x, mirrored, 2 * x], axis=1)  # three views per image
    views = out_of_fold_probs(rows, np.repeat(y, 2), groups, **recipe, predict=predict)
    assert views.shape == (36, 3, 3)
    np.testing.assert_allclose(views.sum(axis=2), 1.0)
    np.testing.assert_allclose(views[:, 0], identity)  # the identity view: the same out-of-fold model
    assert not np.allclose(views[:, 2], identity)  # another view: another prediction
