"""Job functions for the engine's heavy calls. Each imports the engine when it runs, not before, so the
service imports (and its queue works) without the engine installed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from studio.service.jobs import JobCancelled, JobContext
from studio.service.predictors import PredictorCache
from studio.service.runs import settle_status
from studio.train.events import Stage


def train_job(project_root: str | Path, config: dict[str, Any], nproc: int = 1):
    """Train on the project; events go to the job, the job's cancel flag to the engine. With `nproc` > 1
    the job runs a torchrun process group and follows rank 0's events (studio.train.distributed)."""

    def run(ctx: JobContext) -> dict[str, Any]:
        from studio.data.store import Project
        from studio.train import TrainConfig, train

        settings = dict(config)
        if settings.get("device") in (None, "auto"):  # the service's device unless the job names one
            settings["device"] = getattr(ctx.device, "type", None) or str(ctx.device)
        train_config = TrainConfig.from_dict(settings)
        if nproc != 1:
            from studio.train.distributed import launch

            train_config.validate()
            if train_config.device == "auto":  # the ranks use the service's device
                train_config.device = getattr(ctx.device, "type", "auto")
            return launch(
                project_root, train_config.to_dict(), nproc, callback=ctx.emit, cancel=ctx.cancel_event
            )
        with Project.open(project_root) as project:
            try:
                # The engine's first event (RunStarted) names the run folder; ctx.emit ties it to the job.
                result = train(project, train_config, callback=ctx.emit, cancel=ctx.cancel_event)
            except BaseException:
                # The engine marks its own failures; this covers one that escaped before it could.
                if ctx.job.run_dir:
                    settle_status(ctx.job.run_dir, "failed", "The training job stopped with an error.")
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
    """Evaluate a run's checkpoint on its own snapshot's val images, or with a project on its val
    split of today (`studio.train.evaluation.evaluate_run`)."""

    def run(ctx: JobContext) -> dict[str, Any]:
        from studio.train.evaluation import evaluate_run

        if project_root is None:
            return evaluate_run(Path(run_dir), tta=tta, device=ctx.device)
        from studio.data.store import Project

        with Project.open(project_root) as project:
            return evaluate_run(Path(run_dir), project, current_split=True, tta=tta, device=ctx.device)

    return run


def predict_job(cache: PredictorCache, run_dir: str | Path, images: Sequence[Any], tta: bool | None = None,
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
            runner,
            FeatureCache(cache_dir),
            images["hash"].tolist(),
            images["path"].tolist(),
            views,
            should_stop=lambda: ctx.cancelled,
            on_batch=lambda done, total: ctx.progress(done / max(total, 1)),
        )
        return {"backbone": name, "images": len(images), "computed": stats.computed, "cached": stats.cached,
                "seconds": round(stats.seconds, 3), "dim": int(features.shape[-1]) if features.size else 0,
                "cache_dir": str(cache_dir)}

    return run


# ---- curation ------------------------------------------------------------------------------------

FEATURES_SHARE = 0.9  # of the job's progress bar: extracting features is nearly all of the work


def curate_job(project_root: str | Path, backbone: str | None = None):
    """One stored curation pass (`studio.curate.analysis.analyse`, as `studio curate` runs it)."""

    def run(ctx: JobContext) -> dict[str, Any]:
        from studio.curate.analysis import analyse, curation_summary
        from studio.data.store import Project
        from studio.errors import StudioError

        def on_stage(name: str, message: str) -> None:
            ctx.emit(Stage(name))
            ctx.log(message)

        with Project.open(project_root) as project:
            try:
                report = analyse(
                    project,
                    backbone=backbone or None,
                    device=ctx.device.type,
                    should_stop=lambda: ctx.cancelled,
                    on_stage=on_stage,
                    on_batch=lambda done, total: ctx.progress(FEATURES_SHARE * done / max(total, 1)),
                )
            except StudioError:
                if ctx.cancelled:  # the extractor stops with a StudioError; the job was cancelled, not failed
                    raise JobCancelled from None
                raise
            ctx.check_cancelled()
        ctx.progress(1.0)
        if report is None:  # stopped without a cancel (cannot happen today): never report nothing as done
            raise StudioError("The curation pass stopped before it finished.")
        return curation_summary(report)

    return run
