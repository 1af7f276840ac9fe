"""Stratified k-fold comparison of `auto` against the plain baselines, on all labeled images of a dataset.

The fixed validation split of ../shared/datasets is small (MRI: 41 images, 2.4 points each), so two methods
often tie or swap by one image. This script pools train and val, splits them into K stratified folds
(seed 0), and on each fold trains on the other K-1 folds: the plain linear probe and the plain 8-epoch
fine-tune of bench/engine.py, and the studio's default `auto`. It reports each method's accuracy per fold,
the accuracy over all pooled images (every image is predicted once, by the model that did not train on it),
and the paired fold-by-fold record of `auto` against each baseline. The headline numbers stay those of
bench/engine.py on the fixed split; this is the check that a tie there is not a loss.

Usage:
    uv run python bench/crossval.py                          # MRI, 5 folds: probe, plain fine-tune, auto
    uv run python bench/crossval.py --datasets flowers --only probe auto
    uv run python bench/crossval.py --quick                  # 2 folds of a small subset: checks the wiring
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from engine import DATASETS, _images, naive_features_fresh_process, plain_finetune
from machine import MachineLoad
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from studio.data.importers import import_source
from studio.data.store import Project
from studio.predict.checkpoint import load_model
from studio.predict.ensemble import ProbabilityAverage
from studio.predict.inference import IDENTITY, TTA_VIEWS
from studio.predict.predictor import Predictor
from studio.train import TrainConfig, train

METHODS = ("probe", "finetune", "auto")
LABELS = {"probe": "plain LP", "finetune": "plain FT 8 ep", "auto": "auto"}


def assign_folds(project: Project, folds: int, subset: int | None) -> list[list[int]]:
    """Image ids of each stratified fold over every labeled image (train and val pooled)."""
    data = project.dataset(labeled_only=True).sort_values("image_id")
    if subset:
        data = data.groupby("label", group_keys=False).head(subset // data["label"].nunique())
        project.set_split(project.dataset()[~project.dataset()["image_id"].isin(data["image_id"])]["image_id"].tolist(),
                          None)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    ids = data["image_id"].to_numpy()
    return [ids[held].tolist() for _, held in splitter.split(ids, data["label"])]


def run_fold(project: Project, held_out: list[int], all_ids: list[int], features: dict, args) -> dict:
    project.set_split([i for i in all_ids if i not in set(held_out)], "train")
    project.set_split(held_out, "val")
    train_paths, train_y, _ = _images(project, "train", None)
    val_paths, val_y, _ = _images(project, "val", None)
    result = {"n": len(val_paths)}
    if "probe" in args.only:
        probe = LogisticRegression(max_iter=2000).fit(np.stack([features[p] for p in train_paths]), train_y)
        result["probe"] = int((probe.predict(np.stack([features[p] for p in val_paths])) == val_y).sum())
    if "finetune" in args.only:
        result["finetune"] = round(
            plain_finetune(project, args.epochs, None, seed=0)["accuracy"] * len(val_paths)
        )
    if "auto" in args.only:
        run = train(project, TrainConfig(seed=0))
        result["auto"] = round(run.accuracy * len(val_paths))  # as the run predicts (its TTA choice)
        result["auto_kept"] = run.strategy
        result["auto_members"] = member_scores(run.run_dir, val_paths, val_y)
    return result


def member_scores(run_dir: Path, paths: list[str], targets: np.ndarray) -> dict[str, int]:
    """Correct held-out images of each network of an averaged model, alone, as the run predicts (its TTA
    choice and temperature): a diagnostic of where auto wins or loses a fold, not a choice."""
    loaded = load_model(run_dir)
    if not isinstance(loaded.model, ProbabilityAverage):
        return {}
    names = loaded.checkpoint.get("extra", {}).get("ensemble_members") or [
        f"member {i + 1}" for i in range(len(loaded.model.members))]
    views = TTA_VIEWS if loaded.tta else (IDENTITY,)
    scores = {}
    for name, member in zip(names, loaded.model.members):
        probs = Predictor(replace(loaded, model=member), "cpu").probabilities(paths, views).mean(axis=1)
        scores[name] = int((probs.argmax(1) == targets).sum())
    return scores


def report(name: str, folds: list[dict], methods: list[str]) -> str:
    total = sum(f["n"] for f in folds)
    lines = [f"### {name}: {len(folds)} folds, {total} images (correct of held-out per fold)", "",
             "| method | " + " | ".join(f"fold {k + 1}" for k in range(len(folds))) + " | pooled accuracy |",
             "|---|" + "---|" * (len(folds) + 1)]
    for m in methods:
        cells = " | ".join(f"{f[m]}/{f['n']}" for f in folds)
        lines.append(f"| {LABELS[m]} | {cells} | {100 * sum(f[m] for f in folds) / total:.1f}% |")
    if "auto" in methods:
        lines.append("")
        lines.append("auto kept: " + ", ".join(f["auto_kept"] for f in folds))
        for k, f in enumerate(folds):
            if f.get("auto_members"):
                alone = ", ".join(f"{name} {right}/{f['n']}" for name, right in f["auto_members"].items())
                lines.append(f"fold {k + 1}, auto's networks alone: {alone}")
        for m in methods:
            if m == "auto":
                continue
            wins = sum(f["auto"] > f[m] for f in folds)
            ties = sum(f["auto"] == f[m] for f in folds)
            losses = len(folds) - wins - ties
            gained = sum(f["auto"] - f[m] for f in folds)
            lines.append(f"auto vs {LABELS[m]}: {wins} folds better, {ties} tied, {losses} worse; "
                         f"{gained:+d} images over all folds")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mri"])
    parser.add_argument("--only", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the plain fine-tune baseline")
    parser.add_argument(
        "--quick", action="store_true", help="2 folds of a 60-image subset, 1-epoch baselines"
    )
    parser.add_argument("--data", type=Path, default=DATASETS, help="folder holding the datasets")
    args = parser.parse_args()
    if args.quick:
        args.folds, args.epochs = 2, 1
    if not args.data.is_dir():
        print(f"The shared datasets are not at {args.data}; nothing to benchmark.", file=sys.stderr)
        return 1
    methods = [m for m in METHODS if m in args.only]
    with tempfile.TemporaryDirectory(prefix="studio-crossval-") as work:
        for name in args.datasets:
            start, load = time.perf_counter(), MachineLoad()
            project = Project.create(Path(work) / name)
            import_source(project, args.data / name, layout="pre-split")
            held = assign_folds(project, args.folds, 60 if args.quick else None)
            all_ids = [i for fold in held for i in fold]
            features = {}
            if "probe" in methods:
                paths = project.dataset(labeled_only=True).set_index("image_id").loc[all_ids, "path"].tolist()
                features = dict(zip(paths, naive_features_fresh_process(paths)[0]))
            folds = []
            for k, fold in enumerate(held):
                folds.append(run_fold(project, fold, all_ids, features, args))
                print(
                    f"{name} fold {k + 1}: "
                    + ", ".join(f"{m} {folds[-1][m]}/{folds[-1]['n']}" for m in methods),
                    file=sys.stderr,
                    flush=True,
                )
            project.close()
            print(report(name, folds, methods))
            print(f"\n({time.perf_counter() - start:.0f} s; {load.summary()})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
