"""`train(project, config)`: validate, snapshot the data, run a strategy, evaluate, record everything."""

from __future__ import annotations

import platform
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import timm
import torch

from studio.data.snapshot import split_new_labels, take_snapshot
from studio.data.store import Project
from studio.errors import StudioError
from studio.models.registry import check_backbone
from studio.models.weights import create_backbone, data_config
from studio.predict.checkpoint import preprocessing_dict
from studio.predict.device import inference_dtype, select_device, training_dtype
from studio.predict.evaluate import evaluate
from studio.train import strategies
from studio.train.config import TrainConfig, resolve
from studio.train.context import RunContext
from studio.train.distributed import SINGLE, World
from studio.train.events import TrainEvent
from studio.train.runs import CONFIG_FILE, EVAL_FILE, SPLIT_FILE, Events, RunStore


@dataclass
class RunResult:
    run_dir: Path
    status: str  # "done" | "cancelled"
    # The strategy whose model was kept ("linear" or "finetune" for auto, else the strategy asked for).
    strategy: str
    backbone: str
    val_accuracy: float | None
    val_accuracy_tta: float | None
    epochs_run: int
    train_seconds: float
    reason: str = ""
    # {temperature, ece_before, ece_after} on the validation split (fitted on held-out training images)
    calibration: dict | None = None
    unknown_threshold: float | None = None
    novelty: dict | None = None  # {threshold, k, n, keep, unlike_rate}: studio.predict.novelty, on val
    # Whether the run predicts with TTA by default (auto chooses it on held-out training images), and the
    # validation accuracy of that default prediction: the number the app, the CLI and the export report.
    tta: bool = False
    accuracy: float | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir)
        return data


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(project: Project, config: TrainConfig | None = None, *,
          callback: Callable[[TrainEvent], None] | None = None,
          cancel: threading.Event | None = None, world: World = SINGLE) -> RunResult:
    """Train one model on the project's train split, evaluate it once on val, write a run folder.

    `world`: this process's rank among several (studio.train.distributed); only rank 0 writes the run
    folder, the others write into a scratch folder deleted at the end.

    Raises StudioError (after marking the run `failed`, when one was started) for anything the user
    can fix. A cancelled run returns status "cancelled" and keeps its checkpoint so far.
    """
    config = config or TrainConfig()
    config.validate()
    started = time.perf_counter()
    backbone = check_backbone(config.backbone)
    device = select_device(config.device)
    # Ranks of a process group find this done by the launcher: each must snapshot the same split.
    split_note = None if world.distributed else split_new_labels(project)
    snapshot = take_snapshot(project)
    if split_note:
        snapshot.warnings.insert(0, split_note)
    probe_model, source = create_backbone(backbone, num_classes=0, weights=config.weights,
                                          pretrained=config.uses_pretrained)
    data_cfg = data_config(probe_model)
    del probe_model
    resolved = resolve(config, n_train=len(snapshot.train), class_counts=snapshot.class_counts,
                       device_type=device.type, default_image_size=data_cfg["image_size"])
    preprocessing = preprocessing_dict(resolved.image_size, data_cfg)
    seed_everything(config.seed)

    # Ranks above 0 write into a scratch folder the launcher never reads (rank 0 owns the run folder).
    folder = RunStore(project.runs_dir if world.is_main else Path(tempfile.mkdtemp(prefix="studio-rank-")),
                      config.strategy)
    events = Events(callback, cancel, folder)  # announces the folder first (RunStarted)
    ctx = RunContext(project, config, resolved, snapshot, device, events, folder, backbone, source,
                     preprocessing, inference_dtype(device), training_dtype(device), world=world)
    record = {
        "config": config.to_dict(),
        "resolved": resolved.to_dict(),
        "backbone": backbone,
        "weights_source": source.to_dict(),
        "preprocessing": preprocessing,
        "classes": snapshot.class_names,
        "class_counts": snapshot.class_counts,
        "label_hash": snapshot.label_hash,
        "n_train": len(snapshot.train),
        "n_val": len(snapshot.val),
        "seed": config.seed,
        "device": str(device),
        "inference_dtype": str(ctx.inference_dtype),
        "training_dtype": str(ctx.training_dtype),
        "versions": {
            "torch": torch.__version__,
            "timm": timm.__version__,
            "python": platform.python_version(),
        },
        "project": str(project.root),
        "distributed": world.to_dict(),
    }
    folder.write(CONFIG_FILE, record)
    folder.write(SPLIT_FILE, snapshot.to_dict())
    for warning in snapshot.warnings:
        events.log(warning)
    try:
        outcome = _run_strategy(ctx, started)
        train_seconds = time.perf_counter() - started
        # Auto may have chosen another backbone (studio.train.backbone_choice): record the one it kept.
        record.update(backbone=ctx.backbone, weights_source=ctx.weights_source.to_dict(),
                      preprocessing=ctx.preprocessing, resolved=ctx.resolved.to_dict())
        result = RunResult(folder.path, outcome.status, outcome.kept, ctx.backbone, None, None,
                           outcome.epochs_run, round(train_seconds, 2), outcome.reason)
        if folder.checkpoint_path.is_file() and outcome.status == "done":
            events.stage("evaluate")
            report = evaluate(folder.path, tta=True, device=device)
            folder.write(EVAL_FILE, report)
            result.val_accuracy = report["accuracy"]
            result.val_accuracy_tta = report["tta"]["accuracy"]
            result.calibration = report.get("calibration")
            result.unknown_threshold = report.get("unknown_threshold")
            result.novelty = report.get("novelty")
            result.tta, result.accuracy = report["tta_default"], report["default_accuracy"]
        elif folder.checkpoint_path.is_file():
            result.val_accuracy = result.accuracy = ctx.best.accuracy
        folder.write(CONFIG_FILE, {**record, "result": {**result.to_dict(), "details": outcome.details,
                                                          "best": asdict(ctx.best)}})
        folder.set_status(outcome.status, outcome.reason, result=result.to_dict())
        events.log(f"Run {outcome.status}: {outcome.reason}")
        return result
    except StudioError as error:
        folder.set_status("failed", str(error))
        events.log(f"Run failed: {error}")
        raise
    except KeyboardInterrupt:
        kept = "; its checkpoint so far is kept" if folder.checkpoint_path.is_file() else ""
        folder.set_status("cancelled", f"Interrupted from the keyboard (Ctrl-C){kept}.")
        raise
    except BaseException as error:
        folder.set_status("failed", f"{type(error).__name__}: {error}")
        raise
    finally:
        if not world.is_main:
            shutil.rmtree(folder.path.parent, ignore_errors=True)


def _run_strategy(ctx: RunContext, started: float) -> strategies.Outcome:
    name = ctx.config.strategy
    if name == "linear":
        return strategies.run_linear(ctx)
    if name == "finetune":
        return strategies.run_finetune(ctx)
    if name == "two-stage":
        return strategies.run_two_stage(ctx)
    if name == "gradual":
        return strategies.run_gradual(ctx)
    if name == "scratch":
        return strategies.run_scratch(ctx)
    return strategies.run_auto(ctx, started)
