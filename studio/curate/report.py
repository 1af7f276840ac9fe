"""One curation pass over a project: duplicates, leakage, label issues, outliers and warnings.

The same call serves `studio curate --json` and the UI's curation job. Decided items are left out:
a resolved duplicate group or a reviewed label issue is not reported again, and excluded images take
no part (they are not trained on, so they cannot leak or vouch for a label).
"""

from __future__ import annotations

from collections.abc import Callable

from studio.curate import decisions
from studio.curate.balance import dataset_warnings
from studio.curate.duplicates import leakage_pairs, pending_groups, project_hashes
from studio.curate.features import FeatureSet, project_features
from studio.curate.label_issues import label_issues
from studio.curate.outliers import find_outliers
from studio.curate.thresholds import find_set_duplicates
from studio.data.store import Project
from studio.errors import StudioError


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
        issues = label_issues(project, features)
        flagged = issues[issues["issue"]]
        done = decisions.decided_ids(project, "label_issue")
        flagged = flagged[~flagged["image_id"].isin(done)]
        if label_issue_limit is not None:
            flagged = flagged.head(label_issue_limit)
        issue_list = [{"image": int(row.image_id), "label": row.label, "suggested": row.suggested,
                       "score": float(row.score)} for row in flagged.itertuples(index=False)]
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
