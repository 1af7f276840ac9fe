"""Training and prediction commands: train, predict, eval, backbones."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from studio.augment.presets import PRESET_NAMES
from studio.augment.project_settings import PROJECT_CHOICE
from studio.cli import add_command, run_argument
from studio.data.store import Project
from studio.errors import StudioError
from studio.models.registry import BACKBONES, DEFAULT_BACKBONE
from studio.train.config import CPU_TIME_BUDGET_S, DEVICES, GPU_TIME_BUDGET_S, HEADS, STRATEGIES
from studio.train.events import Epoch, Log, Stage, TrainEvent


def register(subparsers) -> None:
    """Add the training subcommands to the `studio` parser."""

    def add(name: str, handler, help_text: str, text=None) -> argparse.ArgumentParser:
        return add_command(subparsers, name, handler, help_text, text)

    parser = add("train", _train, "train a classifier on a project's labeled images (progress on stderr)")
    parser.add_argument("project")
    parser.add_argument(
        "--backbone", default=DEFAULT_BACKBONE, help=f"timm model name (default {DEFAULT_BACKBONE})"
    )
    parser.add_argument("--weights", help="pretrained weights file for the backbone (timm layout)")
    parser.add_argument(
        "--no-pretrained", action="store_true", help="random weights (baseline; implies scratch)"
    )
    parser.add_argument("--strategy", choices=STRATEGIES, help="default: auto (scratch with --no-pretrained)")
    parser.add_argument("--head", choices=HEADS, default="logreg", help="classifier of the linear strategy")
    parser.add_argument("--epochs", type=int)
    parser.add_argument(
        "--batch-size",
        type=int,
        help="default: 32 on CPU, 64 on CUDA, halved on few images (at least 10 steps per epoch)",
    )
    parser.add_argument(
        "--lr", type=float, help="head learning rate (the backbone gets a tenth; a fifth in auto)"
    )
    parser.add_argument("--backbone-lr", type=float)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--augment", default=PROJECT_CHOICE, metavar="PRESET|project|FILE.json",
                        help=f"a preset ({', '.join(PRESET_NAMES)}), a JSON file of strengths, or "
                             f"'{PROJECT_CHOICE}' (default): what the app's Augment tab saved, else light")
    parser.add_argument("--cutmix", type=float, default=0.0, help="CutMix Beta alpha (0: off)")
    parser.add_argument("--mixup", type=float, default=0.0, help="MixUp Beta alpha (0: off)")
    parser.add_argument("--time-budget", type=float,
                        help=f"seconds auto may spend (default {CPU_TIME_BUDGET_S:.0f} on CPU, "
                        f"{GPU_TIME_BUDGET_S:.0f} on GPU)")
    parser.add_argument(
        "--candidates", nargs="+", metavar="BACKBONE",
        help="backbones auto compares with --backbone (default: the bundled Lite0, Lite1 and Lite2)",
    )
    parser.add_argument(
        "--ensemble", action=argparse.BooleanOptionalAction, default=True,
        help="auto: average a kept fine-tune with the linear probe unless that clearly hurts on held-out "
             "training images (default); --no-ensemble keeps one network (half the inference time)",
    )
    parser.add_argument(
        "--ema-decay",
        type=float,
        help="weight average kept and checkpointed, e.g. 0.998 (default: on for auto, 0 = off)",
    )
    parser.add_argument(
        "--frozen-groups",
        type=int,
        help="layer groups from the stem up kept frozen by auto/finetune (default: 3 in auto, 0 in finetune)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        help="finetune, two-stage, gradual, scratch: stop after N epochs without a better validation result "
             "and keep the best epoch on validation (its validation number is then optimistic: chosen on "
             "it). Default: the whole schedule, the last epoch kept",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--nproc", type=int, default=1,
                        help="processes to train on with torchrun and DistributedDataParallel: one per GPU "
                             "(gloo on CPU); finetune and scratch only (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    parser = add("predict", _predict, "predict images (files or folders) with a trained run")
    parser.add_argument(
        "run", help="run folder (project/runs/<run>), a model.pt file, or a project (its newest finished run)"
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    parser.add_argument(
        "--tta", action=argparse.BooleanOptionalAction, default=None,
        help="test-time augmentation (the crop and the whole frame, each also mirrored, averaged); "
        "default: the run's own choice (auto runs use it unless it clearly hurt on held-out training "
        "images; `studio eval` says which)",
    )
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--csv", metavar="OUT", help="also write the predictions to this CSV file")
    parser.add_argument("--device", choices=DEVICES, default="auto")

    parser = add(
        "eval", _eval, "evaluate a run on the validation images it was trained against (its snapshot)"
    )
    parser.add_argument("run", help="run folder, or a project (its newest finished run)")
    parser.add_argument("--tta", action="store_true", help="also evaluate with test-time augmentation")
    parser.add_argument(
        "--current-split",
        action="store_true",
        help="evaluate on the project's val split of today instead (later relabels and exclusions "
        "included; written to eval-current-split.json, eval.json is kept)",
    )
    parser.add_argument("--project", help="the project of --current-split (default: the run's own project)")
    parser.add_argument("--device", choices=DEVICES, default="auto")

    parser = add(
        "lr-find",
        _lr_find,
        "sweep the learning rate on a project's training images and suggest one",
        _lr_find_text,
    )
    parser.add_argument("project")
    parser.add_argument(
        "--backbone", default=DEFAULT_BACKBONE, help=f"timm model name (default {DEFAULT_BACKBONE})"
    )
    parser.add_argument("--weights", help="pretrained weights file for the backbone (timm layout)")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--steps", type=int, default=40, help="steps of the sweep (default 40)")
    parser.add_argument("--start-lr", type=float, default=1e-6)
    parser.add_argument("--end-lr", type=float, default=1.0)
    parser.add_argument("--chart", metavar="OUT.html", help="also write the loss-vs-rate chart (plotly) here")
    parser.add_argument("--no-pretrained", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=DEVICES, default="auto")

    add("backbones", _backbones, "list the recommended backbones")


def _progress(event: TrainEvent) -> None:
    if isinstance(event, Epoch):
        # auto's last epochs train on the held-out images too: nothing is left to score them on
        val = ("val -" if event.val_accuracy is None
               else f"val loss {event.val_loss:.4f} acc {event.val_accuracy:.3f}")
        print(f"[{event.stage}] epoch {event.epoch}: train loss {event.train_loss:.4f} "
              f"acc {event.train_accuracy:.3f} | {val} "
              f"| {event.images_per_s:.1f} img/s", file=sys.stderr, flush=True)
    elif isinstance(event, Log):
        print(event.message, file=sys.stderr, flush=True)
    elif isinstance(event, Stage):
        print(f"== {event.name}", file=sys.stderr, flush=True)


SAME_KEY_PRESS_S = 0.5  # a second SIGINT within this of the first is the same Ctrl-C delivered twice


@contextmanager
def _ctrl_c_cancels(cancel: threading.Event):
    """The first Ctrl-C ends the run as cancelled after the current batch (its checkpoint is kept,
    as the app's Cancel button does); a second one quits at once."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield  # not ours to change (an embedding program's handler, or SIGINT ignored)
        return
    owner = os.getpid()
    first: list[float] = []

    def handler(signum, frame):
        if os.getpid() != owner:  # a DataLoader worker forked from this process: the main process decides
            return
        if cancel.is_set():
            # One key press can arrive twice: `uv run` forwards it to this process, and the terminal sends
            # it to the whole process group too. A second one this soon is the same press.
            if time.monotonic() - first[0] < SAME_KEY_PRESS_S:
                return
            raise KeyboardInterrupt
        first.append(time.monotonic())
        cancel.set()
        print("Stopping after the current batch; the checkpoint so far is kept. "
              "Press Ctrl-C again to quit at once.", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _train(args) -> dict:
    from studio.augment.project_settings import resolve_augment_choice
    from studio.train import TrainConfig, train

    strategy = args.strategy or ("scratch" if args.no_pretrained else "auto")
    if args.no_pretrained and args.weights:
        raise StudioError("--no-pretrained and --weights contradict each other; pass one of them.")
    if args.weights and not Path(args.weights).expanduser().is_file():
        raise StudioError(
            f"The weights file {args.weights} does not exist; check the path passed to --weights."
        )
    with Project.open(args.project) as project:
        config = TrainConfig(
            strategy=strategy,
            backbone=args.backbone,
            weights=args.weights,
            pretrained=not args.no_pretrained,
            head=args.head,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            backbone_lr=args.backbone_lr,
            image_size=args.image_size,
            augment=resolve_augment_choice(args.augment, project.root),
            cutmix=args.cutmix,
            mixup=args.mixup,
            time_budget_s=args.time_budget,
            candidates=args.candidates,
            ensemble=args.ensemble,
            ema_decay=args.ema_decay,
            frozen_groups=args.frozen_groups,
            patience=args.patience,
            seed=args.seed,
            device=args.device,
        )
        cancel = threading.Event()
        callback = None if args.quiet else _progress
        with _ctrl_c_cancels(cancel):
            if args.nproc != 1:
                from studio.train.distributed import launch

                config.validate()
                result = launch(project.root, config.to_dict(), args.nproc, callback=callback, cancel=cancel)
            else:
                result = train(project, config, callback=callback, cancel=cancel).to_dict()
    if result["status"] == "cancelled":
        accuracy = result.get("val_accuracy")
        kept = (f"its checkpoint so far (val accuracy {accuracy:.1%}) is kept"
                if accuracy is not None else "no checkpoint was saved yet")
        print(
            f"Training cancelled: {result['run_dir']} is marked cancelled and {kept}.",
            file=sys.stderr,
            flush=True,
        )
        args.exit_code = 130  # scripts can tell an interrupted run from a finished one
    return result


def _predict(args) -> list[dict]:
    from studio.export.standalone import output_file_problem, plain_prediction
    from studio.predict.predictor import Predictor, image_arguments, write_predictions_csv

    if args.top_k < 1:
        raise StudioError("--top-k must be at least 1.")
    if args.csv and (problem := output_file_problem(args.csv)):
        raise StudioError(problem)
    paths = image_arguments(args.images)
    predictor = Predictor.from_run(run_argument(args.run), args.device)
    # One unreadable file in a folder must not cost the other predictions: it is listed and skipped.
    results = predictor.predict(paths, tta=args.tta, top_k=args.top_k, skip_unreadable=True)
    unreadable = [r for r in results if r.get("error")]
    if len(unreadable) == len(results):
        first = unreadable[0]
        more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
        raise StudioError(f"{first['path']}: {first['error']}{more}; nothing to predict.")
    for r in unreadable:
        print(f"skipped {r['path']}: {r['error']}", file=sys.stderr)
    if args.csv:
        write_predictions_csv(results, args.csv, predictor.class_names)
    return [plain_prediction(r) for r in results]


def _eval(args) -> dict:
    from studio.train.evaluation import evaluate_run

    run = Path(run_argument(args.run))
    if not run.is_dir():
        raise StudioError(f"{run} is not a run folder (look in PROJECT/runs/).")
    if args.project and not args.current_split:
        raise StudioError("--project names the project of --current-split; add --current-split, or leave "
                          "--project out to evaluate the run on its own images.")
    if args.current_split:
        # A run folder lives at PROJECT/runs/NAME: its own project unless told otherwise.
        with Project.open(args.project or run.resolve().parent.parent) as project:
            report = evaluate_run(run, project, current_split=True, tta=args.tta, device=args.device)
    else:
        report = evaluate_run(run, tta=args.tta, device=args.device)
    for note in report.get("notes", []):
        print(f"note: {note}.", file=sys.stderr)
    return report


def _lr_find(args) -> dict:
    from studio.export.standalone import output_file_problem
    from studio.train import TrainConfig
    from studio.train.lr_find import lr_find, sweep_chart

    if args.chart and (problem := output_file_problem(args.chart, "--chart", ".html")):
        raise StudioError(problem)
    with Project.open(args.project) as project:
        config = TrainConfig(strategy="finetune", backbone=args.backbone, weights=args.weights,
                             pretrained=not args.no_pretrained, image_size=args.image_size,
                             batch_size=args.batch_size, seed=args.seed, device=args.device)
        result = lr_find(project, config, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps)
    if args.chart:
        Path(args.chart).parent.mkdir(parents=True, exist_ok=True)
        sweep_chart(result).write_html(args.chart, include_plotlyjs="cdn")
        result["chart"] = str(args.chart)
    return result


def _lr_find_text(result: dict) -> str:
    rate = result["suggested_lr"]
    suggestion = (
        f"suggested learning rate {rate:.2e} (--lr)" if rate else "no clear suggestion (the loss never fell)"
    )
    return f"{result['steps']} steps from {result['rates'][0]:.1e} to {result['rates'][-1]:.1e}: {suggestion}"


def _backbones(args) -> list[dict]:
    return [info.to_dict() for info in BACKBONES.values()]
