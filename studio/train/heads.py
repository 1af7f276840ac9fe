"""Classifier heads on frozen features: scikit-learn estimators, or a torch linear layer.

Logistic regression (and the torch head) are linear in standardized features, so scaler and weights
fold into the timm model's own classifier `nn.Linear`: the checkpoint is then one plain torch model.
SVM and k-NN stay scikit-learn estimators, pickled into the checkpoint next to the feature extractor.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.svm import SVC

from studio.errors import StudioError
from studio.predict.calibration import per_image_log_loss

# Inverse regularization strengths tried by cross-validation (on standardized features).
# On raw pooled features (measured on flowers/mri: standardizing them cost 1-2 points of accuracy).
LOGREG_CS = (0.1, 0.3, 1.0, 3.0)
DEFAULT_C = 0.3



@contextlib.contextmanager
def quiet_fits() -> Iterator[None]:
    """scikit-learn's warnings that say nothing to a user here: a fit stopped at its iteration cap (the
    tolerance is loose on purpose), and "more classes than half the samples" (40 classes of 3 images:
    a small classification problem, which scikit-learn guesses may be a regression)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%",
                                category=UserWarning)
        yield

def _folds(y: np.ndarray, groups: np.ndarray, seed: int, max_splits: int = 5):
    """Stratified folds that keep all views of one image together (no flip-view leakage), or None."""
    per_class = np.bincount(y)
    images_per_class = [len(set(groups[y == c])) for c in range(len(per_class)) if per_class[c]]
    n_splits = min(max_splits, min(images_per_class))
    if n_splits < 2:
        return None
    return list(StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(y, y, groups))


def _logreg(c: float, balanced: bool, seed: int) -> Pipeline:
    return make_pipeline(
        StandardScaler(with_mean=False, with_std=False),  # identity: keeps the foldable pipeline shape
        # scikit-learn's default tolerance: at 1e-3 lbfgs stopped after ~20 iterations, short of the
        # optimum (flowers, Lite0 probe, C=1: 88.7% vs 90.0% on val; part of why a plain probe beat ours).
        LogisticRegression(C=c, max_iter=1000, tol=1e-4, class_weight="balanced" if balanced else None,
                           random_state=seed),
    )


# What makes a logistic-regression probe's recipe (a fit's details carry them).
RECIPE_KEYS = ("C", "balanced", "train_views")


def fit_logreg(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, seed: int,
               balance_options: tuple[bool, ...], views: int = 1,
               recipe: dict | None = None) -> tuple[Pipeline, dict]:
    """Multinomial logistic regression on raw features, its recipe chosen by cross-validation
    (`choose_logreg_recipe`) unless `recipe` (another fit's details) gives it; `x` holds `views`
    consecutive rows per image (identity first). The model is fit on the chosen training views."""
    if recipe is not None:
        details = {**{k: recipe[k] for k in RECIPE_KEYS}, "cv": recipe.get("cv"), "cv_log_loss": None,
                   "recipes": 0, "kept_recipe": True}
    else:
        details = choose_logreg_recipe(x, y, groups, seed=seed, balance_options=balance_options, views=views)
    rows = _view_rows(len(y), views, details["train_views"])
    with quiet_fits():
        pipeline = _logreg(details["C"], details["balanced"], seed).fit(x[rows], y[rows])
    return pipeline, details


def probe_balance_options(asked: str, resolved: bool) -> tuple[bool, ...]:
    """Class weights for a logistic-regression probe: chosen by cross-validation when the balance setting
    is auto (the resolved guess first, so it wins ties), as asked otherwise."""
    return (resolved, not resolved) if asked == "auto" else (resolved,)


def _view_rows(n_rows: int, views: int, train_views: int, images: np.ndarray | None = None) -> np.ndarray:
    """Row indices of the first `train_views` views of `images` (positions among the identity rows;
    all images when None) in a matrix of `views` consecutive rows per image."""
    first = np.arange(0, n_rows, views)
    if images is not None:
        first = first[images]
    return np.sort(np.concatenate([first + v for v in range(train_views)]))


def choose_logreg_recipe(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, seed: int,
                         balance_options: tuple[bool, ...], views: int = 1) -> dict:
    """{"C", "balanced", "train_views", "cv", "cv_log_loss", "recipes"}: the recipe with the lowest 3-fold
    cross-validated log-loss on held-out identity rows, over C, class weights (each of `balance_options`)
    and the training views (identity only, or every view when `views` > 1); with too few images per class
    to cross-validate, a moderate C, the first balance option and every view. Among equals the first
    wins: every view, then the balance options in their order. With classes of (nearly) equal size
    only the first balance option is tried: the weights would change nothing.

    Why the views and weights are chosen, not fixed: mirrored training views and class weights help on
    some sets and hurt on others (5-fold CV on the pooled MRI scans, Lite0: the fixed recipe, mirrored
    views + class weights, got 176 of 205 images right, a plain probe 184, this choice 185; on flowers
    it kept the mirrored views on most folds: 675 of 750, with TTA chosen the same way, against 678).
    """
    first = np.arange(0, len(y), views)
    view_options = (views, 1) if views > 1 else (1,)
    default = {"C": DEFAULT_C, "balanced": balance_options[0], "train_views": views, "cv": None,
               "cv_log_loss": None, "recipes": 0}
    folds = _folds(y[first], groups[first], seed, max_splits=3)
    if folds is None:
        return default
    counts = np.bincount(y[first])
    if counts[counts > 0].max() <= 1.1 * counts[counts > 0].min():  # weights within 10% of 1: same model
        balance_options = balance_options[:1]
    losses = {}
    for train_views in view_options:
        for balanced in balance_options:
            path = _out_of_fold_path(x, y, folds, LOGREG_CS, seed=seed, balanced=balanced, views=views,
                                     train_views=train_views)
            for c, probs in path.items():
                losses[(train_views, balanced, c)] = float(per_image_log_loss(probs, y[first]).mean())
    train_views, balanced, c = min(losses, key=losses.get)
    return {"C": float(c), "balanced": bool(balanced), "train_views": int(train_views), "cv": len(folds),
            "cv_log_loss": losses[(train_views, balanced, c)], "recipes": len(losses)}


def recipe_words(details: dict) -> str:
    """A logistic-regression probe's recipe in words, for logs and the run's reason."""
    if "train_views" not in details:
        return f"C={details.get('C')}"
    views = "mirrored views too" if details["train_views"] > 1 else "unmirrored views only"
    weights = "class weights" if details["balanced"] else "no class weights"
    how = f"by {details['cv']}-fold CV log-loss" if details.get("cv") else "the default: too few images to CV"
    if details.get("kept_recipe"):  # refit with the recipe a probe on part of the images chose
        how += f"{' on the fitting images' if details.get('cv') else ''}, kept for the refit"
    return f"C={details['C']}, {weights}, {views}; {how}"


def out_of_fold_probs(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, c: float, seed: int, balanced: bool, views: int = 1,
    train_views: int | None = None, predict: np.ndarray | None = None,
) -> np.ndarray | None:
    """Out-of-fold probabilities of the identity rows (N images x classes) with the chosen recipe (every
    view of the fitting images unless `train_views` says fewer), or None with too few images per class to
    make folds. Calibration and the unknown threshold are fitted on them. `predict` (N images x views x
    D): features to score instead of the identity rows, each image by the model its fold did not fit
    (N x views x classes): the out-of-fold predictions of a run that predicts with TTA."""
    first = np.arange(0, len(y), views)
    folds = _folds(y[first], groups[first], seed, max_splits=5)
    if folds is None:
        return None
    return _out_of_fold_path(x, y, folds, (c,), seed=seed, balanced=balanced, views=views,
                             train_views=views if train_views is None else train_views, predict=predict)[c]


def _out_of_fold_path(x: np.ndarray, y: np.ndarray, folds: list, cs: tuple[float, ...], *, seed: int,
                      balanced: bool, views: int, train_views: int,
                      predict: np.ndarray | None = None) -> dict[float, np.ndarray]:
    """{C: out-of-fold probabilities of the identity rows (or of each view of `predict`)} for each C of
    `cs` (ascending), fitting on the first `train_views` views of each fold's images. One model per fold
    walks the C path, each fit warm-started from the last: the same optima (convex, to the tolerance) in
    about half the time."""
    first = np.arange(0, len(y), views)
    scored = x[first][:, None] if predict is None else predict
    probs = {c: np.zeros((*scored.shape[:2], int(y.max()) + 1)) for c in cs}
    with quiet_fits():
        for fit, held in folds:
            rows = _view_rows(len(y), views, train_views, fit)
            model = _logreg(cs[0], balanced, seed)
            model[-1].set_params(warm_start=True)
            for c in cs:
                model[-1].set_params(C=c)
                model.fit(x[rows], y[rows])
                for v in range(scored.shape[1]):
                    view_probs = model.predict_proba(scored[held, v])[:, None]
                    probs[c][np.ix_(held, [v], model.classes_)] = view_probs
    out = {c: p / p.sum(axis=2, keepdims=True) for c, p in probs.items()}
    return out if predict is not None else {c: p[:, 0] for c, p in out.items()}


def fit_svm(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, seed: int, balanced: bool
) -> tuple[Pipeline, dict]:
    """RBF SVM on standardized features, probabilities calibrated (sigmoid) on grouped folds."""
    folds = _folds(y, groups, seed)
    if folds is None:
        raise StudioError(
            "The SVM head needs at least two training images per class; label more or use --head logreg."
        )
    svm = SVC(C=1.0, kernel="rbf", class_weight="balanced" if balanced else None, random_state=seed)
    pipeline = make_pipeline(
        StandardScaler(), CalibratedClassifierCV(svm, method="sigmoid", cv=folds, ensemble=False)
    )
    pipeline.fit(x, y)
    return pipeline, {"C": 1.0, "kernel": "rbf", "calibration_folds": len(folds)}


def fit_knn(x: np.ndarray, y: np.ndarray, *, views: int) -> tuple[Pipeline, dict]:
    """Cosine k-NN (L2-normalized features), distance-weighted; k counts images, not views."""
    k = max(1, min(5 * views, len(y) - 1))
    pipeline = make_pipeline(Normalizer(), KNeighborsClassifier(n_neighbors=k, weights="distance"))
    pipeline.fit(x, y)
    return pipeline, {"k": k}


def fit_torch_linear(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    *,
    seed: int,
    class_weight: torch.Tensor | None,
    label_smoothing: float,
    lr: float,
    weight_decay: float,
    epochs: int = 300,
) -> tuple[Pipeline, dict]:
    """A linear layer trained with AdamW on standardized features (full batch, cosine schedule).

    Returned as a scaler + LogisticRegression-shaped pipeline so it folds like logistic regression.
    """
    scaler = StandardScaler().fit(x)
    xs = torch.from_numpy(scaler.transform(x).astype(np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    generator = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(x.shape[1], num_classes)
    with torch.no_grad():
        layer.weight.normal_(0.0, 0.01, generator=generator)
        layer.bias.zero_()
    optimizer = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weight, label_smoothing=label_smoothing)
    for _ in range(epochs):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(layer(xs), yt)
        loss.backward()
        optimizer.step()
        schedule.step()
    estimator = LogisticRegression()
    estimator.classes_ = np.arange(num_classes)
    estimator.coef_ = layer.weight.detach().numpy().astype(np.float64)
    estimator.intercept_ = layer.bias.detach().numpy().astype(np.float64)
    return Pipeline([("standardscaler", scaler), ("logisticregression", estimator)]), {
        "epochs": epochs,
        "lr": lr,
    }


def fold_linear(pipeline: Pipeline, classifier: torch.nn.Linear) -> None:
    """Write scaler + linear model into `classifier` so classifier(features) gives the same logits.

    logits = W ((f - mu) / sigma) + b = (W / sigma) f + (b - W mu / sigma). A binary logistic
    regression has one row z; logits [0, z] give the same softmax probabilities.
    """
    scaler, linear = pipeline[0], pipeline[-1]
    coef = np.asarray(linear.coef_, dtype=np.float64)
    intercept = np.asarray(linear.intercept_, dtype=np.float64)
    if coef.shape[0] == 1:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    width = coef.shape[1]
    scale = np.ones(width) if scaler.scale_ is None else np.asarray(scaler.scale_, dtype=np.float64)
    mean = np.asarray(scaler.mean_, dtype=np.float64) if scaler.with_mean else np.zeros(width)
    weight = coef / scale
    bias = intercept - weight @ mean
    if tuple(classifier.weight.shape) != weight.shape:
        raise ValueError(f"classifier is {tuple(classifier.weight.shape)}, head is {weight.shape}")
    with torch.no_grad():
        classifier.weight.copy_(torch.from_numpy(weight).to(classifier.weight.dtype))
        classifier.bias.copy_(torch.from_numpy(bias).to(classifier.bias.dtype))
