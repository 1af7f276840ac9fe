"""Job functions for the engine's heavy calls. Each imports the engine when it runs, not before, so the
service imports (and its queue works) without the engine installed."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studio.service.jobs import JobCancelled, JobContext
from studio.service.predictors import PredictorCache
from studio.service.runs import running_runs, settle_status


def train_job(project_root: str | Path, config: dict[str, Any], nproc: int = 1):
    """Train on the project; events go to the job, the job's cancel flag to the engine. With `nproc` > 1
    the job runs a torchrun process group and follows rank 0's events (studio.train.distributed)."""

    def run(ctx: JobContext) -> dict[str, Any]:
        from studio.data.store import Project
        from studio.train import TrainConfig, train

        train_config = TrainConfig.from_dict(dict(config))
        if nproc != 1:
            from studio.train.distributed import launch

            train_config.validate()
            if train_config.device == "auto":  # the ranks use the service's device
                train_config.device = getattr(ctx.device, "type", "auto")
            return launch(project_root, train_config.to_dict(), nproc, callback=ctx.emit, cancel=ctx.cancel_event)
        started = time.time()
        with Project.open(project_root) as project:

            def callback(event: dict[str, Any]) -> None:
                # The engine creates its run folder before its first event; name it for the job at once
                # (an engine `run_dir` event, when sent, is used instead).
                if ctx.job.run_dir is None and event.get("type") != "run_dir":
                    found = running_runs(project.runs_dir, started)
                    if len(found) == 1:
                        ctx.set_run_dir(found[0])
                ctx.emit(event)

            try:
                result = train(project, train_config, callback=callback, cancel=ctx.cancel_event)
            except BaseException:
                # The engine marks its own failures; this covers one that escaped before it could.
                for run_dir in ([ctx.job.run_dir] if ctx.job.run_dir else running_runs(project.runs_dir, started)):
                    settle_status(run_dir, "failed", "The training job stopped with an error.")
                raise
        return _run_result(result)

    return run


def _run_result(result: Any) -> dict[str, Any]:
    """RunResult as a plain dict (its fields: run_dir, val_accuracy, status, ...)."""
    if hasattr(result, "to_dict"):
        data = result.to_dict()
    elif hasattr(result, "__dataclass_fields__"):
        import dataclasses

        data = dataclasses.asdict(result)
    else:
        data = dict(vars(result))
    if data.get("run_dir") is not None:
        data["run_dir"] = str(data["run_dir"])
    return data


def evaluate_job(run_dir: str | Path, tta: bool = False, project_root: str | Path | None = None):
    """Evaluate a run's checkpoint on its validation images (the engine's `evaluate`)."""

    def run(ctx: JobContext) -> dict[str, Any]:
        from studio.predict import evaluate

        if project_root is None:
            return evaluate(Path(run_dir), tta=tta)
        from studio.data.store import Project

        with Project.open(project_root) as project:
            return evaluate(Path(run_dir), project, tta=tta)

    return run


def predict_job(cache: PredictorCache, run_dir: str | Path, images: Sequence[Any], tta: bool = False,
                top_k: int = 5, skip_unreadable: bool = False):
    """Predict a batch with the cached predictor of the run (loaded on first use)."""

    def run(ctx: JobContext) -> list[dict[str, Any]]:
        with cache.use(run_dir, ctx.device) as predictor:
            return predictor.predict(list(images), tta=tta, top_k=top_k, skip_unreadable=skip_unreadable)

    return run


def features_job(project_root: str | Path, backbone: str | None = None,
                 image_ids: Sequence[int] | None = None, flip: bool = True):
    """Frozen-backbone features of the project's images into the feature cache.

    Uses the same cache key as the engine's linear probe (backbone, weights, preprocessing, views,
    precision), so extracting ahead of time makes the next linear-probe run start from the cache.
    """

    def run(ctx: JobContext) -> dict[str, Any]:
        from studio.data.store import Project
        from studio.models.registry import DEFAULT_BACKBONE, check_backbone
        from studio.models.weights import create_backbone, data_config
        from studio.predict.checkpoint import preprocessing_dict
        from studio.predict.device import inference_dtype
        from studio.predict.inference import FLIP_VIEWS, IDENTITY, InferenceRunner
        from studio.train.features import FeatureCache, extract_features, feature_key

        name = check_backbone(backbone or DEFAULT_BACKBONE)
        model, source = create_backbone(name, num_classes=0)
        data_cfg = data_config(model)
        preprocessing = preprocessing_dict(data_cfg["image_size"], data_cfg)
        dtype = inference_dtype(ctx.device)
        views = FLIP_VIEWS if flip else (IDENTITY,)
        with Project.open(project_root) as project:
            images = project.dataset()
            cache_dir = project.cache_dir / "features" / feature_key(name, source.fingerprint, preprocessing,
                                                                      views, dtype)
        if image_ids is not None:
            images = images[images["image_id"].isin(list(image_ids))]
        runner = InferenceRunner(model, preprocessing, ctx.device, dtype)
        ctx.log(f"Extracting {name} features for {len(images)} images.")
        features, stats = extract_features(
            runner, FeatureCache(cache_dir), images["hash"].tolist(), images["path"].tolist(), views,
            should_stop=lambda: ctx.cancelled, on_batch=lambda done, total: ctx.progress(done / max(total, 1)))
        return {"backbone": name, "images": len(images), "computed": stats.computed, "cached": stats.cached,
                "seconds": round(stats.seconds, 3), "dim": int(features.shape[-1]) if features.size else 0,
                "cache_dir": str(cache_dir)}

    return run


# ---- curation ------------------------------------------------------------------------------------

CURATE_FOLDER = "curate"  # under the project's cache folder (safe to delete: Analyse writes it again)
REPORT_FILE = "report.json"
FEATURES_FILE = "features.npz"
FEATURES_SHARE = 0.9  # of the job's progress bar: extracting features is nearly all of the work


def curation_folder(project_root: str | Path) -> Path:
    return Path(project_root) / "cache" / CURATE_FOLDER


def curate_job(project_root: str | Path, backbone: str | None = None):
    """One curation pass (`studio.curate.report.curate`) whose results outlive the job.

    Writes `cache/curate/report.json` (the report plus the embedding map's coordinates) and
    `cache/curate/features.npz` (the flip-averaged features it used, for active learning), so a
    reopened Curate tab shows the last analysis without loading a backbone. Features come from the
    engine's cache: a second pass only extracts images added since.
    """

    def run(ctx: JobContext) -> dict[str, Any]:
        from studio.curate import features as curate_features
        from studio.curate.embedding import embedding_frame
        from studio.curate.report import curate
        from studio.data.store import Project
        from studio.errors import StudioError

        started = time.perf_counter()

        def on_batch(done: int, total: int) -> None:
            ctx.progress(FEATURES_SHARE * done / max(total, 1))

        with Project.open(project_root) as project:
            ctx.emit({"type": "stage", "name": "features"})
            ctx.log(f"Extracting {backbone or 'default backbone'} features (cached ones are reused).")
            try:
                features = curate_features.project_features(
                    project, backbone or None, device=ctx.device.type, should_stop=lambda: ctx.cancelled, on_batch=on_batch)
            except StudioError:
                if ctx.cancelled:  # the extractor stops with a StudioError; the job was cancelled, not failed
                    raise JobCancelled from None
                raise
            ctx.check_cancelled()
            ctx.emit({"type": "stage", "name": "analysis"})
            ctx.log("Looking for near-duplicates, label issues and outliers.")
            report = curate(project, features)
            frame = embedding_frame(project, features)
            report["embedding"] = {"image_id": frame["image_id"].tolist(), "x": frame["x"].tolist(),
                                   "y": frame["y"].tolist()}
            report["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            report["seconds"] = round(time.perf_counter() - started, 2)
            folder = curation_folder(project.root)
            _save_features(folder / FEATURES_FILE, features)
            _write_json(folder / REPORT_FILE, report)
        ctx.progress(1.0)
        return curation_summary(report)

    return run


def curation_summary(report: dict[str, Any]) -> dict[str, Any]:
    """Counts of what a report found (the job's result and the UI's headline)."""
    return {
        "backbone": report.get("backbone"), "images": report.get("images", 0),
        "excluded": report.get("excluded", 0), "duplicate_groups": len(report.get("duplicates", [])),
        "leakage_groups": sum(1 for g in report.get("duplicates", []) if g.get("leakage")),
        "leakage_pairs": len(report.get("leakage", [])), "label_issues": len(report.get("label_issues", [])),
        "outliers": len(report.get("outliers", [])), "warnings": len(report.get("warnings", [])),
        "finished_at": report.get("finished_at"), "seconds": report.get("seconds"),
    }


def read_curation_report(project_root: str | Path) -> dict[str, Any] | None:
    """The last curation report of the project, or None if it was never analysed (or the file is bad)."""
    path = curation_folder(project_root) / REPORT_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


def read_curation_features(project_root: str | Path):
    """The FeatureSet the last curation pass used, or None."""
    import numpy as np

    from studio.curate.features import FeatureSet

    path = curation_folder(project_root) / FEATURES_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            return FeatureSet(data["image_ids"], data["features"], str(data["backbone"]))
    except (OSError, ValueError, KeyError):
        return None


def _save_features(path: Path, features: Any) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.stem + ".part.npz")
    np.savez(scratch, image_ids=features.image_ids, features=features.features, backbone=features.backbone)
    os.replace(scratch, path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".json.part")
    scratch.write_text(json.dumps(data, default=str), encoding="utf-8")
    os.replace(scratch, path)
