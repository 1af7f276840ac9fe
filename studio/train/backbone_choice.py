"""Auto's backbone choice: cheap probes compared by cross-validation on the training split.

Each candidate backbone embeds (at most) `COMPARE_IMAGES` training images, identity view; a logistic
regression (C by 3-fold CV) then gives out-of-fold probabilities, and the candidates are compared by
their per-image out-of-fold log-loss. The validation split is never read.

The first candidate (the run's `backbone`, Lite0 by default: the cheapest) is the reference. Another one
replaces it only when it is better by more than twice the standard error of the paired per-image
difference: on a few hundred images two backbones often differ by noise alone, and the reference is
the cheapest to fine-tune and to run. The comparison may spend at most `COMPARE_SHARE` of the time
budget; a candidate whose extraction would not fit is stopped and reported as skipped.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from studio.errors import StudioError
from studio.models.registry import check_backbone
from studio.models.weights import BUNDLED_WEIGHTS, bundled_weights_path, create_backbone, data_config
from studio.predict.calibration import per_image_log_loss
from studio.predict.checkpoint import preprocessing_dict
from studio.predict.inference import IDENTITY
from studio.train.config import resolve
from studio.train.context import RunContext
from studio.train.features import run_features
from studio.train.heads import choose_logreg_recipe, out_of_fold_probs, probe_balance_options
from studio.train.selection import SIGNIFICANCE, clearly_better, paired_difference

COMPARE_IMAGES = 300  # training images each candidate embeds for the comparison (stratified sample)
COMPARE_SHARE = 0.35  # at most this share of the time budget goes to the comparison


@dataclass
class CandidateScore:
    backbone: str
    status: str  # "compared" | "skipped"
    cv_accuracy: float | None = None
    cv_log_loss: float | None = None
    C: float | None = None
    seconds: float = 0.0
    note: str = ""


@dataclass
class BackboneChoice:
    chosen: str
    images: int
    scores: list[CandidateScore] = field(default_factory=list)
    why: str = ""
    # the run seen through the chosen backbone (weights, preprocessing, resolved image size)
    context: RunContext | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {"chosen": self.chosen, "images": self.images, "why": self.why,
                "candidates": [asdict(s) for s in self.scores]}


def candidate_backbones(ctx: RunContext) -> list[str]:
    """The run's backbone first, then (when it is the default and no weights file is named) the other
    bundled backbones whose weights are installed, and any the user listed (`config.candidates`)."""
    config = ctx.config
    first = ctx.backbone
    if config.weights is not None or not config.uses_pretrained:
        return [first]  # a weights file (or random weights) names one architecture
    if config.candidates is not None:
        names = [first, *(check_backbone(n) for n in config.candidates)]
    elif ctx.weights_source.kind == "bundled":
        names = [first, *(n for n in BUNDLED_WEIGHTS if bundled_weights_path(n) is not None)]
    else:
        names = [first]  # a hub backbone the user picked: compare nothing behind their back
    return list(dict.fromkeys(names))


def with_backbone(ctx: RunContext, name: str) -> RunContext:
    """`ctx` with another backbone: its weights, its preprocessing and the image size it resolves to."""
    model, source = create_backbone(name, num_classes=0, weights=ctx.config.weights,
                                    pretrained=ctx.config.uses_pretrained)
    cfg = data_config(model)
    resolved = resolve(ctx.config, n_train=len(ctx.snapshot.train), class_counts=ctx.snapshot.class_counts,
                       device_type=ctx.device.type, default_image_size=cfg["image_size"])
    return replace(ctx, backbone=name, weights_source=source, resolved=resolved,
                   preprocessing=preprocessing_dict(resolved.image_size, cfg))


def compare_sample(train: pd.DataFrame, seed: int, limit: int = COMPARE_IMAGES) -> pd.DataFrame:
    """A stratified sample of at most `limit` training images (all of them when fewer)."""
    if len(train) <= limit:
        return train
    share = limit / len(train)
    parts = [rows.sample(n=max(1, round(len(rows) * share)), random_state=seed)
             for _, rows in train.groupby("target", sort=True)]
    return pd.concat(parts).sort_index()


def _embed(ctx: RunContext, rows: pd.DataFrame, deadline: float) -> tuple[np.ndarray | None, str]:
    """Identity-view features of `rows` (cached like the probe's), or None with why it stopped."""
    over = {"budget": False}

    def on_eta(seconds: float) -> None:
        over["budget"] = time.perf_counter() + seconds > deadline

    features, _ = run_features(ctx, ctx.new_model(num_classes=0), rows, (IDENTITY,),
                               should_stop=lambda: over["budget"], on_eta=on_eta)
    if ctx.events.cancelled:
        return None, "cancelled"
    if len(features) != len(rows):
        return None, "its features would not fit in the comparison's share of the time budget"
    return features[:, 0], ""


def _score(
    x: np.ndarray, y: np.ndarray, seed: int, balance_options: tuple[bool, ...]
) -> tuple[np.ndarray, float, np.ndarray] | None:
    """Per-image out-of-fold log-loss, the C chosen for it and whether each image was right, or None
    with too few images per class."""
    groups = np.arange(len(y))
    recipe = choose_logreg_recipe(x, y, groups, seed=seed, balance_options=balance_options)
    probs = out_of_fold_probs(x, y, groups, c=recipe["C"], seed=seed, balanced=recipe["balanced"])
    if probs is None:
        return None
    return per_image_log_loss(probs, y), recipe["C"], probs.argmax(1) == y


def choose_backbone(ctx: RunContext, started: float) -> BackboneChoice | None:
    """Compare the candidates on the training split and return the choice (None when cancelled)."""
    names = candidate_backbones(ctx)
    rows = compare_sample(ctx.snapshot.train, ctx.config.seed)
    if len(names) == 1:
        return BackboneChoice(names[0], 0, [], "the only candidate (a named weights file or backbone)")
    ctx.events.stage("choose-backbone")
    deadline = started + COMPARE_SHARE * ctx.resolved.time_budget_s
    y = rows["target"].to_numpy()
    balance_options = probe_balance_options(ctx.config.balance, ctx.resolved.balance != "none")
    scores: list[CandidateScore] = []
    losses: dict[str, np.ndarray] = {}
    contexts: dict[str, RunContext] = {}
    for name in names:
        begin = time.perf_counter()
        try:
            candidate = ctx if name == ctx.backbone else with_backbone(ctx, name)
        except StudioError as error:  # e.g. hub weights that cannot be downloaded here
            scores.append(CandidateScore(name, "skipped", note=str(error).split(". ")[0]))
            continue
        features, why = _embed(candidate, rows, deadline if scores else float("inf"))
        if why == "cancelled":
            return None
        seconds = time.perf_counter() - begin
        if features is None:
            scores.append(CandidateScore(name, "skipped", seconds=round(seconds, 1), note=why))
            continue
        scored = _score(features, y, ctx.config.seed, balance_options)
        if scored is None:  # too few images per class to cross-validate: keep the reference
            return BackboneChoice(names[0], len(rows), [], "too few images per class to compare backbones")
        loss, c, correct = scored
        losses[name], contexts[name] = loss, candidate
        scores.append(CandidateScore(name, "compared", float(correct.mean()), float(loss.mean()), c,
                                     round(time.perf_counter() - begin, 1)))
        ctx.events.log(f"Backbone {name}: out-of-fold accuracy {correct.mean():.1%}, log-loss "
                       f"{loss.mean():.3f} on {len(rows)} training images (C={c}, {seconds:.0f} s).")
    reference = names[0]
    if len(losses) == 1:
        return BackboneChoice(reference, len(rows), scores,
                              f"kept {reference}, the only one compared in time")
    best = min(losses, key=lambda n: losses[n].mean())
    why = f"{reference} (the reference) had the lowest out-of-fold log-loss"
    if best != reference:
        gain, error = paired_difference(losses[reference], losses[best])  # lower loss is better
        if clearly_better(losses[reference], losses[best]):
            why = (f"{best} beat {reference} by {gain:.3f} log-loss per image "
                   f"(over {SIGNIFICANCE:g} standard errors; SE {error:.3f})")
        else:
            why = (f"{best} was better by {gain:.3f} log-loss per image, within "
                   f"{SIGNIFICANCE:g} standard errors of noise (SE {error:.3f}): "
                   f"kept {reference}, the cheapest")
            best = reference
    return BackboneChoice(best, len(rows), scores, why, contexts[best])


def summary(choice: BackboneChoice) -> str:
    """One line for the run's reason: what was tried and why it won."""
    if not choice.scores:
        return f"backbone {choice.chosen} ({choice.why})"
    tried = ", ".join(
        f"{s.backbone.removeprefix('tf_efficientnet_')} {s.cv_accuracy:.1%}" if s.status == "compared"
        else f"{s.backbone.removeprefix('tf_efficientnet_')} skipped ({s.note})"
        for s in choice.scores
    )
    return (f"backbone {choice.chosen}: compared by out-of-fold probes on {choice.images} training images "
            f"({tried}); {choice.why}")
