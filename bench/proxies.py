"""`auto` on image sets it was not tuned on: tasks carved from the shared sets, and scikit-learn's digits.

`bench/engine.py` measures auto on the two shared sets, which every choice of auto's was checked against.
This script asks whether those choices hold on sets of another shape, the way image sets nobody here has
seen would test them: few images per class, two look-alike classes, a domain far from ImageNet, tiny
grayscale images. Each task keeps a fixed train/val split; for each it prints auto's validation accuracy
(as the run predicts), what auto kept and which backbone, its time, and two naive linear probes on the same
split as references (PIL + timm eval transform, float32 features, scikit-learn LogisticRegression with its
defaults): the default Lite0, and Lite2, the largest bundled backbone (the probe an issue found beating
auto when auto tried only Lite0).

The tasks (subsets drawn once with a fixed seed, independent of the training seed):
- rose-tulip: flowers' two most confused classes, all their images (240 train, 60 val);
- flowers-20: all five flower classes, 20 training images each (100), the whole val split (150);
- daisy-dandelion-30: two flower classes, 30 training images each (60), 30 val each;
- mri-20: brain MRI (far from ImageNet photos), 20 training scans per class (40), the whole val split (41);
- digits: scikit-learn's 8x8 grayscale handwritten digits (shipped inside scikit-learn, no download), 20
  per class for training (200), 20 for val (200): tiny images, and a mirror changes what some show.

Usage:
    uv run python bench/proxies.py                          # every task, seed 0 (~20 minutes on 2 cores)
    uv run python bench/proxies.py --tasks digits mri-20 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from engine import DATASETS, _images, _mean, _pct, _pct_range, _spread, naive_features
from machine import MachineLoad
from PIL import Image
from sklearn.linear_model import LogisticRegression

from studio.data.importers import import_source
from studio.data.store import Project
from studio.models.weights import create_backbone
from studio.train import TrainConfig, train

REFERENCE_PROBES = ("tf_efficientnet_lite0", "tf_efficientnet_lite2")
FLOWERS = ("daisy", "dandelion", "rose", "sunflower", "tulip")
SUBSET_SEED = 0


def link_subset(root: Path, source: Path, classes, per_class_train: int | None,
                per_class_val: int | None) -> None:
    """`root/{train,val}/<class>/` holding links to (a seeded sample of) `source`'s images."""
    for split, count in (("train", per_class_train), ("val", per_class_val)):
        for name in classes:
            files = sorted((source / split / name).iterdir())
            if count is not None:
                random.Random(SUBSET_SEED).shuffle(files)
                files = files[:count]
            folder = root / split / name
            folder.mkdir(parents=True)
            for file in files:
                (folder / file.name).symlink_to(file.resolve())


def write_digits(root: Path, per_class: int = 20) -> None:
    """scikit-learn's 8x8 digits (16 grey levels) as PNGs: `per_class` per digit for train, as many for
    val."""
    from sklearn.datasets import load_digits

    pixels, digits = load_digits(return_X_y=True)
    seen: dict[int, int] = {}
    for index in np.random.default_rng(SUBSET_SEED).permutation(len(digits)):
        digit = int(digits[index])
        rank = seen[digit] = seen.get(digit, 0) + 1
        if rank > 2 * per_class:
            continue
        folder = root / ("train" if rank <= per_class else "val") / f"digit_{digit}"
        folder.mkdir(parents=True, exist_ok=True)
        image = (pixels[index].reshape(8, 8) * 255 / 16).round().astype(np.uint8)
        Image.fromarray(image).save(folder / f"{index}.png")


TASKS = {
    "rose-tulip": lambda root, data: link_subset(root, data / "flowers", ("rose", "tulip"), None, None),
    "flowers-20": lambda root, data: link_subset(root, data / "flowers", FLOWERS, 20, None),
    "daisy-dandelion-30": lambda root, data: link_subset(root, data / "flowers", ("daisy", "dandelion"),
                                                         30, 30),
    "mri-20": lambda root, data: link_subset(root, data / "mri", ("no_tumor", "tumor"), 20, None),
    "digits": lambda root, data: write_digits(root),
}


def naive_probe_accuracy(backbone: str, train_paths, train_y, val_paths, val_y) -> float:
    model, _ = create_backbone(backbone, num_classes=0)
    features, _ = naive_features(model, train_paths + val_paths)
    probe = LogisticRegression(max_iter=3000).fit(features[:len(train_paths)], train_y)
    return float((probe.predict(features[len(train_paths):]) == val_y).mean())


def run_task(name: str, args, work: Path) -> dict:
    source = work / f"{name}-images"
    TASKS[name](source, args.data)
    project = Project.create(work / name)
    import_source(project, source, layout="pre-split")
    train_paths, train_y, _ = _images(project, "train", None)
    val_paths, val_y, _ = _images(project, "val", None)
    row = {"task": name, "train": len(train_paths), "val": len(val_paths)}
    for backbone in REFERENCE_PROBES:
        row[backbone] = naive_probe_accuracy(backbone, train_paths, train_y, val_paths, val_y)
    results, seconds = [], []
    for seed in args.seeds:
        start = time.perf_counter()
        results.append(train(project, TrainConfig(seed=seed)))
        seconds.append(time.perf_counter() - start)
        print(f"{name} seed {seed}: {results[-1].accuracy:.3f} in {seconds[-1]:.0f} s",
              file=sys.stderr, flush=True)
    project.close()
    row.update(
        accuracy=_mean(r.accuracy for r in results), spread=_spread(r.accuracy for r in results),
        seconds=max(seconds), reasons=[r.reason for r in results],
        kept=", ".join(f"{r.strategy}{' + TTA' if r.tta else ''} "
                       f"({r.backbone.removeprefix('tf_efficientnet_')})" for r in results),
    )
    return row


def table(rows: list[dict], seeds: int) -> str:
    over = f", mean of {seeds} seeds (range)" if seeds > 1 else ""
    header = (f"| task | train / val images | auto val acc{over} | auto kept (backbone) | auto time (s) "
              "| naive probe Lite0 | naive probe Lite2 | auto vs the better probe |")
    lines = [header, "|" + "---|" * 8]
    for r in rows:
        best = max(r[b] for b in REFERENCE_PROBES)
        # in validation images, so that a difference of one image reads as noise
        margin = round((r["accuracy"] - best) * r["val"], 1)
        lines.append(
            f"| {r['task']} | {r['train']} / {r['val']} | {_pct_range(r['accuracy'], r['spread'])} "
            f"| {r['kept']} "
            f"| {r['seconds']:.0f} | {_pct(r[REFERENCE_PROBES[0]])} | {_pct(r[REFERENCE_PROBES[1]])} "
            f"| {margin:+g} images |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="auto's training seeds")
    parser.add_argument("--data", type=Path, default=DATASETS, help="folder holding the shared datasets")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"The shared datasets are not at {args.data}; nothing to benchmark.", file=sys.stderr)
        return 1
    load = MachineLoad()
    with tempfile.TemporaryDirectory(prefix="studio-proxies-") as work:
        rows = [run_task(name, args, Path(work)) for name in args.tasks]
    print(table(rows, len(args.seeds)))
    for r in rows:
        for reason in r["reasons"]:
            print(f"\n{r['task']}: {reason}")
    print(f"\n{load.summary()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
