"""Likely mislabeled images: out-of-fold probabilities + confident learning, and the review queue.

Out-of-fold probabilities come from k-fold logistic regression on the cached features (each image is
scored by a model that never saw its label), so a wrong label cannot vouch for itself. Several feature
sets (the bundled backbones) average their probabilities. The strength C is fixed, not tuned on the
labels being checked: with wrong labels among them, tuning picks the C that fits the wrong labels too
(bench/curation.py measured flowers at 79% with log-loss tuning and a second pass without the suspects,
96% with the fixed C). cleanlab's confident learning then flags the images whose given label disagrees
with the per-class thresholds, and its self-confidence score (the out-of-fold probability of the given
label) ranks every labeled image (lowest = most likely wrong), flagged or not, so a reviewer can go on
past the flagged ones. The expert reviews the ranked queue: accept the suggested class, keep the label,
mark the image ambiguous or exclude it; each answer is stored (`studio.curate.decisions`) and never
asked again.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer

from studio.curate import decisions
from studio.curate.features import FeatureSet
from studio.data.store import Project
from studio.errors import StudioError

FOLDS = 5
# Unit-length features (cosine geometry) keep the problem well conditioned: lbfgs converges in a few
# dozen steps, and no per-dimension scaling inflates the many near-silent feature dimensions. C=3 is
# moderate regularisation for them: with Lite0+Lite1+Lite2 it put 96% of 10% flipped labels in the top
# 2x on flowers (5 classes, 600 images) and 90% on MRI (2 classes, 164 grayscale scans); C=1 fell to 81%
# on MRI, C=10 to 95% on flowers, so the choice is not on an edge for either kind of set.
DEFAULT_C = 3.0
ISSUE_COLUMNS = ["image_id", "original_name", "label", "suggested", "score", "suggested_probability", "issue"]


def out_of_fold_probs(features: np.ndarray, targets: np.ndarray, num_classes: int, *, folds: int = FOLDS,
                      seed: int = 0, C: float = DEFAULT_C) -> np.ndarray:
    """N x num_classes probabilities, each row predicted by a model fitted without that image."""
    targets = np.asarray(targets)
    probs = np.zeros((len(targets), num_classes))
    for fit_rows, held_rows in _folds(features, targets, num_classes, folds, seed):
        model = make_pipeline(Normalizer(), LogisticRegression(C=C, max_iter=500))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(features[fit_rows], targets[fit_rows])
        probs[np.ix_(held_rows, model[-1].classes_)] = model.predict_proba(features[held_rows])
    return probs


def _folds(features: np.ndarray, targets: np.ndarray, num_classes: int, folds: int, seed: int) -> list:
    counts = np.bincount(targets, minlength=num_classes)
    usable = counts[counts >= 2]  # a class of one image is scored, but cannot limit the folds
    n_splits = int(min(folds, usable.min())) if len(usable) else 0
    if len(usable) < 2 or n_splits < 2:
        raise StudioError("finding label issues needs at least two classes with two labeled images each; "
                          "label more images first")
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has fewer members than n_splits": expected
        warnings.simplefilter("ignore", UserWarning)
        return list(splitter.split(features, targets))


def ensemble_probs(feature_sets: Sequence[np.ndarray], targets: np.ndarray, num_classes: int, *,
                   folds: int = FOLDS, seed: int = 0, C: float = DEFAULT_C) -> np.ndarray:
    """Out-of-fold probabilities averaged over feature sets (the same folds for each)."""
    return np.mean([out_of_fold_probs(x, targets, num_classes, folds=folds, seed=seed, C=C)
                    for x in feature_sets], axis=0)


def rank_label_issues(targets: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """One row per image (positional `row`), most likely mislabeled first.

    Columns: row, target, suggested (the most probable other class), score (label quality in [0, 1],
    low = likely wrong), suggested_probability, issue (flagged by confident learning).
    """
    targets = np.asarray(targets)
    probs = np.asarray(probs, dtype=float)
    # cleanlab wants every column's class present: score only over the classes that have labels.
    present = np.flatnonzero(np.bincount(targets, minlength=probs.shape[1]))
    local = np.searchsorted(present, targets)
    sub = probs[:, present]
    sub = sub / np.maximum(sub.sum(axis=1, keepdims=True), 1e-12)
    scores = get_label_quality_scores(local, sub, method="self_confidence")
    flagged = np.zeros(len(targets), dtype=bool)
    if len(present) >= 2:
        flagged[find_label_issues(local, sub, filter_by="prune_by_noise_rate")] = True
    others = probs.copy()
    others[np.arange(len(targets)), targets] = -1.0  # the suggestion is always a different class
    suggested = others.argmax(axis=1)
    frame = pd.DataFrame({
        "row": np.arange(len(targets)), "target": targets, "suggested": suggested, "score": scores,
        "suggested_probability": probs[np.arange(len(targets)), suggested], "issue": flagged,
    })
    return frame.sort_values(["score", "row"], kind="stable").reset_index(drop=True)


def label_issues(project: Project, features: FeatureSet, *, splits: Sequence[str] | None = None,
                 folds: int = FOLDS, seed: int = 0, C: float = DEFAULT_C,
                 extra_features: Sequence[FeatureSet] = ()) -> pd.DataFrame:
    """Rank the project's labeled images (optionally only `splits`) by how likely their label is wrong.

    Excluded images are left out. `extra_features` (other backbones) join `features` in the ensemble.
    Columns: ISSUE_COLUMNS, most likely mislabeled first.
    """
    frame = project.dataset(labeled_only=True)
    if splits is not None:
        frame = frame[frame["split"].isin(list(splits))]
    excluded = decisions.excluded_image_ids(project)
    frame = frame[~frame["image_id"].isin(excluded)]
    classes = [name for name in project.classes() if name in set(frame["label"])]
    if len(frame) == 0 or len(classes) < 2:
        raise StudioError("finding label issues needs labeled images of at least two classes")
    targets = frame["label"].map({name: i for i, name in enumerate(classes)}).to_numpy()
    feature_sets = [f.rows(frame["image_id"]) for f in (features, *extra_features)]
    probs = ensemble_probs(feature_sets, targets, len(classes), folds=folds, seed=seed, C=C)
    ranked = rank_label_issues(targets, probs)
    ids = frame["image_id"].to_numpy()
    return pd.DataFrame({
        "image_id": ids[ranked["row"]].astype(np.int64),
        "original_name": frame["original_name"].to_numpy()[ranked["row"]],
        "label": [classes[t] for t in ranked["target"]],
        "suggested": [classes[s] for s in ranked["suggested"]],
        "score": ranked["score"].round(4),
        "suggested_probability": ranked["suggested_probability"].round(4),
        "issue": ranked["issue"],
    }, columns=ISSUE_COLUMNS)


class LabelReviewQueue:
    """The expert's pass over ranked label issues. Answers are stored at once and never asked again."""

    def __init__(self, project: Project, issues: pd.DataFrame, *, flagged_only: bool = True) -> None:
        self.project = project
        self.issues = issues[issues["issue"]] if flagged_only else issues
        self._by_id = {int(row.image_id): row for row in self.issues.itertuples(index=False)}

    def pending(self) -> pd.DataFrame:
        """Issues not decided yet (and not excluded by another review), most likely first."""
        done = decisions.decided_ids(self.project, "label_issue") | decisions.excluded_image_ids(self.project)
        return self.issues[~self.issues["image_id"].isin(done)].reset_index(drop=True)

    def next(self) -> dict | None:
        pending = self.pending()
        return None if pending.empty else pending.iloc[0].to_dict()

    def _issue(self, image_id: int):
        try:
            return self._by_id[int(image_id)]
        except KeyError:
            raise StudioError(f"image {image_id} is not in the label-issue queue") from None

    def accept(self, image_id: int, label: str | None = None, *, by: str = "user") -> str:
        """Relabel the image as suggested (or as `label`); returns the new label."""
        issue = self._issue(image_id)
        return review(self.project, image_id, "accepted", label=label or issue.suggested, by=by,
                      detail={"suggested": issue.suggested, "score": issue.score})

    def keep(self, image_id: int, *, by: str = "user") -> None:
        self._decide(image_id, "kept", by)

    def mark_ambiguous(self, image_id: int, *, by: str = "user") -> None:
        self._decide(image_id, "ambiguous", by)

    def exclude(self, image_id: int, *, by: str = "user") -> None:
        """Leave the image out of training; its file and label stay (see `decisions.clear`)."""
        self._decide(image_id, "excluded", by)

    def _decide(self, image_id: int, outcome: str, by: str) -> None:
        issue = self._issue(image_id)
        review(
            self.project,
            image_id,
            outcome,
            by=by,
            detail={"suggested": issue.suggested, "score": issue.score},
        )


def review(project: Project, image_id: int, outcome: str, *, label: str | None = None, by: str = "user",
           detail: dict | None = None, new_classes: bool = True) -> str | None:
    """Store the expert's answer about one image's label; "accepted" relabels it as `label` first.

    The relabel goes through the store (label history `by`: the reviewer, whose Undo reverts it) in the
    same transaction as the decision: both are stored or neither. Returns the label the image has afterwards.
    """
    if outcome not in ("accepted", "kept", "ambiguous", "excluded"):
        raise StudioError(f"a label review is accepted, kept, ambiguous or excluded, not {outcome!r}")
    if outcome == "accepted" and not label:
        raise StudioError("accepting a label suggestion needs the new class (--label CLASS)")
    with project.transaction():
        current = project.dataset().set_index("image_id")["label"].get(int(image_id))
        if outcome == "accepted":
            project.set_label(int(image_id), label, by=by, new_classes=new_classes)
            detail = {"was": current, **(detail or {})}
            current = label
        decisions.record(project, [image_id], "label_issue", outcome, by=by, detail=detail)
    return current
