"""Active learning: uncertainty scores, the ranked queue with suggestions, background refits."""

from __future__ import annotations

import numpy as np
import pytest

from studio.curate import decisions
from studio.curate.active import (
    ActiveLearner,
    learner_for_project,
    rank_by_uncertainty,
    simulate,
    uncertainty,
)
from studio.curate.features import FeatureSet
from studio.errors import StudioError
from tests.curate.conftest import clustered_features


def test_uncertainty_orders_confident_before_torn():
    probs = np.array([[0.98, 0.01, 0.01], [0.5, 0.45, 0.05], [1 / 3, 1 / 3, 1 / 3]])
    for method in ("margin", "entropy", "least_confidence"):
        scores = uncertainty(probs, method)
        assert scores[0] < scores[1] < scores[2]
        assert np.all((scores >= 0) & (scores <= 1 + 1e-9))
    np.testing.assert_allclose(uncertainty(probs, "margin"), [0.03, 0.95, 1.0])
    np.testing.assert_allclose(uncertainty(probs, "entropy")[2], 1.0)
    with pytest.raises(StudioError):
        uncertainty(probs, "vibes")


def test_rank_puts_the_most_uncertain_first_with_a_suggestion():
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8]])
    ranked = rank_by_uncertainty([10, 11, 12], probs, ["cat", "dog"])
    assert ranked["image_id"].tolist() == [11, 12, 10]
    assert ranked["suggested"].tolist() == ["cat", "dog", "cat"]
    assert ranked["confidence"].tolist() == [0.55, 0.8, 0.9]


def _pool():
    """Two clusters plus points placed on the line halfway between them (the truly uncertain ones)."""
    targets = np.repeat([0, 1], 30)
    features = clustered_features(targets, 2, dim=8, spread=0.5, seed=3)
    centers = np.stack([features[targets == c].mean(axis=0) for c in (0, 1)])
    middle = (centers[0] + centers[1]) / 2 + np.random.default_rng(0).normal(0, 0.05, (4, 8))
    ids = np.arange(100, 100 + 64)
    return FeatureSet(ids, np.vstack([features, middle])), targets


def test_learner_queues_the_boundary_images_first():
    features, targets = _pool()
    labels = {int(features.image_ids[i]): ("a" if targets[i] == 0 else "b") for i in (0, 1, 2, 30, 31, 32)}
    learner = ActiveLearner(features, ["a", "b"], labels, background=False)
    queue = learner.queue(4)
    assert set(queue["image_id"]) == set(features.image_ids[60:])
    everything = learner.queue(None)
    assert not set(everything["image_id"]) & set(labels)  # labeled images are not asked again
    assert len(everything) == 64 - 6
    clear_a = everything.set_index("image_id").loc[int(features.image_ids[10])]
    assert clear_a["suggested"] == "a" and clear_a["confidence"] > 0.6


def test_background_refit_after_every_few_labels():
    features, targets = _pool()
    first = {int(features.image_ids[i]): ("a" if targets[i] == 0 else "b") for i in (0, 30)}
    learner = ActiveLearner(features, ["a", "b"], first, refit_every=3, background=True)
    assert learner.fits == 1
    learner.add_label(int(features.image_ids[1]), "a")
    learner.add_label(int(features.image_ids[31]), "b")
    learner.wait()
    assert learner.fits == 1  # two new labels: not yet
    learner.add_label(int(features.image_ids[2]), "a")
    learner.wait()
    assert learner.fits == 2
    assert learner.last_fit_seconds is not None
    assert len(learner.labeled_ids) == 5


def test_a_new_class_while_labeling_is_learned():
    features, targets = _pool()
    labels = {int(features.image_ids[i]): ("a" if targets[i] == 0 else "b") for i in (0, 1, 30, 31)}
    learner = ActiveLearner(features, ["a", "b"], labels, refit_every=1, background=False)
    learner.add_labels([(int(features.image_ids[60]), "middle"), (int(features.image_ids[61]), "middle")])
    probs = learner.predict_proba([int(features.image_ids[62])])
    assert probs.shape == (1, 3) and probs[0].argmax() == 2


def test_learner_needs_two_classes_before_suggesting():
    features, _ = _pool()
    learner = ActiveLearner(features, ["a", "b"], {int(features.image_ids[0]): "a"}, background=False)
    with pytest.raises(StudioError, match="at least two classes"):
        learner.queue(5)
    with pytest.raises(StudioError, match="no features"):
        learner.add_label(5, "a")


def test_simulation_curve_has_one_point_per_step():
    targets = np.repeat(np.arange(3), 40)
    features = clustered_features(targets, 3, dim=16, spread=3.0, seed=2)
    curve = simulate(features[::2], targets[::2], features[1::2], targets[1::2], initial_per_class=2,
                     budget=12, step=4, strategy="uncertainty", seed=0)
    assert [n for n, _ in curve] == [6, 10, 14, 18]
    assert all(0.0 <= accuracy <= 1.0 for _, accuracy in curve)


def test_learner_for_project_starts_from_the_stored_labels(labeled_project):
    project, features, _ = labeled_project
    excluded = int(features.image_ids[0])
    decisions.record(project, [excluded], "duplicate", "excluded")
    learner = learner_for_project(project, features, background=False)
    assert len(learner.labeled_ids) == 35 and excluded not in learner.labeled_ids
    frame = project.dataset()
    unlabeled = frame.loc[frame["label"].isna(), "image_id"].tolist()
    queue = learner.queue(None, candidates=unlabeled)
    assert sorted(queue["image_id"]) == sorted(unlabeled) and len(queue) == 4
