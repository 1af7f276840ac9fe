"""Label issues: planted flips on separable features rank first; the review queue stores answers."""

from __future__ import annotations

import numpy as np
import pytest

from studio.curate import decisions
from studio.curate.label_issues import (
    LabelReviewQueue,
    label_issues,
    out_of_fold_probs,
    rank_label_issues,
    review,
)
from studio.errors import StudioError
from tests.curate.conftest import clustered_features


def _flipped(n_per_class=40, num_classes=4, fraction=0.1, seed=0):
    truth = np.repeat(np.arange(num_classes), n_per_class)
    features = clustered_features(truth, num_classes, spread=2.0, seed=seed)
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(truth), int(fraction * len(truth)), replace=False)
    noisy = truth.copy()
    noisy[flipped] = (noisy[flipped] + rng.integers(1, num_classes, len(flipped))) % num_classes
    return features, truth, noisy, flipped


def test_out_of_fold_probabilities_are_distributions():
    features, _, noisy, _ = _flipped()
    probs = out_of_fold_probs(features, noisy, 4)
    assert probs.shape == (len(noisy), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_flips_rank_first_with_the_true_class_suggested(seed):
    features, truth, noisy, flipped = _flipped(seed=seed)
    ranked = rank_label_issues(noisy, out_of_fold_probs(features, noisy, 4, seed=seed))
    top = set(ranked["row"][: 2 * len(flipped)])
    assert len(top & set(flipped)) >= 0.8 * len(flipped)
    flagged = ranked[ranked["issue"]]
    assert len(set(flagged["row"]) & set(flipped)) >= 0.8 * len(flipped)
    suggested = ranked.set_index("row").loc[flipped, "suggested"].to_numpy()
    assert (suggested == truth[flipped]).mean() >= 0.8
    assert (ranked["suggested"] != ranked["target"]).all()  # a suggestion is always another class
    assert ranked["score"].is_monotonic_increasing


def test_clean_labels_give_few_flags():
    features, truth, _, _ = _flipped()
    ranked = rank_label_issues(truth, out_of_fold_probs(features, truth, 4))
    assert ranked["issue"].sum() <= 2


def test_too_few_labels_is_a_user_error():
    with pytest.raises(StudioError, match="at least two classes"):
        out_of_fold_probs(np.zeros((3, 4)), np.array([0, 0, 0]), 2)


def _plant_flip(project, features, truth):
    """Relabel one training 'ant' image as 'bee'; returns its id."""
    frame = project.dataset()
    victim = int(frame[(frame["label"] == "ant") & (frame["split"] == "train")]["image_id"].iloc[0])
    project.set_label(victim, "bee")
    return victim


def test_project_ranking_finds_the_planted_flip(labeled_project):
    project, features, truth = labeled_project
    victim = _plant_flip(project, features, truth)
    issues = label_issues(project, features)
    assert len(issues) == 36  # labeled images only
    first = issues.iloc[0]
    assert int(first["image_id"]) == victim and first["label"] == "bee" and first["suggested"] == "ant"
    assert bool(first["issue"])


def test_review_queue_accept_writes_the_label_and_is_not_asked_again(labeled_project):
    project, features, truth = labeled_project
    victim = _plant_flip(project, features, truth)
    queue = LabelReviewQueue(project, label_issues(project, features))
    assert queue.next()["image_id"] == victim
    assert queue.accept(victim) == "ant"
    assert project.dataset().set_index("image_id").loc[victim, "label"] == "ant"
    history = project.label_history(1)
    assert history.loc[0, "by"] == "user" and history.loc[0, "new"] == "ant"  # the reviewer (local owner)
    assert victim not in queue.pending()["image_id"].tolist()
    table = decisions.decisions(project, "label_issue")
    assert table.loc[0, "outcome"] == "accepted" and table.loc[0, "detail"]["was"] == "bee"
    # A fresh ranking after the fix still does not ask about it again.
    again = LabelReviewQueue(project, label_issues(project, features), flagged_only=False)
    assert victim not in again.pending()["image_id"].tolist()


@pytest.mark.parametrize(
    "answer, outcome", [("keep", "kept"), ("mark_ambiguous", "ambiguous"), ("exclude", "excluded")]
)
def test_other_answers_keep_the_label(labeled_project, answer, outcome):
    project, features, truth = labeled_project
    victim = _plant_flip(project, features, truth)
    queue = LabelReviewQueue(project, label_issues(project, features))
    getattr(queue, answer)(victim)
    assert project.dataset().set_index("image_id").loc[victim, "label"] == "bee"
    assert decisions.decisions(project).loc[0, "outcome"] == outcome
    assert victim not in queue.pending()["image_id"].tolist()
    assert (victim in decisions.excluded_image_ids(project)) == (outcome == "excluded")


def test_excluded_images_are_left_out_of_the_ranking(labeled_project):
    project, features, truth = labeled_project
    victim = _plant_flip(project, features, truth)
    decisions.record(project, [victim], "duplicate", "excluded")
    assert victim not in label_issues(project, features)["image_id"].tolist()


def test_review_errors(labeled_project):
    project, features, _truth = labeled_project
    image = int(features.image_ids[0])
    with pytest.raises(StudioError, match="needs the new class"):
        review(project, image, "accepted")
    with pytest.raises(StudioError, match="not 'deleted'"):
        review(project, image, "deleted")
    queue = LabelReviewQueue(project, label_issues(project, features), flagged_only=True)
    with pytest.raises(StudioError, match="not in the label-issue queue"):
        queue.keep(99999)


def test_a_class_of_one_image_does_not_block_the_ranking():
    features, _, noisy, _ = _flipped(num_classes=3)
    targets = np.r_[noisy, 3]
    probs = out_of_fold_probs(np.vstack([features, features[:1] + 50]), targets, 4)
    assert probs.shape == (len(targets), 4)
    assert len(rank_label_issues(targets, probs)) == len(targets)


def test_a_relabel_and_its_decision_commit_together_or_not_at_all(labeled_project, monkeypatch):
    project, features, _truth = labeled_project
    image = int(features.image_ids[0])
    before = project.dataset().set_index("image_id").loc[image, "label"]
    target = next(c for c in project.classes() if c != before)
    history = len(project.label_history())

    def failing_record(*args, **kwargs):  # the relabel has been written in the transaction by now
        raise OSError("disk full")

    monkeypatch.setattr(decisions, "record", failing_record)
    with pytest.raises(OSError):
        review(project, image, "accepted", label=target)
    assert project.dataset().set_index("image_id").loc[image, "label"] == before  # relabel rolled back
    assert len(project.label_history()) == history
    assert decisions.decisions(project).empty
    monkeypatch.undo()

    review(project, image, "accepted", label=target)  # and without a failure both are stored
    assert project.dataset().set_index("image_id").loc[image, "label"] == target
    assert decisions.decisions(project).set_index("image_id").loc[image, "detail"]["was"] == before


def test_project_transactions_nest_and_roll_back_as_one(labeled_project):
    project, features, _truth = labeled_project
    ids = [int(i) for i in features.image_ids[:2]]
    labels = project.dataset().set_index("image_id")["label"]
    with pytest.raises(RuntimeError), project.transaction():
        project.set_label(ids[0], None)
        decisions.record(project, [ids[1]], "duplicate", "excluded")
        raise RuntimeError("stop")
    assert project.dataset().set_index("image_id").loc[ids[0], "label"] == labels[ids[0]]
    assert decisions.excluded_image_ids(project) == set()
