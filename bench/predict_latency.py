"""How long a one-image prediction waits while a training job runs (the UI's case).

Builds a small generated project, trains once to get a model, then starts a fine-tuning job and, while
it runs, sends single-image predictions through `TrainerService.predict`, timing each request from the
call to the answer. Also times the same request with the service idle, for comparison.

    uv run python bench/predict_latency.py [--requests 10] [--image-size 224] [--device cpu]

Target: under 0.5 s per one-image request on CPU with the default backbone (tf_efficientnet_lite0).
`--model ensemble` times a model of two Lite0 networks averaged, the shape of what `auto` keeps when it
averages its fine-tune with the probe (two forward passes per view).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers_images import make_image_folder

from studio.data.importers import import_source
from studio.data.store import Project
from studio.predict.checkpoint import CHECKPOINT_NAME, build_model, read_checkpoint, save_checkpoint
from studio.predict.ensemble import ProbabilityAverage
from studio.service import JobState, TrainerService


def timed_predictions(service: TrainerService, run_dir: Path, images: list[Path], n: int) -> list[float]:
    waits = []
    for i in range(n):
        start = time.perf_counter()
        service.predict(run_dir, [str(images[i % len(images)])], top_k=3, timeout=600)
        waits.append(time.perf_counter() - start)
    return waits


def make_ensemble(run_dir: Path) -> None:
    """Replace the run's model by two copies of its network averaged (the cost of auto's ensemble)."""
    path = run_dir / CHECKPOINT_NAME
    checkpoint = read_checkpoint(path)
    network = build_model(checkpoint).model
    ensemble = ProbabilityAverage([network, copy.deepcopy(network)], [0.5, 0.5])
    checkpoint.update(state_dict=ensemble.state_dict(), ensemble={"weights": ensemble.weights})
    save_checkpoint(checkpoint, path)


def report(name: str, waits: list[float]) -> None:
    print(f"{name:>22}: n={len(waits)} median={statistics.median(waits):.3f}s max={max(waits):.3f}s "
          f"first={waits[0]:.3f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--per-class", type=int, default=12)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", choices=["single", "ensemble"], default="single",
                        help="predict with one network or two averaged (what auto keeps)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    make_image_folder(root / "src", ["red", "green", "blue"], args.per_class, size=args.image_size + 32)
    with Project.create(root / "project") as project:
        import_source(project, root / "src")
    images = sorted((root / "src").rglob("*.*"))

    service = TrainerService(args.device)
    print(f"device: {service.device_info()}")
    first = service.submit_train(root / "project", {"strategy": "linear", "image_size": args.image_size})
    run_dir = Path(first.outcome(1800)["run_dir"])
    if args.model == "ensemble":
        make_ensemble(run_dir)
    print(f"model: {args.model}")
    service.predict(run_dir, [str(images[0])])  # load the predictor once, as the UI would have
    report("idle service", timed_predictions(service, run_dir, images, args.requests))

    training = service.submit_train(root / "project", {
        "strategy": "finetune", "image_size": args.image_size, "epochs": 50, "patience": 50, "batch_size": 8})
    while not any(e["type"] == "step" for e in training.events()):  # wait until it is really training
        if training.wait(0.2):
            sys.exit(f"training ended early: {training.state} {training.error}")
    waits = timed_predictions(service, run_dir, images, args.requests)
    still_training = training.state is JobState.RUNNING
    report("while training", waits)
    print(f"training still running during all requests: {still_training}")
    service.cancel(training.id)
    training.wait(600)
    print(f"training job ended {training.state.value}; run folder status in list_runs: "
          f"{service.list_runs(root / 'project')[0]['status']}")
    service.shutdown(60)


if __name__ == "__main__":
    main()
