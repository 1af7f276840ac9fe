"""One curation pass over a project: duplicates, leakage, label issues, outliers and warnings.

The same call serves `studio curate --json` and the UI's curation job. Decided items are left out:
a resolved duplicate group or a reviewed label issue is not reported again, and excluded images take
no part (they are not trained on, so they cannot leak or vouch for a label).
"""

from __future__ import annotations

from collections.abc import Callable

from studio.curate import decisions
from studio.curate.duplicates import leakage_pairs, pending_groups, project_hashes
from studio.curate.features import FeatureSet, project_features
from studio.curate.label_issues import label_issues
from studio.curate.outliers import find_outliers
from studio.curate.thresholds import find_set_duplicates
from studio.data.balance import dataset_warnings
from studio.data.store import Project
from studio.errors import StudioError

# Label issues average the probabilities of these bundled backbones' features with the main one's:
# on MRI (two classes, 164 training images) that finds 90% of 10% flipped labels in the top 2x
# instead of 77% with Lite0 alone, on flowers 96% instead of 94% (bench/curation.py). Their features
# are cached like Lite0's; extracting them is the first analysis's main extra cost.
LABEL_ISSUE_BACKBONES = ("tf_efficientnet_lite1", "tf_efficientnet_lite2")


def label_issue_features(project: Project, features: FeatureSet, *, weights: str | None = None,
                         device: str = "auto", warnings: list[str] | None = None,
                         should_stop: Callable[[], bool] | None = None) -> list[FeatureSet]:
    """The extra backbones' features of the labeled images (a backbone that cannot load is skipped)."""
    extra = []
    labeled_frame = project.dataset(labeled_only=True)
    if labeled_frame["label"].nunique() < 2:  # no label issues to look for (the caller says why)
        return extra
    labeled = labeled_frame["image_id"].tolist()
    for name in LABEL_ISSUE_BACKBONES:
        if name == features.backbone or weights:  # custom weights belong to the main backbone only
            continue
        try:
            extra.append(project_features(project, name, device=device, image_ids=labeled,
                                          should_stop=should_stop))
        except StudioError as error:
            if warnings is not None:
                warnings.append(f"label issues use {features.backbone} alone ({name}: {error})")
    return extra


def curate(project: Project, features: FeatureSet | None = None, *, backbone: str | None = None,
           weights: str | None = None, device: str = "auto", label_issue_limit: int | None = None,
           should_stop: Callable[[], bool] | None = None,
           on_batch: Callable[[int, int], None] | None = None) -> dict:
    """Everything worth the expert's attention, as plain JSON-ready data (see the module docstring).

    `features` defaults to the cached features of `backbone` (extracted where missing).
    """
    frame = project.dataset()
    if frame.empty:
        raise StudioError("the project has no images to curate; import some first (`studio import`)")
    if features is None:
        features = project_features(project, backbone, weights=weights, device=device,
                                    should_stop=should_stop, on_batch=on_batch)
    excluded = decisions.excluded_image_ids(project)
    classes = project.classes()
    active = frame[~frame["image_id"].isin(excluded)].reset_index(drop=True)
    warnings = dataset_warnings(active, classes)

    phash, dhash = project_hashes(project, active)
    groups, thresholds = find_set_duplicates(active, phash, dhash, features.rows(active["image_id"]))
    leakage = leakage_pairs(groups)

    try:
        extra = label_issue_features(project, features, weights=weights, device=device, warnings=warnings,
                                     should_stop=should_stop)
        issues = label_issues(project, features, extra_features=extra)
        done = decisions.decided_ids(project, "label_issue")
        ranked = issues[~issues["image_id"].isin(done)]  # every labeled image, most likely wrong first
        if label_issue_limit is not None:
            ranked = ranked.head(label_issue_limit)
        issue_list = [{"image": int(row.image_id), "original_name": row.original_name, "label": row.label,
                       "suggested": row.suggested, "score": float(row.score), "flagged": bool(row.issue)}
                      for row in ranked.itertuples(index=False)]
    except StudioError as error:  # too few labels is a warning here, not a failure of the whole pass
        issue_list = []
        warnings.append(f"label issues not checked: {error}")

    try:
        outliers = find_outliers(project, features, exclude=sorted(excluded))
        outlier_list = [{"image": int(row.image_id), "label": row.label, "split": row.split,
                         "nearest_class": row.nearest_class, "z": float(row.z)}
                        for row in outliers.itertuples(index=False)]
    except StudioError as error:
        outlier_list = []
        warnings.append(f"outliers not checked: {error}")

    return {
        "project": str(project.root),
        "backbone": features.backbone,
        "images": len(frame),
        "excluded": len(excluded),
        "duplicates": [g.to_dict() for g in pending_groups(project, groups)],
        "leakage": leakage,
        "duplicate_thresholds": thresholds,
        "label_issues": issue_list,
        "outliers": outlier_list,
        "warnings": warnings,
    }
