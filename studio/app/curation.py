"""What the Curate tab does with a project, without widgets: the stored analysis, the review queues, the
active learner and bulk labeling from the embedding map. `studio.ui.curate_tab` (widgets) and its api
endpoints both call this, so the browser and `gradio_client` see the same behaviour; the review answers
are the CLI's too (`studio.curate.decisions.REVIEW_DECISIONS`).

The analysis runs as a service job (`TrainerService.submit_curate`) or as `studio curate`; either way its
results live in `cache/curate/` (`studio.curate.analysis`), and decisions made since are applied when
they are read: a resolved duplicate group or a reviewed label issue is never shown again.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from studio.curate import analysis, decisions
from studio.curate.active import ActiveLearner, learner_for_project
from studio.curate.decisions import REVIEW_DECISIONS
from studio.curate.duplicates import resolve_group
from studio.curate.embedding import UNLABELED, ids_in_box
from studio.curate.label_issues import review
from studio.data.store import Project
from studio.errors import StudioError
from studio.sharing.caller import caller_name, label_write_args

REFIT_EVERY = 5  # new labels between background refits of the active learner


@dataclass
class _LearnerEntry:
    learner: ActiveLearner
    features_mtime: float
    synced: dict[int, str] = field(default_factory=dict)  # the labels the learner was last told about


class ProjectAccess(Protocol):
    """What a session needs from the app (the UI's AppContext is one)."""

    service: Any

    def open_project(self, root: str | Path) -> Project: ...

    def check_project_root(self, root: str | Path) -> Path: ...


class CurateSession:
    """Per-app state (one active learner per project) and the calls behind every Curate action."""

    def __init__(self, context: ProjectAccess) -> None:
        self.context = context
        self._learners: dict[Path, _LearnerEntry] = {}
        self._lock = threading.Lock()

    # ---- analysis ------------------------------------------------------------------------------

    def service(self) -> Any:
        if self.context.service is None:
            raise StudioError("the trainer service is not running; restart the studio")
        return self.context.service

    def start(self, root: str, backbone: str | None = None):
        """Queue the analysis job (or return the project's one already queued or running)."""
        project = self.context.open_project(root)
        if project.dataset().empty:
            raise StudioError("the project has no images to analyse; import some in the Data tab first")
        running = self.active_job(root)
        return (
            running if running is not None else self.service().submit_curate(project.root, backbone or None)
        )

    def active_job(self, root: str):
        """The project's curate job that has not finished yet, if any."""
        if not root or self.context.service is None:
            return None
        path = str(self.context.check_project_root(root))
        for job in self.context.service.list_jobs("curate"):
            if job.project == path and not job.is_finished:
                return job
        return None

    def report(self, project: Project) -> dict | None:
        return analysis.read_curation_report(project.root)

    # ---- duplicates ----------------------------------------------------------------------------

    def pending_duplicates(self, project: Project, report: dict | None) -> list[dict]:
        """Groups from the report not resolved since (members still in the project), leakage first."""
        if not report:
            return []
        decided = decisions.decided_ids(project, "duplicate")
        frame = project.dataset().set_index("image_id")
        groups = []
        for group in report.get("duplicates", []):
            members = [i for i in group["image_ids"] if i in frame.index]
            if len(members) < 2 or set(members) <= decided:
                continue
            rows = frame.loc[members]
            splits = [s for s in rows["split"] if s]
            groups.append(
                {
                    "image_ids": members,
                    "labels": rows["label"].tolist(),
                    "splits": rows["split"].tolist(),
                    "leakage": len(set(splits)) > 1,
                    "conflicting_labels": len({x for x in rows["label"] if x}) > 1,
                    "sizes": (rows["width"] * rows["height"]).tolist(),
                }
            )
        return sorted(groups, key=lambda g: (not g["leakage"], -len(g["image_ids"])))

    def resolve_duplicates(self, root: str, image_ids: list[int], keep: int | str) -> dict:
        """Keep one image (the others are excluded from training) or "all"; one transaction."""
        if isinstance(keep, str) and keep.strip().lower() != "all":
            if not keep.strip().lstrip("-").isdigit():
                raise StudioError(f"keep must be an image id of the group or 'all', got {keep!r}")
            keep = int(keep)
        elif isinstance(keep, str):
            keep = "all"
        project = self.context.open_project(root)
        ids = [int(i) for i in image_ids]
        # Only a group the analysis found: excluding any set of images is not a duplicate decision.
        groups = [set(g["image_ids"]) for g in (self.report(project) or {}).get("duplicates", [])]
        if not any(set(ids) <= group for group in groups):
            raise StudioError("these images are not a duplicate group of the last analysis; run Analyse and "
                              "pick a group from its list")
        return resolve_group(project, ids, keep, by=caller_name())

    # ---- label issues --------------------------------------------------------------------------

    def pending_issues(self, project: Project, report: dict | None) -> list[dict]:
        """The report's label issues still to review, most likely mislabeled first.

        Skipped: reviewed or excluded images, and images relabeled since the analysis (the question is moot).
        """
        if not report:
            return []
        done = decisions.decided_ids(project, "label_issue") | decisions.excluded_image_ids(project)
        labels = project.dataset().set_index("image_id")["label"]
        return [issue for issue in report.get("label_issues", [])
                if issue["image"] not in done and issue["image"] in labels.index
                and labels[issue["image"]] == issue["label"]]

    def review_issue(self, root: str, image_id: int, decision: str, label: str | None = None) -> dict:
        """Answer one label issue: accept (relabel, as `label` or the suggestion), keep, ambiguous,
        exclude."""
        outcome = REVIEW_DECISIONS.get((decision or "").strip().lower(), (decision or "").strip().lower())
        if outcome not in REVIEW_DECISIONS.values():
            raise StudioError(f"decision must be one of {', '.join(REVIEW_DECISIONS)}, got {decision!r}")
        project = self.context.open_project(root)
        issue = next(
            (i for i in (self.report(project) or {}).get("label_issues", []) if i["image"] == int(image_id)),
            None,
        )
        if issue is None:  # the analysis ranks every labeled image: anything else is not a review
            raise StudioError(f"image {image_id} is not in the last analysis' label review; run Analyse "
                              "first (or again, for images added since)")
        detail = {"suggested": issue["suggested"], "score": issue["score"]}
        new_label = (label or "").strip() or issue["suggested"]
        final = review(project, int(image_id), outcome, label=new_label if outcome == "accepted" else None,
                       detail=detail, **label_write_args())
        return {"image_id": int(image_id), "decision": outcome, "label": final}

    # ---- active learning -----------------------------------------------------------------------

    def learner(self, project: Project) -> ActiveLearner:
        """The project's learner, built from the analysis' features and kept in step with its labels."""
        features_path = analysis.curation_folder(project.root) / analysis.FEATURES_FILE
        if not features_path.is_file():
            raise StudioError("run Analyse first: active learning ranks images by their features")
        mtime = features_path.stat().st_mtime
        current = self._current_labels(project)
        with self._lock:
            entry = self._learners.get(project.root)
            if entry is None or entry.features_mtime != mtime:
                features = analysis.read_curation_features(project.root)
                if features is None:
                    raise StudioError("the stored features cannot be read; run Analyse again")
                known = set(features.image_ids.tolist())
                labels = {i: label for i, label in current.items() if i in known}
                entry = _LearnerEntry(learner_for_project(project, features, refit_every=REFIT_EVERY), mtime,
                                      labels)
                self._learners[project.root] = entry
            else:  # labels made elsewhere (Label tab, reviews) reach the learner too
                known = set(entry.learner.features.image_ids.tolist())
                wanted = {i: label for i, label in current.items() if i in known}
                changes = [(i, label) for i, label in wanted.items() if entry.synced.get(i) != label]
                changes += [(i, None) for i in entry.synced if i not in wanted]
                if changes:
                    entry.learner.add_labels(changes)
                    entry.synced = wanted
            return entry.learner

    @staticmethod
    def _current_labels(project: Project) -> dict[int, str]:
        frame = project.dataset(labeled_only=True)
        frame = frame[~frame["image_id"].isin(decisions.excluded_image_ids(project))]
        return dict(zip(frame["image_id"].astype(int), frame["label"]))

    def next_to_label(self, root: str, skipped: list[int] | None = None) -> dict:
        """The most uncertain unlabeled image with the model's guess: {image_id, suggested, confidence,
        uncertainty, remaining, fits}; image_id None when nothing is left."""
        project = self.context.open_project(root)
        learner = self.learner(project)
        frame = project.dataset()
        excluded = decisions.excluded_image_ids(project)
        pool = frame[frame["label"].isna() & ~frame["image_id"].isin(excluded)
                     & frame["image_id"].isin(learner.features.image_ids)]["image_id"].astype(int).tolist()
        candidates = [i for i in pool if i not in set(skipped or [])]
        answer = {"image_id": None, "suggested": None, "confidence": None, "uncertainty": None,
                  "remaining": len(pool), "fits": learner.fits, "new_images": int((~frame["image_id"].isin(
                      learner.features.image_ids)).sum())}
        if candidates:
            top = learner.queue(1, candidates=candidates).iloc[0]
            answer.update(image_id=int(top["image_id"]), suggested=top["suggested"],
                          confidence=float(top["confidence"]), uncertainty=float(top["uncertainty"]))
        return answer

    def label_active(self, root: str, image_id: int, label: str | None = None) -> dict:
        """Label one image from the active-learning queue (no `label`: the model's suggestion); the
        learner refits in the background every few labels."""
        project = self.context.open_project(root)
        label = (label or "").strip() or self.suggestion(project, int(image_id))
        project.set_label(int(image_id), label, **label_write_args())
        self.learner(project)  # syncs the new label, starting a background refit when one is due
        return {"image_id": int(image_id), "label": label}

    def suggestion(self, project: Project, image_id: int) -> str:
        """The learner's most probable class for one image."""
        learner = self.learner(project)
        if image_id not in set(learner.features.image_ids.tolist()):
            raise StudioError(f"image {image_id} was added after the last analysis; run Analyse again")
        return learner.class_names[int(learner.predict_proba([image_id])[0].argmax())]

    # ---- embedding map -------------------------------------------------------------------------

    def embedding(self, project: Project, report: dict | None) -> pd.DataFrame:
        """The map's points (from the analysis) with today's labels: image_id, x, y, label, split,
        original_name."""
        columns = ["image_id", "x", "y", "label", "split", "original_name"]
        if not report or not report.get("embedding"):
            return pd.DataFrame(columns=columns)
        points = pd.DataFrame(report["embedding"])
        frame = project.dataset()[["image_id", "label", "split", "original_name"]]
        merged = points.merge(frame, on="image_id", how="inner")
        merged["label"] = [label if isinstance(label, str) else UNLABELED for label in merged["label"]]
        merged["split"] = [split if isinstance(split, str) else "" for split in merged["split"]]
        return merged[columns]

    def label_box(self, root: str, box: tuple[float, float, float, float], label: str,
                  unlabeled_only: bool = True) -> dict:
        """Give every image in the box (x_min, x_max, y_min, y_max) the class `label`, in one transaction."""
        return self._label_map_points(
            root, label, lambda project: self.box_ids(project, box, unlabeled_only),
            "no image lies in that box; widen the ranges (hover the map to read coordinates)")

    def selection_ids(self, project: Project, image_ids: Any, unlabeled_only: bool) -> list[int]:
        """The map points among `image_ids` (a mouse selection, as sent by the page: checked here, never
        trusted), only the unlabeled ones with `unlabeled_only`; in map order."""
        try:
            wanted = {int(i) for i in (image_ids or [])}
        except (TypeError, ValueError):
            raise StudioError("the selection must be a list of image ids") from None
        points = self.embedding(project, self.report(project))
        if unlabeled_only:
            points = points[points["label"] == UNLABELED]
        return [int(i) for i in points["image_id"] if int(i) in wanted]

    def label_selection(self, root: str, image_ids: Any, label: str, unlabeled_only: bool = True) -> dict:
        """Give every selected map point the class `label`, in one transaction (see `selection_ids`)."""
        return self._label_map_points(
            root, label, lambda project: self.selection_ids(project, image_ids, unlabeled_only),
            "nothing is selected: drag on the map (lasso or box) to select images first")

    def _label_map_points(self, root: str, label: str, chosen_ids: Callable[[Project], list[int]],
                          none_chosen: str) -> dict:
        label = (label or "").strip()
        if not label:
            raise StudioError("choose or type the class for the selected images")
        project = self.context.open_project(root)
        ids = chosen_ids(project)
        if not ids:
            raise StudioError(none_chosen)
        changed = project.set_labels([(i, label) for i in ids], **label_write_args())
        return {"image_ids": ids, "labeled": len(ids), "changed": changed, "label": label}

    def box_ids(
        self, project: Project, box: tuple[float, float, float, float], unlabeled_only: bool
    ) -> list[int]:
        """Image ids whose map point lies in the box (only unlabeled ones with `unlabeled_only`)."""
        if len(box) != 4 or any(v is None or math.isnan(float(v)) for v in box):
            raise StudioError("fill in all four box limits (x from/to, y from/to)")
        x_min, x_max, y_min, y_max = (float(v) for v in box)
        points = self.embedding(project, self.report(project))
        if unlabeled_only:
            points = points[points["label"] == UNLABELED]
        return ids_in_box(points, (x_min, x_max), (y_min, y_max))

    # ---- outliers and the whole picture --------------------------------------------------------

    def outliers(self, project: Project, report: dict | None) -> pd.DataFrame:
        columns = ["image", "label", "split", "nearest class", "z"]
        rows = [] if not report else report.get("outliers", [])
        present = set(project.dataset()["image_id"])
        excluded = decisions.excluded_image_ids(project)
        data = [[o["image"], o["label"] or "—", o["split"] or "—", o["nearest_class"], round(o["z"], 1)]
                for o in rows if o["image"] in present and o["image"] not in excluded]
        return pd.DataFrame(data, columns=columns)

    def overview(self, root: str) -> dict:
        """The stored report with today's decisions applied (the `/curate_report` answer)."""
        project = self.context.open_project(root)
        report = self.report(project)
        if report is None:
            return {"analysed": False}
        return {"analysed": True, **analysis.curation_summary(report),
                "pending_duplicates": self.pending_duplicates(project, report),
                "pending_label_issues": self.pending_issues(project, report),
                "outliers": self.outliers(project, report).to_dict("records"),
                "warnings": report.get("warnings", []),
                "excluded_now": len(decisions.excluded_image_ids(project))}
