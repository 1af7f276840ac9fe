"""GPU check: the studio's training images/s on CUDA beside timm's own training loop at the same settings.

Needs a CUDA GPU. Runs `studio.train.train` with strategy `auto` and with `finetune` (the engine uses
mixed precision and channels_last on CUDA by itself), then timm's training loop as its train.py runs it
(timm's `create_loader` with the prefetcher, AdamW, native AMP with a loss scaler, channels_last), on
the same images, backbone, image size and batch size, and prints images/s for each and the ratio.

    uv run python bench/gpu_train.py [--project DIR | --images 2000] [--backbone tf_efficientnet_lite0]
        [--image-size 224] [--batch-size 64] [--epochs 3] [--amp bf16|fp16] [--nproc N]

Without --project it generates a class-folder set of `--images` pictures (10 classes) and imports it.
`--nproc N` also runs the fine-tune on N GPUs (torchrun, studio.train.distributed).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

NO_CUDA = ("bench/gpu_train.py needs a CUDA GPU (torch.cuda.is_available() is False here): run it on a "
           "machine with one. Nothing was measured.")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--project", type=Path, help="an existing studio project to train on")
    source.add_argument("--images", type=positive, default=2000, help="generated images (default 2000)")
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--image-size", type=positive, default=224)
    parser.add_argument("--batch-size", type=positive, default=64)
    parser.add_argument("--epochs", type=positive, default=3)
    parser.add_argument("--amp", choices=("bf16", "fp16"), default="bf16", help="timm loop's autocast dtype")
    parser.add_argument("--workers", type=int, default=4, help="timm loader workers")
    parser.add_argument("--nproc", type=positive, default=1, help="also fine-tune on this many GPUs")
    args = parser.parse_args(argv)
    if args.project is not None and not args.project.is_dir():
        parser.error(f"--project {args.project} is not a folder")
    return args


def studio_images_per_s(project, strategy: str, args) -> tuple[float, float]:
    """(fine-tune images/s, median of the epochs after the first; whole run seconds)."""
    from studio.train import TrainConfig, train

    rates: list[float] = []

    def on_event(event: dict) -> None:
        if event.get("type") == "epoch" and event.get("stage") != "linear-probe":
            rates.append(float(event["images_per_s"]))

    config = TrainConfig(strategy=strategy, backbone=args.backbone, image_size=args.image_size,
                         batch_size=args.batch_size, epochs=args.epochs, device="cuda", time_budget_s=600.0)
    began = time.perf_counter()
    train(project, config, callback=on_event)
    seconds = time.perf_counter() - began
    steady = rates[1:] or rates
    return (statistics.median(steady) if steady else float("nan")), seconds


def timm_images_per_s(folder: Path, num_classes: int, args) -> float:
    """timm's train.py loop: create_loader (prefetcher), AdamW, autocast + NativeScaler, channels_last."""
    import torch
    from timm.data import ImageDataset, create_loader, resolve_data_config
    from timm.loss import LabelSmoothingCrossEntropy
    from timm.utils import NativeScaler

    from studio.models.weights import create_backbone

    model, _ = create_backbone(args.backbone, num_classes=num_classes)
    model = model.cuda().to(memory_format=torch.channels_last)
    data_config = resolve_data_config({"input_size": (3, args.image_size, args.image_size)}, model=model)
    loader = create_loader(ImageDataset(str(folder)), input_size=data_config["input_size"],
                           batch_size=args.batch_size, is_training=True, use_prefetcher=True,
                           num_workers=args.workers, mean=data_config["mean"], std=data_config["std"],
                           device=torch.device("cuda"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    loss_fn = LabelSmoothingCrossEntropy(0.1).cuda()
    dtype = torch.bfloat16 if args.amp == "bf16" else torch.float16
    scaler = NativeScaler() if dtype == torch.float16 else None
    rates = []
    model.train()
    for _ in range(args.epochs):
        seen, began = 0, time.perf_counter()
        for images, targets in loader:
            images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=dtype):
                loss = loss_fn(model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler(loss, optimizer, parameters=model.parameters())
            else:
                loss.backward()
                optimizer.step()
            seen += len(targets)
        torch.cuda.synchronize()
        rates.append(seen / (time.perf_counter() - began))
    steady = rates[1:] or rates
    return statistics.median(steady)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    from studio.data.exporters import export_project
    from studio.data.importers import import_source
    from studio.data.store import Project

    with tempfile.TemporaryDirectory(prefix="studio-gpu-") as scratch:
        scratch = Path(scratch)
        if args.project is None:
            sys.path.insert(0, str(Path(__file__).parent))
            from import_throughput import generate

            generate(scratch / "source", args.images, 10)
            project = Project.create(scratch / "project")
            import_source(project, scratch / "source")
        else:
            project = Project.open(args.project)
        with project:
            export_project(project, scratch / "folders", split_folders=True)
            classes = len(project.classes())
            print(
                f"{torch.cuda.get_device_name()} | {args.backbone} {args.image_size}px "
                f"batch {args.batch_size}, "
                f"{project.info()['labeled']} labeled images",
                flush=True,
            )
            results = {}
            for strategy in ("auto", "finetune"):
                rate, seconds = studio_images_per_s(project, strategy, args)
                results[strategy] = rate
                print(
                    f"studio {strategy}: {rate:.0f} images/s (fine-tune epochs), whole run {seconds:.0f} s",
                    flush=True,
                )
            if args.nproc > 1:
                from studio.train import TrainConfig
                from studio.train.distributed import launch

                config = TrainConfig(strategy="finetune", backbone=args.backbone, image_size=args.image_size,
                                     batch_size=args.batch_size, epochs=args.epochs, device="cuda")
                rates: list[float] = []
                launch(
                    project.root,
                    config.to_dict(),
                    args.nproc,
                    callback=lambda e: rates.append(e["images_per_s"]) if e.get("type") == "epoch" else None,
                )
                print(
                    f"studio finetune on {args.nproc} GPUs: "
                    f"{statistics.median(rates[1:] or rates):.0f} images/s"
                )
        timm_rate = timm_images_per_s(scratch / "folders" / "train", classes, args)
    print(f"timm train loop ({args.amp} autocast, channels_last): {timm_rate:.0f} images/s")
    print(f"studio finetune / timm loop: {results['finetune'] / timm_rate:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
