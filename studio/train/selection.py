"""Honest selection: every choice a method makes is fitted on the training split.

`selection_context` splits the run's training images into a part to fit and a part held out to choose
(probe vs fine-tune, epochs, calibration, the unknown threshold). The validation split is not in it:
it is touched once, by the final evaluation, for the reported number.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from studio.predict.calibration import fit_decision
from studio.predict.checkpoint import load_model, read_checkpoint, set_decision
from studio.predict.inference import FLIP_VIEWS, IDENTITY, TTA_VIEWS
from studio.predict.novelty import carries_pretrained_network, fit_novelty, ordinal
from studio.predict.predictor import Predictor
from studio.train.context import Best, RunContext
from studio.train.features import cache_holds, run_features

HOLDOUT_FRACTION = 0.2
SIGNIFICANCE = 2.0  # "clearly": by more than this many standard errors of the paired difference


def holdout_split(
    train: pd.DataFrame, seed: int, fraction: float = HOLDOUT_FRACTION
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit, held out): stratified, each class keeps at least one image to fit; a class with one
    image has none held out."""
    rng = np.random.default_rng(seed)
    held = []
    for _, rows in train.groupby("target", sort=True):
        n_held = round(len(rows) * fraction) if len(rows) >= 2 else 0
        n_held = min(max(n_held, 1 if len(rows) >= 2 else 0), len(rows) - 1)
        held.extend(rng.choice(rows.index.to_numpy(), size=n_held, replace=False).tolist())
    mask = train.index.isin(held)
    return train[~mask].reset_index(drop=True), train[mask].reset_index(drop=True)


def selection_context(ctx: RunContext) -> RunContext:
    """The run seen through its training split only: `snapshot.val` is the held-out part of train."""
    fit, held = holdout_split(ctx.snapshot.train, ctx.config.seed)
    snapshot = dataclasses.replace(ctx.snapshot, train=fit, val=held)
    return dataclasses.replace(ctx, snapshot=snapshot, best=Best())


def fit_run_decision(ctx: RunContext, held: pd.DataFrame, fitted_on: str, tta: bool = False) -> dict:
    """Calibration and unknown threshold from the saved model's predictions on held-out training images
    (the threshold on their TTA average when the run predicts with TTA)."""
    predictor = Predictor(load_model(ctx.folder.checkpoint_path), ctx.device)
    views = predictor.probabilities(held["path"].tolist(), TTA_VIEWS if tta else (IDENTITY,))
    return fit_decision(views[:, 0], held["target"].to_numpy(), fitted_on, views if tta else None)


def fit_run_novelty(ctx: RunContext) -> dict | None:
    """The novelty reference (studio.predict.novelty) of the saved model: the training images' pooled
    features through the pretrained backbone, read from the feature cache the probe filled (the probe's
    views, identity first). A model without a probe network of its own (a fine-tune kept alone) gets the
    pretrained backbone's weights beside it (`backbone_state`). None for random weights (their features
    say nothing of a domain) or when the run was cancelled meanwhile."""
    if ctx.weights_source.kind == "none":
        return None
    backbone = ctx.new_model(num_classes=0)
    train = ctx.snapshot.train
    # The test reads the plain view only: the probe's views when its cache holds them (free), else that
    # view alone (a manual fine-tune's pass: half the cost of extracting the mirrored view too).
    views = FLIP_VIEWS if ctx.config.flip_features and cache_holds(ctx, train, FLIP_VIEWS) else (IDENTITY,)
    features, _ = run_features(ctx, backbone, train, views)
    if ctx.events.cancelled or len(features) < len(train):
        return None
    novelty = fit_novelty(features[:, 0], train["target"].to_numpy(), seed=ctx.config.seed)
    if novelty is not None and not carries_pretrained_network(read_checkpoint(ctx.folder.checkpoint_path)):
        novelty["backbone_state"] = backbone.state_dict()
    return novelty


def store_decision(ctx: RunContext, decision: dict) -> dict | None:
    """Store the run's decision in its checkpoint, with the novelty reference fitted here; returns the
    novelty summary for the run's details ({threshold, k, n, keep, network}; None without one)."""
    novelty = fit_run_novelty(ctx)
    set_decision(ctx.folder.checkpoint_path, {**decision, "novelty": novelty})
    if "tta" in decision:
        ctx.events.log(f"TTA: the run {tta_words(decision['tta'])}.")
    ctx.events.log(
        f"Calibration (on {decision['calibration']['fitted_on']}): temperature "
        f"{decision['calibration']['temperature']:.3f}, ECE {decision['calibration']['ece_before']:.3f} "
        f"-> {decision['calibration']['ece_after']:.3f} there (the run's results give it on val); "
        "predictions below "
        f"{decision['unknown_threshold']:.3f} confidence are flagged unknown."
    )
    return _novelty_summary(ctx, novelty)


NO_HELD_OUT = ("this run has no held-out predictions to fit one on (auto and logistic-regression probe runs "
               "do)")


def store_novelty(ctx: RunContext, why_no_threshold: str = NO_HELD_OUT) -> dict | None:
    """The unknown rule of a run without held-out probabilities (a manual fine-tune, two-stage, gradual,
    which keep no training images aside; an SVM or k-NN probe): nothing to calibrate on or to fit a
    confidence threshold from (a fine-tune's own training images' confidences are fitted to them), but
    the novelty test needs none: it is fitted on the training images' pretrained features, each against
    the others. Stored in the checkpoint the run kept; returns the novelty summary (None for random
    weights, a cancelled run or another rank)."""
    if (ctx.weights_source.kind == "none" or not ctx.world.is_main
            or not ctx.folder.checkpoint_path.is_file()):
        return None
    ctx.events.stage("novelty")
    novelty = fit_run_novelty(ctx)
    if novelty is None:
        return None
    set_decision(ctx.folder.checkpoint_path, {"novelty": novelty})
    ctx.events.log(f"No confidence threshold: {why_no_threshold}; images unlike the training images are "
                   "flagged.")
    return _novelty_summary(ctx, novelty)


def _novelty_summary(ctx: RunContext, novelty: dict | None) -> dict | None:
    """{threshold, k, n, keep, network} of a fitted novelty reference, logged; None without one."""
    if novelty is None:
        return None
    summary = {key: novelty[key] for key in ("threshold", "k", "n", "keep")}
    summary["network"] = "a copy of the pretrained backbone" if "backbone_state" in novelty else "the probe"
    ctx.events.log(
        f"Novelty: images farther than {summary['threshold']:.3f} (cosine distance of the pretrained "
        f"features) from their {ordinal(summary['k'])} nearest of {summary['n']} training images are flagged "
        f"unknown as unlike the training images ({summary['keep']:.0%} of those training images are "
        "within)."
    )
    return summary


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean, standard error) of the per-image differences a - b (the error is inf under two images)."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(diff) < 2:
        return float(diff.mean()) if len(diff) else 0.0, float("inf")
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))


def choose_tta(view_probs: np.ndarray, targets: np.ndarray, fitted_on: str) -> dict:
    """Whether the run predicts with TTA by default, from held-out probabilities of every TTA view
    (N x views x classes, view 0 the plain crop).

    TTA is on unless the plain crop is clearly better on these images: averaging the mirrored and
    whole-frame views helps on average (flowers and mri, bench/engine.py) and a few dozen held-out images
    rarely say more than noise; what they do show is a set where it clearly hurts (a mirror changes the
    class: arrows, text, left/right scans), and there the run predicts plain."""
    targets = np.asarray(targets, dtype=int)
    if not len(targets):  # nothing held out (one image per class): the prior alone
        return {"tta": True, "fitted_on": f"{fitted_on}: none, so the default", "n": 0,
                "accuracy_plain": None, "accuracy_tta": None}
    plain = view_probs[:, 0].argmax(1) == targets
    averaged = view_probs.mean(axis=1).argmax(1) == targets
    hurts = clearly_better(plain, averaged)
    return {"tta": not hurts, "fitted_on": fitted_on, "n": len(targets),
            "accuracy_plain": float(plain.mean()), "accuracy_tta": float(averaged.mean())}


def tta_words(choice: dict) -> str:
    """The TTA choice in words, for logs and the run's reason."""
    if not choice["n"]:
        return "predicts with TTA by default (no held-out training images to check it on)"
    seen = (f"{choice['accuracy_tta']:.1%} with TTA, {choice['accuracy_plain']:.1%} without, on "
            f"{choice['n']} held-out training images")
    return (f"predicts with TTA by default ({seen})" if choice["tta"]
            else f"predicts without TTA by default: it clearly hurt ({seen})")


def clearly_better(a: np.ndarray, b: np.ndarray, significance: float = SIGNIFICANCE) -> bool:
    """Whether per-image scores `a` beat `b` (paired, higher is better) by more than `significance`
    standard errors of their mean difference: on a hundred held-out images two methods often differ by
    a few images of noise alone."""
    mean, error = paired_difference(a, b)
    return mean > significance * error


def average_views(finetune_views: np.ndarray, probe_views: np.ndarray, probe_weight: float) -> np.ndarray:
    """The ensemble's probabilities (N x views x classes): the members' weighted average, view by view,
    as studio.predict.ensemble.ProbabilityAverage computes them."""
    return (1 - probe_weight) * finetune_views + probe_weight * probe_views


def choose_ensemble(finetune_views: np.ndarray, probe_views: np.ndarray, targets: np.ndarray,
                    probe_weight: float, fitted_on: str) -> dict:
    """Whether auto keeps its fine-tune averaged with the linear probe, from held-out probabilities of both
    (N x views x classes, view 0 the plain crop).

    On unless the fine-tune alone is clearly better on these images: the two err on different images, so
    their average usually beats either (a prior, as for TTA); the held-out check is a veto for a set where
    the frozen features mislead."""
    targets = np.asarray(targets, dtype=int)
    if not len(targets):
        return {"ensemble": True, "probe_weight": probe_weight,
                "fitted_on": f"{fitted_on}: none, so the default", "n": 0,
                "accuracy_finetune": None, "accuracy_ensemble": None}
    alone = finetune_views[:, 0].argmax(1) == targets
    averaged = average_views(finetune_views, probe_views, probe_weight)[:, 0].argmax(1) == targets
    return {"ensemble": not clearly_better(alone, averaged), "probe_weight": probe_weight,
            "fitted_on": fitted_on, "n": len(targets), "accuracy_finetune": float(alone.mean()),
            "accuracy_ensemble": float(averaged.mean())}


def ensemble_words(choice: dict) -> str:
    """The ensemble choice in words, for the run's reason."""
    if not choice["n"]:
        return "no held-out training images to check the average on"
    seen = (f"{choice['accuracy_ensemble']:.1%} averaged, {choice['accuracy_finetune']:.1%} fine-tune alone, "
            f"on {choice['n']} held-out training images")
    return seen if choice["ensemble"] else f"the average clearly hurt: {seen}"
