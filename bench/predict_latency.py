"""How long a one-image prediction waits while a training job runs (the UI's case).

Builds a small generated project, trains once to get a model, then starts a fine-tuning job and, while
it runs, sends single-image predictions through `TrainerService.predict`, timing each request from the
call to the answer. Also times the same request with the service idle, for comparison.

    uv run python bench/predict_latency.py [--requests 10] [--image-size 224] [--device cpu]
                                           [--members N] [--tta]

Target: under 0.5 s per one-image request on CPU with the default backbone (tf_efficientnet_lite0).
`--members N` times a model of N Lite0 networks averaged, the shape of what `auto` keeps when it averages
its fine-tune with the probe (2), and with a second fine-tune on small sets (3): N forward passes per view.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers_images import make_image_folder

from studio.data.importers import import_source
from studio.data.store import Project
from studio.predict.checkpoint import CHECKPOINT_NAME, build_model, read_checkpoint, save_checkpoint
from studio.predict.ensemble import ProbabilityAverage
from studio.service import JobState, TrainerService


def timed_predictions(service: TrainerService, run_dir: Path, images: list[Path], n: int,
                      tta: bool = False) -> list[float]:
    waits = []
    for i in range(n):
        start = time.perf_counter()
        service.predict(run_dir, [str(images[i % len(images)])], tta=tta, top_k=3, timeout=600)
        waits.append(time.perf_counter() - start)
    return waits


def make_ensemble(run_dir: Path, members: int) -> None:
    """Replace the run's model by `members` copies of its network averaged (the cost of auto's ensemble)."""
    path = run_dir / CHECKPOINT_NAME
    checkpoint = read_checkpoint(path)
    network = build_model(checkpoint).model
    copies = [copy.deepcopy(network) for _ in range(members - 1)]
    with torch.no_grad():  # distinct weights, as real members have: identical copies can be merged by the
        for member in copies:  # graph optimizer, which would time one network
            for param in member.parameters():
                param.add_(torch.randn_like(param) * 1e-3)
    ensemble = ProbabilityAverage([network, *copies], [1.0] * members)
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
    parser.add_argument("--members", type=int, choices=[1, 2, 3], default=1,
                        help="networks averaged in the model (auto keeps 2 or 3)")
    parser.add_argument("--tta", action="store_true",
                        help="predict with TTA (4 views), as auto's runs usually do by default")
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
    if args.members > 1:
        make_ensemble(run_dir, args.members)
    print(f"model: {args.members} network{'s averaged' if args.members > 1 else ''}, "
          f"{'TTA (4 views)' if args.tta else 'one view'}")
    service.predict(run_dir, [str(images[0])])  # load the predictor once, as the UI would have
    report("idle service", timed_predictions(service, run_dir, images, args.requests, args.tta))

    training = service.submit_train(root / "project", {
        "strategy": "finetune", "image_size": args.image_size, "epochs": 50, "patience": 50, "batch_size": 8})
    while not any(e["type"] == "step" for e in training.events()):  # wait until it is really training
        if training.wait(0.2):
            sys.exit(f"training ended early: {training.state} {training.error}")
    waits = timed_predictions(service, run_dir, images, args.requests, args.tta)
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
