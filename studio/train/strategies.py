"""The training strategies. Each takes the run context and leaves the model it keeps in the run folder.

linear     frozen-backbone features (cached) + a classifier head
finetune   all layers, discriminative learning rates (optional layer-wise decay)
two-stage  linear probe head, then the top block groups with the head at a lower rate
gradual    linear probe head, then one more block group per stage from the top down (ULMFiT)
scratch    random weights, all layers (a baseline only)
auto       linear probe, then a fine-tune of all but the lowest layers (fresh head, weight average)
           when the time budget allows, averaged with the probe (and with more fine-tunes while the
           time left fits one); chooses on held-out training images (never validation), calibrates,
           and says why
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import log_loss

from studio.predict.calibration import fit_decision, per_image_log_loss
from studio.predict.checkpoint import build_model, read_checkpoint, save_checkpoint
from studio.predict.ensemble import ProbabilityAverage
from studio.predict.inference import FLIP_VIEWS, IDENTITY, TTA_VIEWS, View
from studio.predict.predictor import Predictor
from studio.train.backbone_choice import choose_backbone, summary
from studio.train.context import Best, RunContext
from studio.train.data import class_weights
from studio.train.events import Epoch
from studio.train.features import run_features
from studio.train.heads import (
    RECIPE_KEYS,
    fit_knn,
    fit_logreg,
    fit_svm,
    fit_torch_linear,
    fold_linear,
    out_of_fold_probs,
    probe_balance_options,
    recipe_words,
)
from studio.train.loop import Stage, Trainer, Widen, seconds_per_image
from studio.train.schedule import body_group_count, discriminative_groups
from studio.train.selection import (
    average_views,
    choose_ensemble,
    choose_tta,
    clearly_better,
    ensemble_words,
    fit_run_decision,
    selection_context,
    store_decision,
    store_novelty,
    tta_words,
)

ULMFIT_DECAY = 1 / 2.6  # ULMFiT's ratio between the rates of neighbouring layer groups
# Auto's kept fine-tune is averaged with the probe at this weight (unless clearly worse on held-out
# training images). Equal weights, a prior, not tuned: the members' own probabilities are averaged (the
# fine-tune's, trained with label smoothing, are flatter, so where it is unsure the probe decides). Fixed
# splits, 3 seeds, with TTA: flowers fine-tune 91.6%, averaged 92.7%; MRI 95.1%, 95.9% (the members' flowers
# mistakes: 12-14 each, 5-8 shared).
ENSEMBLE_PROBE_WEIGHT = 0.5
# Auto fine-tunes more networks (other seeds) while the time left fits one more: at most this many.
MAX_FINETUNES = 2
# ...and only when the time left is at least this multiple of its epochs' duration, measured on the first.
ANOTHER_FINETUNE_MARGIN = 1.1
# A later fine-tune may be shorter than the first, down to this share of its epochs, to fit the time left:
# whether the second one fitted at full length hung on a few percent of machine speed (MRI, 3 seeds, the
# same day: a second fine-tune on 2 of 3 seeds, 96.7%; on none, 95.9%).
SHORTER_FINETUNE_SHARE = 0.6
# Words for the n-th fine-tune and for n fine-tunes in reasons and logs.
ORDINALS = {2: "second", 3: "third", 4: "fourth", 5: "fifth"}
COUNTS = {2: "two", 3: "three", 4: "four", 5: "five"}


@dataclass
class Outcome:
    """What a strategy did: status, epochs, the strategy actually kept and why."""

    status: str = "done"  # "done" | "cancelled"
    epochs_run: int = 0
    # The strategy whose checkpoint the run kept, for every strategy alike (RunResult.strategy): for auto
    # the method that won on validation ("linear" or "finetune"), otherwise the strategy asked for.
    kept: str = ""
    reason: str = ""
    details: dict = field(default_factory=dict)


@dataclass
class Probe:
    model: torch.nn.Module  # with the folded classifier (logreg/torch heads) or without one (svm/knn)
    val_accuracy: float
    val_accuracy_flip: float
    details: dict
    # logistic-regression probes: out-of-fold probabilities of the training images, and their targets
    out_of_fold: tuple[np.ndarray, np.ndarray] | None = None
    val_probs: np.ndarray | None = None  # identity view, one row per image of the context's val split
    out_of_fold_views: np.ndarray | None = None  # under every TTA view (N x views x classes), when asked


def linear_probe(ctx: RunContext, head: str, strategy: str, *, offer: bool = True,
                 recipe: dict | None = None, tta_out_of_fold: bool = False,
                 report_epoch: bool = True) -> Probe | None:
    """Features (cached) + head. Returns None when cancelled during feature extraction.

    `offer=False`: a probe to be part of an ensemble, fitted on the training split alone: the validation
    split is neither featurized nor scored, no epoch is reported and no checkpoint is offered.
    `recipe`: a logistic-regression head fitted with another probe's recipe (C, class weights, views)
    instead of choosing one by cross-validation.
    `tta_out_of_fold`: the out-of-fold predictions are made under every TTA view too (the views not
    featurized for training are featurized for it), for a probe that will predict with TTA.
    `report_epoch=False`: no epoch event (auto's refit: its curve is its held-out training images, and the
    refit's validation score is the run's reported number, not a point of that curve)."""
    if not offer and head not in ("logreg", "torch"):
        raise ValueError("an ensemble member needs a linear head (logreg or torch)")
    events, config = ctx.events, ctx.config
    if offer:
        events.stage("linear-probe")
    model = ctx.new_model(num_classes=0)
    views = FLIP_VIEWS if config.flip_features else (IDENTITY,)
    train, val = ctx.snapshot.train, ctx.snapshot.val if offer else ctx.snapshot.val.iloc[:0]
    features, stats = run_features(ctx, model, pd.concat([train, val], ignore_index=True), views)
    if events.cancelled:
        return None
    events.log(
        f"Features: {stats.computed} computed ({stats.images_per_s:.1f} images/s), {stats.cached} from cache."
    )
    n_train, n_views = len(train), len(views)
    tta_features = None
    if tta_out_of_fold and head == "logreg":  # before the model gets its classifier (it gives features now)
        tta_features = _tta_features(ctx, model, train, views, features[:n_train])
        if tta_features is None:
            return None
    x_train = features[:n_train].reshape(n_train * n_views, -1)
    y_train = np.repeat(train["target"].to_numpy(), n_views)
    groups = np.repeat(np.arange(n_train), n_views)
    x_val, y_val = features[n_train:], val["target"].to_numpy()
    balanced = ctx.resolved.balance != "none"
    k = ctx.num_classes
    fit_start = time.perf_counter()
    if head == "logreg":
        pipeline, details = fit_logreg(x_train, y_train, groups, seed=config.seed,
                                       balance_options=probe_balance_options(config.balance, balanced),
                                       views=n_views, recipe=recipe)
    elif head == "torch":
        weights = class_weights(ctx.snapshot.class_counts) if balanced else None
        pipeline, details = fit_torch_linear(x_train, y_train, k, seed=config.seed, class_weight=weights,
                                             label_smoothing=ctx.resolved.label_smoothing, lr=ctx.resolved.lr,
                                             weight_decay=config.weight_decay)
    elif head == "svm":
        pipeline, details = fit_svm(x_train, y_train, groups, seed=config.seed, balanced=balanced)
    else:
        pipeline, details = fit_knn(x_train, y_train, views=n_views)
    details = {"head": head, **details, "fit_seconds": round(time.perf_counter() - fit_start, 2),
               "features_computed": stats.computed, "features_cached": stats.cached,
               "features_images_per_s": round(stats.images_per_s, 1)}
    if not offer:
        model.reset_classifier(k)
        fold_linear(pipeline, model.get_classifier())
        return Probe(model, float("nan"), float("nan"), details)
    train_probs = _full_probs(pipeline, x_train, k)
    val_probs = np.stack([_full_probs(pipeline, x_val[:, v], k) for v in range(n_views)], axis=1)
    val_accuracy = float((val_probs[:, 0].argmax(1) == y_val).mean())
    val_accuracy_flip = float((val_probs.mean(1).argmax(1) == y_val).mean())
    val_loss = float(log_loss(y_val, val_probs[:, 0], labels=list(range(k))))
    if report_epoch:
        events.emit(Epoch(
            stage="linear-probe", epoch=1,
            train_loss=float(log_loss(y_train, train_probs, labels=list(range(k)))),
            train_accuracy=float((train_probs.argmax(1) == y_train).mean()),
            val_loss=val_loss, val_accuracy=val_accuracy, lr=None,
            images_per_s=stats.images_per_s, eta_s=0.0,
        ))
    if head in ("logreg", "torch"):
        model.reset_classifier(k)
        fold_linear(pipeline, model.get_classifier())
        make = lambda: ctx.checkpoint(model, strategy, extra={"linear_head": details})
    else:
        make = lambda: ctx.checkpoint(model, strategy, head=head, sklearn_head=pipeline,
                                      extra={"linear_head": details})
    ctx.offer(val_accuracy, val_loss, make, stage="linear-probe", epoch=1, strategy="linear")
    out_of_fold, oof_views = None, None
    if head == "logreg":
        recipe_args = {"c": details["C"], "seed": config.seed, "balanced": details["balanced"],
                       "views": n_views, "train_views": details["train_views"]}
        if tta_features is not None:  # the identity view first: the same out-of-fold models score it
            oof_views = out_of_fold_probs(x_train, y_train, groups, **recipe_args, predict=tta_features)
            oof = None if oof_views is None else oof_views[:, 0]
        else:
            oof = out_of_fold_probs(x_train, y_train, groups, **recipe_args)
        out_of_fold = None if oof is None else (oof, train["target"].to_numpy())
    return Probe(model, val_accuracy, val_accuracy_flip, details, out_of_fold, val_probs[:, 0], oof_views)


def _tta_features(ctx: RunContext, model: torch.nn.Module, rows: pd.DataFrame, views: tuple[View, ...],
                  features: np.ndarray) -> np.ndarray | None:
    """Features of `rows` under every TTA view (N x TTA views x D): the columns of `features` (under
    `views`) where a view is among them, the others extracted (cached). None when cancelled."""
    missing = tuple(v for v in TTA_VIEWS if v not in views)
    extra = None
    if missing:
        extra, _ = run_features(ctx, model, rows, missing)
        if ctx.events.cancelled:
            return None
    return np.stack([features[:, views.index(v)] if v in views else extra[:, missing.index(v)]
                     for v in TTA_VIEWS], axis=1)


def _full_probs(pipeline, x: np.ndarray, k: int) -> np.ndarray:
    """predict_proba with a column for every class (a head may have seen only some of them)."""
    probs = pipeline.predict_proba(x)
    full = np.zeros((len(x), k))
    full[:, pipeline.classes_] = probs
    return full / full.sum(axis=1, keepdims=True)  # exact sums (float32 rounding upsets log_loss)


def _status(stage_status: str) -> str:
    """A run is cancelled or done; early stopping is a normal way to finish."""
    return "cancelled" if stage_status == "cancelled" else "done"


def run_linear(ctx: RunContext) -> Outcome:
    probe = linear_probe(ctx, ctx.config.head, "linear")
    if probe is None:
        return Outcome("cancelled", 0, "linear")
    details = dict(probe.details)
    if probe.out_of_fold is not None:
        oof, targets = probe.out_of_fold
        decision = fit_decision(oof, targets, f"out-of-fold predictions of {len(targets)} training images")
        novelty = store_decision(ctx, decision)
        details.update(decision, novelty=novelty)
    elif probe.details.get("head") == "logreg":
        # a logistic-regression probe without out-of-fold predictions: too few images per class to fold
        details["novelty"] = store_novelty(ctx, "too few training images per class for the out-of-fold "
                                           "predictions it is fitted on (label a few more per class)")
    else:  # an SVM or k-NN head: no out-of-fold probabilities to calibrate on, the novelty test alone
        details["novelty"] = store_novelty(ctx)
    return Outcome("done", 1, "linear", f"linear probe with a {ctx.config.head} head", details)


def _frozen_split(ctx: RunContext, model: torch.nn.Module) -> tuple[int, int]:
    """(block groups below the head, how many of them stay frozen): at least one always trains."""
    depth = body_group_count(model)
    return depth, min(ctx.resolved.frozen_groups, depth - 1)


def fine_tune_groups(ctx: RunContext, model: torch.nn.Module, head_lr: float) -> list[dict]:
    """Optimizer groups for the fine-tune: every block group above the frozen ones, the backbone at
    `backbone_lr` (optionally layer-wise decayed)."""
    depth, frozen = _frozen_split(ctx, model)
    return discriminative_groups(model, head_lr, ctx.resolved.backbone_lr, ctx.config.layer_decay,
                                 top=depth - frozen if frozen > 0 else None)


def trained_layers(ctx: RunContext, model: torch.nn.Module) -> str:
    """What the fine-tune trains, in words (for logs and the run's reason)."""
    depth, frozen = _frozen_split(ctx, model)
    if frozen <= 0:
        return "all layers"
    below = {1: "the stem", 2: "the stem and the lowest block group"}.get(
        frozen, f"the stem and the {frozen - 1} lowest block groups")
    asked = ctx.resolved.frozen_groups
    capped = f"; {asked} frozen were asked for, but one group always trains" if asked > frozen else ""
    return f"the top {depth - frozen} of {depth} layer groups ({below} frozen{capped})"


def run_finetune(ctx: RunContext, model: torch.nn.Module | None = None, *, strategy: str = "finetune",
                 epochs: int | None = None, head_lr: float | None = None) -> Outcome:
    """All layers (or all above `frozen_groups`): the head at `lr`, the backbone at `backbone_lr`."""
    resolved = ctx.resolved
    model = model if model is not None else ctx.new_model()
    groups = fine_tune_groups(ctx, model, head_lr or resolved.lr)
    trainer = Trainer(ctx, model, strategy)
    result = trainer.run(Stage("finetune", epochs or resolved.epochs, groups, ctx.config.warmup_epochs))
    ended = {"early-stopped": ", stopped early (validation no longer improved)", "cancelled": ", cancelled"}
    epochs_text = f"{result.epochs_run} epoch{'s' if result.epochs_run != 1 else ''}"
    return finish_manual(ctx, Outcome(
        _status(result.status), result.epochs_run, strategy,
        f"fine-tuned {trained_layers(ctx, model)} for {epochs_text}{ended.get(result.status, '')}"))


def finish_manual(ctx: RunContext, outcome: Outcome) -> Outcome:
    """A manual fine-tune (finetune, two-stage, gradual, scratch) at its end: when done, its unknown rule,
    the novelty test alone (studio.train.selection.store_novelty; auto and probe runs fit theirs in
    their strategy); with early stopping, the reason says the kept epoch was chosen on validation."""
    if outcome.status == "done":
        outcome.details["novelty"] = store_novelty(ctx)
    if ctx.resolved.patience:
        outcome.reason += ("; the best epoch on validation was kept (--patience), so its validation "
                           "accuracy is optimistic")
    return outcome


def run_scratch(ctx: RunContext) -> Outcome:
    outcome = run_finetune(ctx, strategy="scratch", head_lr=ctx.resolved.lr)
    outcome.reason = "trained from random weights (baseline only)"
    return outcome


def run_two_stage(ctx: RunContext) -> Outcome:
    probe = linear_probe(ctx, "logreg", "two-stage")
    if probe is None:
        return Outcome("cancelled", 0, "two-stage")
    model, resolved, top = probe.model, ctx.resolved, ctx.config.unfreeze_groups
    # The head already fits: in stage 2 it learns at a tenth of its usual rate, beside the top blocks.
    groups = discriminative_groups(
        model, resolved.lr / 10, resolved.backbone_lr, ctx.config.layer_decay, top=top
    )
    result = Trainer(ctx, model, "two-stage").run(Stage(f"top-{top}-blocks", resolved.epochs, groups,
                                                        ctx.config.warmup_epochs))
    return finish_manual(ctx, Outcome(
        _status(result.status), 1 + result.epochs_run, "two-stage",
        f"head on frozen features, then the top {top} block groups ({result.status})"))


def run_gradual(ctx: RunContext) -> Outcome:
    probe = linear_probe(ctx, "logreg", "gradual")
    if probe is None:
        return Outcome("cancelled", 0, "gradual")
    model, resolved = probe.model, ctx.resolved
    trainer = Trainer(ctx, model, "gradual")
    depth = body_group_count(model)
    stages = min(depth, resolved.epochs)
    per_stage = max(1, resolved.epochs // stages)
    decay = ctx.config.layer_decay or ULMFIT_DECAY
    for unfrozen in range(1, stages + 1):
        groups = discriminative_groups(model, resolved.lr / 10, resolved.backbone_lr, decay, top=unfrozen)
        result = trainer.run(Stage(f"unfreeze-{unfrozen}", per_stage, groups, warmup_epochs=0.0))
        if result.status == "cancelled":
            return Outcome("cancelled", 1 + trainer.epochs_run, "gradual")
    return finish_manual(ctx, Outcome(
        "done", 1 + trainer.epochs_run, "gradual",
        f"head on frozen features, then unfroze {stages} of {depth} block groups one per stage"))


def run_auto(ctx: RunContext, started: float) -> Outcome:
    """Backbone by cross-validated probes; linear probe; then a fine-tune when the speed fits the budget.

    The backbone is compared first (studio.train.backbone_choice: out-of-fold probes on training images).

    Every choice is made on the training split (studio.train.selection): a fifth of it is held out. The
    probe fitted on the rest is scored there; the fine-tune trains on the rest for the first third of its
    epochs and is scored there too. It goes on only when the probe is not clearly better (studio.train.
    selection.clearly_better); the calibration and the unknown threshold are fitted on its held-out
    predictions at that point, and then the held-out images join the training for the rest of the schedule
    (a fixed warmup + cosine, the last weight average kept): with a few hundred images every one counts
    (flowers, seed 0: 90.7% on 4/5 of them, 93.3% on all; within noise over 3 seeds). The validation split
    is only evaluated at the end, for the reported number. A kept probe is refit on the whole training split
    (C again by cross-validation on it), calibrated on its out-of-fold predictions; a probe averaged with
    the fine-tunes is refit on it with the recipe chosen on the fitting images, the one the held-out
    calibration saw.

    The fine-tune starts from a fresh head (the probe's head, fitted to near-zero training loss,
    leaves little gradient for the backbone: LP-FT lost to it on flowers and mri, see bench/engine.py),
    with the backbone at a fifth of the head's rate, label smoothing and a weight average (EMA). The
    stem and the lowest block groups stay frozen (`frozen_groups`): generic low-level features, and
    on CPU the backward pass through them is the most expensive part of a step.
    """
    choice = choose_backbone(ctx, started)
    if choice is None:
        return Outcome("cancelled", 0, "linear")
    if choice.chosen != ctx.backbone:  # the run goes on with the chosen backbone (the engine records it)
        chosen = choice.context
        ctx.backbone, ctx.weights_source = chosen.backbone, chosen.weights_source
        ctx.resolved, ctx.preprocessing = chosen.resolved, chosen.preprocessing
    chose = summary(choice)
    if choice.scores:
        ctx.events.log(f"Auto: {chose}.")
    inner = selection_context(ctx)
    held = inner.snapshot.val
    ctx.events.log(
        f"Auto: choices are made on the training split ({len(inner.snapshot.train)} images to fit, "
        f"{len(held)} held out to choose); the validation split is used once, for the reported number."
    )
    outcome = _auto_on(inner, ctx, started, reserve_images=4 * len(ctx.snapshot.val))
    outcome.reason = f"{chose}; {outcome.reason}"
    outcome.details["backbone_choice"] = choice.to_dict()
    if outcome.status == "cancelled" or not ctx.folder.checkpoint_path.is_file():
        ctx.best = inner.best
        return outcome
    if outcome.kept == "linear":  # refit on every training image: cheap, and the probe gains from them
        tta = outcome.details.pop("tta")
        # Predicting with TTA: the unknown threshold is fitted on out-of-fold TTA averages, what it reads.
        refit = linear_probe(ctx, "logreg", "auto", tta_out_of_fold=tta["tta"], report_epoch=False)
        if refit is None:
            return Outcome("cancelled", outcome.epochs_run, "linear", outcome.reason)
        outcome.reason += f"; refit on the whole training split ({recipe_words(refit.details)})"
        outcome.details["C"] = refit.details.get("C")
        outcome.details["probe_recipe"] = {k: refit.details.get(k) for k in RECIPE_KEYS}
        oof, targets = refit.out_of_fold or (None, None)
        decision = (
            fit_decision(oof, targets, f"out-of-fold predictions of {len(targets)} training images",
                         refit.out_of_fold_views)
            if oof is not None
            else fit_run_decision(ctx, held, f"{len(held)} held-out training images", tta["tta"])
        )
        decision["tta"] = tta
    else:
        ctx.best = inner.best
        decision = outcome.details.pop("decision")
    novelty = store_decision(ctx, decision)
    outcome.details.update(decision, novelty=novelty)
    outcome.reason += f"; {tta_words(decision['tta'])}"
    return outcome


def plan_epochs(most: int, fit_epoch_s: float, wide_epoch_s: float, seconds: float) -> int:
    """The most epochs (up to `most`) whose first third on the fitting images (`fit_epoch_s` each, with
    the held-out scoring) and the rest on all training images (`wide_epoch_s`) fit in `seconds`."""
    for epochs in range(most, 1, -1):
        narrow = check_epoch(epochs)
        if narrow * fit_epoch_s + (epochs - narrow) * wide_epoch_s <= seconds:
            return epochs
    return 0


def check_epoch(epochs: int) -> int:
    """The epoch after which the fine-tune is scored on the held-out images: a third of the way, so that
    most of the schedule trains on every image (flowers, seed 0: 90.0% with the check halfway, 93.3% with
    all 9 epochs on every image)."""
    return max(1, epochs // 3)


def held_out_views(ctx: RunContext, model: torch.nn.Module) -> np.ndarray:
    """Probabilities of `model` for the held-out images (ctx.snapshot.val) under every TTA view."""
    loaded = build_model(ctx.checkpoint(model, "auto"))
    return Predictor(loaded, ctx.device).probabilities(ctx.snapshot.val["path"].tolist(), TTA_VIEWS)


def _auto_on(ctx: RunContext, full: RunContext, started: float, reserve_images: int) -> Outcome:
    """Auto's choices on `ctx`, whose `snapshot.val` is the held-out part of the training split (`full`
    is the run with all of it); `reserve_images` inference passes are left in the budget for the final
    evaluation. A kept probe's TTA choice (studio.train.selection.choose_tta) is in `details["tta"]`;
    a kept fine-tune's is in its `details["decision"]`."""
    probe = linear_probe(ctx, "logreg", "auto")
    if probe is None:
        return Outcome("cancelled", 0, "linear")
    outcome = _probe_or_finetune(ctx, full, started, reserve_images, probe)
    if outcome.kept == "linear" and outcome.status == "done":
        held = ctx.snapshot.val
        outcome.details["tta"] = choose_tta(held_out_views(ctx, probe.model), held["target"].to_numpy(),
                                            f"{len(held)} held-out training images (linear probe)")
    return outcome


def _probe_or_finetune(ctx: RunContext, full: RunContext, started: float, reserve_images: int,
                       probe: Probe) -> Outcome:
    """The fine-tune when the budget allows and the probe is not clearly better on the held-out images."""
    resolved, events = ctx.resolved, ctx.events
    held = ctx.snapshot.val
    lp = f"linear probe {probe.val_accuracy:.1%} on held-out training images ({recipe_words(probe.details)})"
    if probe.val_accuracy >= 1.0:
        return Outcome("done", 1, "linear", f"{lp}: already perfect, fine-tuning cannot do better",
                       {"probe_C": probe.details.get("C")})
    model = ctx.new_model()
    groups = fine_tune_groups(ctx, model, resolved.lr)
    trainer = Trainer(ctx, model, "auto")
    per_image = seconds_per_image(trainer, Stage("probe", 1, groups))
    n_fit, n_held = len(ctx.snapshot.train), len(held)
    # Training dominates; scoring (inference only) costs about a third of a training step per image.
    fit_epoch = per_image * (1.1 * n_fit + n_held / 3)
    wide_epoch = per_image * 1.1 * (n_fit + n_held)
    # An ensemble scores the probe's held-out views and doubles the final evaluation's inference.
    ensemble_images = reserve_images + n_held if ctx.config.ensemble else 0
    final_eval_seconds = per_image * (reserve_images + n_held + ensemble_images) / 3

    def seconds_left() -> float:
        return resolved.time_budget_s - (time.perf_counter() - started) - final_eval_seconds

    if resolved.epochs < 2:
        return Outcome("done", 1, "linear",
                       f"{lp}; a fine-tune needs at least 2 epochs (one scored on the held-out images, one "
                       f"on every image), {resolved.epochs} asked for: kept the probe",
                       {"probe_C": probe.details.get("C")})
    epochs = plan_epochs(resolved.epochs, fit_epoch, wide_epoch, seconds_left())
    if epochs < 2:
        return Outcome("done", 1, "linear",
                       f"{lp}; fine-tuning would take ~{wide_epoch:.0f} s/epoch, and at least 2 epochs do "
                       f"not fit in the ~{max(0.0, seconds_left()):.0f} s left of the "
                       f"{resolved.time_budget_s:.0f} s budget, so the probe was kept",
                       {"probe_C": probe.details.get("C")})
    events.log(f"Auto: {lp}; fine-tuning {trained_layers(ctx, model)} for up to {epochs} epochs "
               f"(~{fit_epoch:.0f} s each on {n_fit} images, then ~{wide_epoch:.0f} s on all "
               f"{n_fit + n_held}).")
    stage = Stage("finetune", epochs, groups, warmup_epochs=min(1.0, epochs / 4))

    def replan(first_epoch_seconds: float) -> int:
        """The plan again from the first epoch's real duration: a few warm-up steps misjudge it by up to
        1.5x (the first epoch is done: plan the rest)."""
        scale = first_epoch_seconds / fit_epoch
        rest = plan_epochs(resolved.epochs, fit_epoch * scale, wide_epoch * scale,
                           seconds_left() + first_epoch_seconds)
        planned = max(rest, 2)
        if planned != epochs:
            events.log(f"Auto: the first epoch took {first_epoch_seconds:.0f} s; planning {planned} epochs "
                       f"instead of {epochs}.")
        stage.widen.after_epoch = check_epoch(planned)
        return planned

    checked: dict = {}

    def check() -> bool:
        """Go on (True) unless the probe is clearly better on the held-out images; fit the decision."""
        views = held_out_views(ctx, trainer.evaluated_model)
        probs = views[:, 0]
        targets = held["target"].to_numpy()
        correct = probs.argmax(1) == targets
        checked.update(accuracy=float(correct.mean()), epoch=trainer.epochs_run,
                       probe_better=clearly_better(probe.val_probs.argmax(1) == targets, correct))
        if checked["probe_better"]:
            events.log(f"Auto: after {trainer.epochs_run} epochs the fine-tune reached "
                       f"{correct.mean():.1%} on the held-out images, clearly below the probe: stopped.")
            return False
        fitted_on = f"{n_held} held-out training images (fine-tune after epoch {trainer.epochs_run})"
        checked["finetune_views"] = views
        if ctx.config.ensemble:
            checked["probe_views"] = probe_views = held_out_views(ctx, probe.model)
            checked["ensemble"] = choose_ensemble(views, probe_views, targets, ENSEMBLE_PROBE_WEIGHT,
                                                  fitted_on)
            events.log(f"Auto: the fine-tune averaged with the probe: {ensemble_words(checked['ensemble'])}"
                       f"{'' if checked['ensemble']['ensemble'] else '; the fine-tune stays alone'}.")
        checked["fitted_on"] = fitted_on
        _decide(ctx, checked, [views], targets, stage.name, trainer.epochs_run)
        return True

    stage.replan = replan
    stage.widen = Widen(check_epoch(epochs), full, check)
    finetune_started = time.perf_counter()
    result = trainer.run(stage)
    finetune_seconds = time.perf_counter() - finetune_started
    details = {"probe_C": probe.details.get("C"), "finetune_epochs_planned": stage.epochs,
               "checked_after_epoch": checked.get("epoch"),
               "finetune_held_out_accuracy": checked.get("accuracy")}
    ft = f"fine-tune {stage.epochs} epochs planned"
    if result.status == "cancelled":  # the checkpoint is the probe's until a widened epoch is saved
        widened = "decision" in checked and trainer.epochs_run > checked["epoch"]
        return Outcome("cancelled", 1 + trainer.epochs_run, "finetune" if widened else "linear",
                       f"{lp}; {ft}, cancelled", details)
    if "decision" not in checked:
        return Outcome("done", 1 + trainer.epochs_run, "linear",
                       f"{lp}; {ft}, {checked.get('accuracy', 0):.1%} there after {checked.get('epoch')} "
                       "epochs, clearly below the probe: kept the linear probe", details)
    reason = (f"{lp}; {ft}: {checked['accuracy']:.1%} there after {checked['epoch']} epochs (the probe "
              f"not clearly better), then {trainer.epochs_run - checked['epoch']} more epochs on all "
              f"{n_fit + n_held} training images")
    epochs_run = 1 + trainer.epochs_run
    choice = checked.get("ensemble")
    if choice is None:  # one network asked for (ensemble off)
        details["decision"] = checked["decision"]
        return Outcome(_status(result.status), epochs_run, "finetune", f"{reason}: kept the fine-tuned model",
                       details)
    details["ensemble"] = choice
    finetuned = [build_model(read_checkpoint(full.folder.checkpoint_path)).model]
    finetune_views = [checked["finetune_views"]]
    # More fine-tunes (other seeds) while the time left fits one more (another_finetune_epochs), with the
    # inference of one more member in the final evaluation: small sets finish their planned epochs early.
    one_more_eval = per_image * (reserve_images + n_held) / 3
    epoch_seconds = finetune_seconds / max(1, trainer.epochs_run)
    while len(finetuned) < MAX_FINETUNES:
        more_epochs = another_finetune_epochs(seconds_left() - one_more_eval * len(finetuned), epoch_seconds,
                                              stage.epochs)
        if not more_epochs:
            break
        more = _another_finetune(ctx, full, stage, more_epochs, checked, finetune_views,
                                 held["target"].to_numpy())
        epochs_run += more.epochs_run
        if more.status == "cancelled":  # the kept fine-tunes' weights go back in the run's file
            save_ensemble(full, finetuned, None, 0.0)
            return Outcome("cancelled", epochs_run, "finetune", f"{reason}; {more.reason}", details)
        details.setdefault("more_finetunes", []).append(more.details)
        reason += f"; {more.reason}"
        if not more.kept:  # another seed would most likely be left out too
            break
        finetuned.append(build_model(read_checkpoint(full.folder.checkpoint_path)).model)
        finetune_views.append(more.views)
    details["decision"] = checked["decision"]
    if not choice["ensemble"] and len(finetuned) == 1:
        if "more_finetunes" in details:  # the file holds the fine-tune that was left out
            save_ensemble(full, finetuned, None, 0.0)
        return Outcome(_status(result.status), epochs_run, "finetune",
                       f"{reason}: kept the fine-tuned model alone ({ensemble_words(choice)})", details)
    member = None
    if choice["ensemble"]:
        # The probe's recipe as chosen on the fitting images: the calibration and the unknown threshold
        # were fitted on the held-out predictions of a probe with it, and a recipe chosen again on every
        # image can change the probe's confidence (C 3 -> 0.3 on a 70-image set: half of its validation
        # images fell below the threshold; 11% with the recipe kept, the same accuracy).
        member = linear_probe(full, "logreg", "auto", offer=False, recipe=probe.details)
        if member is None:  # cancelled while featurizing: the fine-tuned weights stay (averaged, if two)
            if "more_finetunes" in details:
                save_ensemble(full, finetuned, None, 0.0)
            return Outcome("cancelled", epochs_run, "finetune", f"{reason}, cancelled", details)
        details["probe_recipe"] = {k: member.details.get(k) for k in RECIPE_KEYS}
    save_ensemble(full, finetuned, member, choice["probe_weight"] if member is not None else 0.0)
    count = COUNTS.get(len(finetuned), str(len(finetuned)))
    networks = "the fine-tuned model" if len(finetuned) == 1 else f"the {count} fine-tuned models"
    kept = (f"kept {networks} averaged with a linear probe refit on all {n_fit + n_held} training images "
            f"({recipe_words(member.details)}; {ensemble_words(choice)})" if member is not None
            else f"kept {networks} averaged, without the probe ({ensemble_words(choice)})")
    return Outcome(_status(result.status), epochs_run, "ensemble", f"{reason}: {kept}", details)


def another_finetune_epochs(seconds: float, epoch_seconds: float, first_epochs: int) -> int:
    """Epochs of one more fine-tune that fit in `seconds` (with the margin, at `epoch_seconds` each), at most
    the first's; 0 when fewer than `SHORTER_FINETUNE_SHARE` of them fit."""
    fits = min(first_epochs, int(seconds / (ANOTHER_FINETUNE_MARGIN * epoch_seconds)))
    return fits if fits >= max(2, math.ceil(SHORTER_FINETUNE_SHARE * first_epochs)) else 0


def _kept_views(checked: dict, finetune_views: list[np.ndarray]) -> np.ndarray:
    """Held-out probabilities (N x views x classes) of the model auto keeps: the fine-tunes' mean,
    averaged with the probe when the probe joins it."""
    views = np.mean(finetune_views, axis=0)
    if checked.get("ensemble", {}).get("ensemble"):
        views = average_views(views, checked["probe_views"], ENSEMBLE_PROBE_WEIGHT)
    return views


def _decide(ctx: RunContext, checked: dict, finetune_views: list[np.ndarray], targets: np.ndarray,
            stage: str, epoch: int) -> None:
    """Fit the run's decision (calibration, unknown threshold, TTA) on the held-out predictions of the
    model auto will keep: the fine-tunes' average, averaged with the probe when the probe joins it."""
    views = _kept_views(checked, finetune_views)
    fitted_on = checked["fitted_on"]
    if len(finetune_views) > 1:
        extra = len(finetune_views) - 1
        more = "a second fine-tune" if extra == 1 else f"{extra} more fine-tunes"
        fitted_on += f", averaged with {more} (after their epoch {epoch})"
    if checked.get("ensemble", {}).get("ensemble"):
        fitted_on += ", averaged with the probe"
    probs = views[:, 0]
    tta = choose_tta(views, targets, fitted_on)
    # The unknown threshold reads the confidence the run predicts with: the TTA average when TTA is on.
    decision = fit_decision(probs, targets, fitted_on, views if tta["tta"] else None)
    checked["decision"] = {**decision, "tta": tta}
    ctx.best = Best(float((probs.argmax(1) == targets).mean()),
                    float(per_image_log_loss(probs, targets).mean()), stage, epoch, "auto")


@dataclass
class MoreFinetune:
    status: str  # "done" | "cancelled"
    epochs_run: int
    kept: bool = False
    reason: str = ""
    details: dict = field(default_factory=dict)
    views: np.ndarray | None = None  # its held-out probabilities at the check (N x views x classes)


def _another_finetune(ctx: RunContext, full: RunContext, first: Stage, epochs: int, checked: dict,
                      finetune_views: list[np.ndarray], targets: np.ndarray) -> MoreFinetune:
    """The first fine-tune's recipe again for `epochs` (its own or fewer, to fit the time left) from a
    fresh head with another seed (batch order, augmentation, head), scored on the same held-out images a
    third of the way through, then trained on every training image. It joins the average unless the
    model without it (the kept fine-tunes' `finetune_views`) is clearly better on the held-out images
    (the same veto as for the probe); the run's decision is then refitted with it. Two fine-tunes err
    less alike than one fine-tune's epochs: on MRI (41 val images) the average with the probe was right
    on 40 in every pair of 3 seeds, on 39-40 with one fine-tune."""
    model = ctx.new_model()
    number = len(finetune_views) + 1
    seed = ctx.config.seed + number - 1
    trainer = Trainer(ctx, model, "auto", seed=seed)
    seen: dict = {}

    def check() -> bool:
        seen["views"] = held_out_views(ctx, trainer.evaluated_model)
        seen["epoch"] = trainer.epochs_run
        return True

    stage = Stage(f"finetune-{number}", epochs, fine_tune_groups(ctx, model, ctx.resolved.lr),
                  min(first.warmup_epochs, epochs / 4))
    stage.widen = Widen(check_epoch(epochs), full, check)
    nth = ORDINALS.get(number, f"#{number}")
    ctx.events.log(f"Auto: time is left for a {nth} fine-tune ({stage.epochs} epochs, seed {seed}), to be "
                   "averaged with the kept ones.")
    result = trainer.run(stage)
    if result.status == "cancelled" or "views" not in seen:
        return MoreFinetune("cancelled", trainer.epochs_run, reason=f"a {nth} fine-tune, cancelled")

    def correct(views: list[np.ndarray]) -> np.ndarray:
        return _kept_views(checked, views)[:, 0].argmax(1) == targets

    without, with_it = correct(finetune_views), correct([*finetune_views, seen["views"]])
    kept = not clearly_better(without, with_it)
    details = {"seed": seed, "epochs": trainer.epochs_run, "kept": kept, "n": len(targets),
               "accuracy_without": float(without.mean()), "accuracy_with": float(with_it.mean())}
    seen_on = (f"{with_it.mean():.1%} with it, {without.mean():.1%} without, on {len(targets)} held-out "
               "training images")
    if not kept:
        return MoreFinetune("done", trainer.epochs_run, False,
                            f"a {nth} fine-tune (seed {seed}) clearly hurt ({seen_on}): left out", details)
    _decide(ctx, checked, [*finetune_views, seen["views"]], targets, first.name, seen["epoch"])
    return MoreFinetune("done", trainer.epochs_run, True,
                        f"a {nth} fine-tune (seed {seed}, {trainer.epochs_run} epochs) fitted in the time "
                        f"left and joined the average ({seen_on})", details, seen["views"])


def save_ensemble(ctx: RunContext, finetuned: list[torch.nn.Module], probe: Probe | None,
                  probe_weight: float) -> None:
    """The run's checkpoint as the average of the fine-tuned networks (equal shares) and `probe` (at
    `probe_weight`), one model file: prediction, evaluation and export see one network. One fine-tuned
    network without a probe is saved as it is."""
    if not ctx.world.is_main:
        return
    share = (1 - probe_weight) / len(finetuned) if probe is not None else 1 / len(finetuned)
    members = list(finetuned) + ([probe.model] if probe is not None else [])
    if len(members) == 1:
        save_checkpoint(ctx.checkpoint(members[0], "auto"), ctx.folder.checkpoint_path)
        return
    weights = [share] * len(finetuned) + ([probe_weight] if probe is not None else [])
    names = (["fine-tuned network"] if len(finetuned) == 1
             else [f"fine-tuned network {i + 1}" for i in range(len(finetuned))])
    names += ["linear probe on the pretrained backbone"] if probe is not None else []
    extra = {"ensemble_members": names, **({"linear_head": probe.details} if probe is not None else {})}
    save_checkpoint(ctx.checkpoint(ProbabilityAverage(members, weights), "auto", extra=extra),
                    ctx.folder.checkpoint_path)
