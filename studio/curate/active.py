"""Active learning: which unlabeled image to label next, with the model's guess pre-filled.

A linear head (logistic regression on standardized cached features) scores the unlabeled images; the
most uncertain ones (smallest top-2 margin, or highest entropy) come first. `ActiveLearner` refits the
head on a background thread after every few new labels, so the queue follows the expert's labeling
without making them wait. Refitting is cheap: the scaler is fitted once on all features, and each fit
starts from the previous weights (warm start).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from studio.curate.decisions import excluded_image_ids
from studio.curate.features import FeatureSet
from studio.data.store import Project
from studio.errors import StudioError

METHODS = ("margin", "entropy", "least_confidence")
DEFAULT_C = 0.1
QUEUE_COLUMNS = ["image_id", "suggested", "confidence", "uncertainty"]


def uncertainty(probs: np.ndarray, method: str = "margin") -> np.ndarray:
    """Higher = more uncertain. margin: 1 - (top1 - top2); entropy: normalized to [0, 1]."""
    probs = np.asarray(probs, dtype=float)
    if method == "margin":
        top2 = -np.sort(-probs, axis=1)[:, :2] if probs.shape[1] > 1 else np.c_[probs, np.zeros(len(probs))]
        return 1.0 - (top2[:, 0] - top2[:, 1])
    if method == "entropy":
        safe = np.clip(probs, 1e-12, 1.0)
        return -(safe * np.log(safe)).sum(axis=1) / np.log(max(probs.shape[1], 2))
    if method == "least_confidence":
        return 1.0 - probs.max(axis=1)
    raise StudioError(f"uncertainty method must be one of {', '.join(METHODS)}, got {method!r}")


class LinearHead:
    """Standardize (statistics of all features, labeled or not) + multinomial logistic regression."""

    def __init__(
        self, all_features: np.ndarray, num_classes: int, *, C: float = DEFAULT_C, seed: int = 0
    ) -> None:
        features = np.asarray(all_features, dtype=np.float32)
        self.mean = features.mean(axis=0)
        self.scale = np.maximum(features.std(axis=0), 1e-6)
        self.num_classes = num_classes
        self.model = LogisticRegression(C=C, max_iter=300, warm_start=True, random_state=seed)
        self._classes: np.ndarray | None = None

    def transform(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, dtype=np.float32) - self.mean) / self.scale

    def fit(self, features: np.ndarray, targets: np.ndarray) -> LinearHead:
        targets = np.asarray(targets)
        classes = np.unique(targets)
        if len(classes) < 2:
            raise StudioError("the model needs labeled images of at least two classes")
        if self._classes is not None and not np.array_equal(classes, self._classes):
            self.model.set_params(warm_start=False)  # a new class appeared: the old weights do not fit
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(self.transform(features), targets)
        self.model.set_params(warm_start=True)
        self._classes = classes
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """N x num_classes (classes without labels get probability 0)."""
        full = np.zeros((len(features), self.num_classes))
        full[:, self.model.classes_] = self.model.predict_proba(self.transform(features))
        return full


def rank_by_uncertainty(image_ids: Sequence[int], probs: np.ndarray, class_names: Sequence[str],
                        method: str = "margin") -> pd.DataFrame:
    """Images most worth labeling first, with the model's suggestion and its confidence."""
    scores = uncertainty(probs, method)
    order = np.lexsort((np.asarray(image_ids), -scores))  # ties: lower image id first (stable output)
    return pd.DataFrame({
        "image_id": np.asarray(image_ids, dtype=np.int64)[order],
        "suggested": [class_names[i] for i in probs.argmax(axis=1)[order]],
        "confidence": probs.max(axis=1)[order].round(4),
        "uncertainty": scores[order].round(4),
    }, columns=QUEUE_COLUMNS)


class ActiveLearner:
    """Keeps a linear head fitted on the labels so far and ranks the unlabeled images.

    Call `add_labels` as the expert labels; after every `refit_every` new labels the head is refitted
    on a background thread (or at once with `background=False`). Thread-safe.
    """

    def __init__(
        self,
        features: FeatureSet,
        class_names: Sequence[str],
        labels: dict[int, str] | None = None,
        *,
        refit_every: int = 5,
        background: bool = True,
        C: float = DEFAULT_C,
        seed: int = 0,
    ) -> None:
        if len(class_names) < 2:
            raise StudioError("active learning needs at least two classes")
        self.features = features
        self.class_names = list(class_names)
        self.refit_every = max(1, int(refit_every))
        self.background = background
        self._row = {int(i): r for r, i in enumerate(features.image_ids)}
        self._labels: dict[int, int] = {}
        self._head_template = (C, seed)
        self._head: LinearHead | None = None
        self._all_features = features.features
        self._lock = threading.Lock()
        self._fit_lock = threading.Lock()  # one fit at a time
        self._since_fit = 0
        self._thread: threading.Thread | None = None
        self._dirty = False
        self.fits = 0
        self.last_fit_seconds: float | None = None
        if labels:
            self.add_labels(labels.items(), refit=False)
        if self._can_fit():
            self.refit()

    # ---- labels --------------------------------------------------------------------------------

    def add_labels(self, pairs: Iterable[tuple[int, str | None]], *, refit: bool = True) -> None:
        """Record labels (None removes one); may start a background refit."""
        with self._lock:
            for image_id, label in pairs:
                image_id = int(image_id)
                if image_id not in self._row:
                    raise StudioError(f"image {image_id} has no features; extract features first")
                if label is None:
                    self._labels.pop(image_id, None)
                else:
                    if label not in self.class_names:
                        self.class_names.append(label)  # a class created while labeling
                    self._labels[image_id] = self.class_names.index(label)
                self._since_fit += 1
            due = refit and self._since_fit >= self.refit_every and self._can_fit_locked()
        if due:
            self._schedule_refit()

    def add_label(self, image_id: int, label: str | None) -> None:
        self.add_labels([(image_id, label)])

    @property
    def labeled_ids(self) -> list[int]:
        with self._lock:
            return sorted(self._labels)

    def _can_fit_locked(self) -> bool:
        return len(set(self._labels.values())) >= 2

    def _can_fit(self) -> bool:
        with self._lock:
            return self._can_fit_locked()

    # ---- fitting -------------------------------------------------------------------------------

    def refit(self) -> None:
        """Fit the head on all labels now (blocking)."""
        with self._fit_lock:
            with self._lock:
                ids = list(self._labels)
                targets = np.array([self._labels[i] for i in ids])
                self._since_fit = 0
                num_classes = len(self.class_names)
            if len(set(targets.tolist())) < 2:
                return
            started = time.perf_counter()
            head = self._head
            if head is None or head.num_classes != num_classes:
                head = LinearHead(self._all_features, num_classes, C=self._head_template[0],
                                  seed=self._head_template[1])
            head.fit(self._all_features[[self._row[i] for i in ids]], targets)
            with self._lock:
                self._head = head
                self.fits += 1
                self.last_fit_seconds = time.perf_counter() - started

    def _schedule_refit(self) -> None:
        if not self.background:
            self.refit()
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._dirty = True  # the running fit started before these labels: fit again after it
                return
            self._thread = threading.Thread(target=self._refit_loop, name="active-learner-refit", daemon=True)
            self._thread.start()

    def _refit_loop(self) -> None:
        while True:
            self.refit()
            with self._lock:
                if not self._dirty:
                    return
                self._dirty = False

    def wait(self, timeout: float | None = None) -> None:
        """Block until any background refit has finished."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # ---- queries -------------------------------------------------------------------------------

    def predict_proba(self, image_ids: Sequence[int]) -> np.ndarray:
        with self._lock:
            head = self._head
        if head is None:
            raise StudioError("label images of at least two classes before asking for suggestions")
        return head.predict_proba(self._all_features[[self._row[int(i)] for i in image_ids]])

    def queue(self, n: int | None = 20, method: str = "margin",
              candidates: Sequence[int] | None = None) -> pd.DataFrame:
        """The `n` most uncertain unlabeled images (of `candidates`, default all), suggestion pre-filled."""
        with self._lock:
            labeled = set(self._labels)
        pool = [int(i) for i in (candidates if candidates is not None else self.features.image_ids)
                if int(i) not in labeled]
        if not pool:
            return pd.DataFrame(columns=QUEUE_COLUMNS)
        ranked = rank_by_uncertainty(pool, self.predict_proba(pool), self.class_names, method)
        return ranked if n is None else ranked.head(n).reset_index(drop=True)


def learner_for_project(project: Project, features: FeatureSet, **options) -> ActiveLearner:
    """An ActiveLearner holding the project's current labels (excluded images left out of the fit)."""
    frame = project.dataset(labeled_only=True)
    frame = frame[frame["image_id"].isin(features.image_ids)
                  & ~frame["image_id"].isin(excluded_image_ids(project))]
    labels = dict(zip(frame["image_id"].astype(int), frame["label"]))
    return ActiveLearner(features, project.classes(), labels, **options)


def simulate(features: np.ndarray, targets: np.ndarray, val_features: np.ndarray, val_targets: np.ndarray, *,
             initial_per_class: int, budget: int, step: int, strategy: str, seed: int,
             method: str = "margin") -> list[tuple[int, float]]:
    """Label `budget` more images (`step` at a time, by `strategy` "uncertainty" or "random") from the
    pool (features, targets); returns the (labels, validation accuracy) curve. For benchmarks and tests."""
    rng = np.random.default_rng(seed)
    num_classes = int(max(targets.max(), val_targets.max())) + 1
    labeled = [int(i) for c in range(num_classes)
               for i in rng.permutation(np.flatnonzero(targets == c))[:initial_per_class]]
    head = LinearHead(features, num_classes, seed=seed)
    curve = []
    while True:
        head.fit(features[labeled], targets[labeled])
        accuracy = float((head.predict_proba(val_features).argmax(1) == val_targets).mean())
        curve.append((len(labeled), accuracy))
        added = len(labeled) - initial_per_class * num_classes
        if added >= budget:
            return curve
        pool = np.setdiff1d(np.arange(len(targets)), labeled)
        take = min(step, budget - added, len(pool))
        if take == 0:
            return curve
        if strategy == "random":
            chosen = rng.choice(pool, size=take, replace=False)
        elif strategy == "uncertainty":
            chosen = pool[
                np.argsort(-uncertainty(head.predict_proba(features[pool]), method), kind="stable")[:take]
            ]
        else:
            raise StudioError(f"strategy must be uncertainty or random, got {strategy!r}")
        labeled.extend(int(i) for i in chosen)
