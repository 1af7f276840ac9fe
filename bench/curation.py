"""Curation benchmark on flowers and MRI: label errors, active learning, duplicates, refit speed.

    uv run python bench/curation.py [--project DIR] [--out bench/out/curation] [--only labels]

Imports `../shared/datasets/flowers` into a temporary project (or reuses `--project DIR`, created there
when missing, so a second run starts from the feature cache) and measures:
- label errors, on flowers and MRI (`--label-datasets`): 10% of the training labels flipped at random
  (3 seeds); the share of flipped images in the top 2x(flipped) of the ranking (target >= 85% on both),
  and precision/recall of cleanlab's flags, with the features `studio curate` uses (Lite0 + Lite1 + Lite2);
- active learning: from 5 labels per class, 50 more chosen by margin uncertainty vs at random
  (5 at a time, 3 seeds), validation accuracy curve saved as a plot;
- linear-head refit time for 2,000 labeled images (the 750 cached features jittered up to 2,000);
- duplicates: pixel-exact, resized, re-encoded, resized+re-encoded and mirrored copies of 20 images
  planted (half in val); all must be grouped with their source, and no group among the originals.
Prints one markdown table.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from studio.curate.active import ActiveLearner, simulate
from studio.curate.duplicates import leakage_pairs, project_hashes
from studio.curate.features import FeatureSet, project_features
from studio.curate.label_issues import label_issues
from studio.curate.report import curate, label_issue_features
from studio.curate.thresholds import find_set_duplicates
from studio.data.importers import import_source
from studio.data.store import Project

DATASETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
FLOWERS = DATASETS / "flowers"
SEEDS = (0, 1, 2)


def open_project(folder: Path, source: Path = FLOWERS) -> Project:
    if (folder / "project.db").is_file():
        return Project.open(folder)
    project = Project.create(folder)
    import_source(project, source, layout="pre-split")
    return project


def label_error_features(project: Project) -> tuple[FeatureSet, list[FeatureSet]]:
    """The main features and the extra backbones' ones, as `studio curate` ranks label issues with."""
    main = project_features(project)
    return main, label_issue_features(project, main)


def bench_label_errors(project: Project, features: FeatureSet, extra: list[FeatureSet] = ()) -> dict:
    """Flip 10% of the training labels, rank, restore; mean over SEEDS."""
    train = project.dataset(labeled_only=True)
    train = train[train["split"] == "train"]
    classes = project.classes()
    top_recall, precision, recall, suggested_right, seconds = [], [], [], [], []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        n_flip = round(0.1 * len(train))
        victims = train.iloc[rng.choice(len(train), n_flip, replace=False)]
        flips = {int(r.image_id): str(rng.choice([c for c in classes if c != r.label]))
                 for r in victims.itertuples()}
        truth = dict(zip(victims["image_id"].astype(int), victims["label"]))
        project.set_labels(flips.items(), by="bench")
        try:
            started = time.perf_counter()
            ranked = label_issues(project, features, splits=["train"], seed=seed, extra_features=extra)
            seconds.append(time.perf_counter() - started)
        finally:
            project.set_labels(truth.items(), by="bench")
        flipped = set(flips)
        top = set(ranked["image_id"].head(2 * n_flip))
        flagged = set(ranked.loc[ranked["issue"], "image_id"])
        top_recall.append(len(top & flipped) / n_flip)
        precision.append(len(flagged & flipped) / max(len(flagged), 1))
        recall.append(len(flagged & flipped) / n_flip)
        rows = ranked.set_index("image_id").loc[sorted(flipped)]
        suggested_right.append(
            float(np.mean([rows.loc[i, "suggested"] == truth[i] for i in sorted(flipped)]))
        )
    return {"flipped": n_flip, "top2x_recall": top_recall, "precision": precision, "recall": recall,
            "suggested_right": suggested_right, "seconds": seconds}


def bench_active(project: Project, features: FeatureSet, out: Path) -> dict:
    frame = project.dataset(labeled_only=True)
    classes = project.classes()
    target = frame["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    x = features.rows(frame["image_id"])
    train, val = (frame["split"] == "train").to_numpy(), (frame["split"] == "val").to_numpy()
    curves = {}
    for strategy in ("uncertainty", "random"):
        runs = [simulate(x[train], target[train], x[val], target[val], initial_per_class=5, budget=50, step=5,
                         strategy=strategy, seed=seed) for seed in SEEDS]
        curves[strategy] = ([n for n, _ in runs[0]], np.mean([[a for _, a in run] for run in runs], axis=0))
    plot = save_curve(curves, out)
    return {"curves": curves, "plot": plot}


def save_curve(curves: dict, out: Path) -> str:
    """PNG through kaleido when installed; otherwise a self-contained HTML file (plotly only)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for name, (n, accuracy) in curves.items():
        figure.add_trace(go.Scatter(x=n, y=accuracy, mode="lines+markers", name=name))
    figure.update_layout(title="Active learning on flowers: validation accuracy (mean of 3 seeds)",
                         xaxis_title="labeled images", yaxis_title="validation accuracy",
                         template="plotly_white")
    out.mkdir(parents=True, exist_ok=True)
    try:
        import kaleido  # noqa: F401

        path = out / "active_learning.png"
        figure.write_image(path)
    except ImportError:
        path = out / "active_learning.html"
        figure.write_html(path, include_plotlyjs=True)
    return str(path)


def bench_refit(features: FeatureSet, labels: list[str], classes: list[str]) -> dict:
    """2,000 labeled images: the 750 real feature vectors repeated with 5% Gaussian jitter."""
    rng = np.random.default_rng(0)
    reps = -(-2000 // len(features.image_ids))
    x = np.concatenate(
        [
            features.features + rng.normal(0, 0.05 * features.features.std(), features.features.shape)
            for _ in range(reps)
        ]
    )[:2015].astype(np.float32)
    y = (labels * reps)[:2015]
    big = FeatureSet(np.arange(len(x)), x)
    started = time.perf_counter()
    learner = ActiveLearner(big, classes, {i: y[i] for i in range(2000)}, refit_every=5, background=True)
    cold = time.perf_counter() - started
    warm = []
    for step in range(3):  # 5 new labels, then the refit the learner runs in the background
        ids = range(2000 + 5 * step, 2005 + 5 * step)
        learner.add_labels([(i, y[i]) for i in ids], refit=False)
        learner.refit()
        warm.append(learner.last_fit_seconds)
    return {"cold": cold, "warm": float(np.median(warm))}


def plant_copies(project: Project, workdir: Path, n_sources: int = 20, seed: int = 0) -> dict[int, dict]:
    """Copies of `n_sources` training images, added to the project; returns {source id: {variant: id}}."""
    frame = project.dataset(labeled_only=True)
    frame = frame[frame["split"] == "train"]
    rng = np.random.default_rng(seed)
    sources = frame.iloc[rng.choice(len(frame), n_sources, replace=False)]
    workdir.mkdir(parents=True, exist_ok=True)
    planted = {}
    for k, row in enumerate(sources.itertuples()):
        image = Image.open(row.path).convert("RGB")
        w, h = image.size
        variants = {
            "pixel-exact (PNG)": (image, "PNG", {}),
            "resized 0.5x": (image.resize((w // 2, h // 2), Image.LANCZOS), "JPEG", {"quality": 90}),
            "re-encoded q40": (image, "JPEG", {"quality": 40}),
            "resized 0.6x + q50": (image.resize((int(w * 0.6), int(h * 0.6)), Image.BILINEAR), "JPEG",
                                   {"quality": 50}),
            "mirrored": (ImageOps.mirror(image), "JPEG", {"quality": 90}),
        }
        planted[int(row.image_id)] = {}
        for v, (name, (copy, fmt, options)) in enumerate(variants.items()):
            path = workdir / f"copy_{k}_{v}.{fmt.lower()}"
            buffer = io.BytesIO()
            copy.save(buffer, fmt, **options)
            path.write_bytes(buffer.getvalue())
            split = "val" if k % 2 else "train"  # half the sources leak into validation
            image_id, _ = project.add_image_file(path, label=row.label, split=split, source="bench-copy")
            planted[int(row.image_id)][name] = image_id
    return planted


def bench_duplicates(project: Project, workdir: Path) -> dict:
    originals = project.dataset().reset_index(drop=True)
    features = project_features(project)
    phash, dhash = project_hashes(project, originals)
    started = time.perf_counter()
    false_groups, _ = find_set_duplicates(originals, phash, dhash, features.rows(originals["image_id"]))
    original_seconds = time.perf_counter() - started
    planted = plant_copies(project, workdir)
    features = project_features(project)  # extracts the copies
    frame = project.dataset().reset_index(drop=True)
    phash, dhash = project_hashes(project, frame)
    groups, thresholds = find_set_duplicates(frame, phash, dhash, features.rows(frame["image_id"]))
    group_of = {i: frozenset(g.image_ids) for g in groups for i in g.image_ids}
    found_by_variant: dict[str, list[bool]] = {}
    exact_groups = 0
    for source, copies in planted.items():
        expected = frozenset([source, *copies.values()])
        exact_groups += group_of.get(source) == expected
        for name, copy in copies.items():
            together = source in group_of and group_of.get(copy) == group_of[source]
            found_by_variant.setdefault(name, []).append(together)
    leak = leakage_pairs(groups)
    expected_leaks = sum(len(c) for s, c in planted.items() if list(planted).index(s) % 2)
    return {
        "false_groups_original": len(false_groups),
        "groups": len(groups),
        "exact_groups": exact_groups,
        "sources": len(planted),
        "found_by_variant": {k: (sum(v), len(v)) for k, v in found_by_variant.items()},
        "leakage_pairs": len(leak),
        "expected_leakage_min": expected_leaks,
        "seconds": original_seconds,
        "thresholds": thresholds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=None, help="reuse or create the project here")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "curation")
    parser.add_argument("--label-datasets", nargs="+", default=["flowers", "mri"],
                        help="sets the label-error measure runs on (reused from PROJECT's folder when given)")
    parser.add_argument(
        "--only", choices=["labels", "all"], default="all", help="labels: the label-error measure only"
    )
    args = parser.parse_args()
    if not FLOWERS.is_dir():
        print(f"flowers set not found at {FLOWERS}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        label_errors = {}
        for name in args.label_datasets:
            where = (args.project.parent if args.project else Path(tmp)) / name
            with open_project(where, DATASETS / name) as project:
                label_errors[name] = bench_label_errors(project, *label_error_features(project))
        print_label_errors(label_errors)
        if args.only == "labels":
            return 0
        folder = args.project or Path(tmp) / "flowers"
        with open_project(folder) as project:
            started = time.perf_counter()
            originals = project.dataset()
            features = project_features(project, image_ids=originals["image_id"].tolist())
            features_seconds = time.perf_counter() - started
            labels = label_errors.get("flowers") or bench_label_errors(project, features)
            active = bench_active(project, features, args.out)
            frame = project.dataset().set_index("image_id").loc[features.image_ids]
            refit = bench_refit(features, frame["label"].tolist(), project.classes())
            started = time.perf_counter()
            report = curate(project, features)
            curate_seconds = time.perf_counter() - started
            duplicates = bench_duplicates(project, Path(tmp) / "copies")
    print_table(features_seconds, labels, active, refit, duplicates, report, curate_seconds)
    return 0


def print_label_errors(results: dict) -> None:
    print(
        "| label errors, 10% of train labels flipped (3 seeds) | flipped | in the top 2x "
        "| flags precision / recall | ranking time |"
    )
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['flipped']} | {np.mean(r['top2x_recall']):.1%} "
            f"(min {min(r['top2x_recall']):.1%}) | "
            f"{np.mean(r['precision']):.1%} / {np.mean(r['recall']):.1%} | {np.mean(r['seconds']):.1f} s |"
        )
    print()


def print_table(features_seconds, labels, active, refit, duplicates, report, curate_seconds) -> None:
    mean = lambda values: float(np.mean(values))
    unc_n, unc = active["curves"]["uncertainty"]
    _, rnd = active["curves"]["random"]
    rows = [
        ("features, 750 images (cache: computed or loaded)", f"{features_seconds:.1f} s", ""),
        (
            f"label errors: flipped in top 2x ({labels['flipped']} flipped, 3 seeds)",
            f"{mean(labels['top2x_recall']):.1%} (min {min(labels['top2x_recall']):.1%})",
            ">= 85%",
        ),
        (
            "label errors: cleanlab flags precision / recall",
            f"{mean(labels['precision']):.1%} / {mean(labels['recall']):.1%}",
            "",
        ),
        ("label errors: suggested class = true class", f"{mean(labels['suggested_right']):.1%}", ""),
        ("label errors: ranking time (600 images, 5-fold)", f"{mean(labels['seconds']):.2f} s", ""),
        (f"active learning: val accuracy at {unc_n[0]} labels", f"{unc[0]:.1%}", ""),
        (f"active learning: +50 by uncertainty ({unc_n[-1]} labels)", f"{unc[-1]:.1%}", "> random"),
        ("active learning: +50 at random", f"{rnd[-1]:.1%}", ""),
        ("active learning: curve (uncertainty)", " ".join(f"{a:.3f}" for a in unc), ""),
        ("active learning: curve (random)", " ".join(f"{a:.3f}" for a in rnd), ""),
        ("active learning: plot", active["plot"], ""),
        ("linear head fit, 2,000 labeled (first fit)", f"{refit['cold']:.2f} s", ""),
        ("linear head refit, 2,000 labeled (after new labels)", f"{refit['warm']:.2f} s", "< 1 s"),
        ("duplicates: groups among the 750 originals", str(duplicates["false_groups_original"]), "0"),
        (
            "duplicates: planted groups found exactly",
            f"{duplicates['exact_groups']}/{duplicates['sources']} ({duplicates['groups']} groups in all)",
            "all",
        ),
        *[
            (f"duplicates: {name} copies grouped with source", f"{hit}/{total}", "all")
            for name, (hit, total) in duplicates["found_by_variant"].items()
        ],
        (
            "duplicates: leakage pairs (train/val)",
            f"{duplicates['leakage_pairs']} (>= {duplicates['expected_leakage_min']} planted)",
            "",
        ),
        ("duplicate search, 750 images (hashes cached)", f"{duplicates['seconds']:.2f} s", ""),
        ("duplicate thresholds fitted to flowers + copies", str(duplicates["thresholds"]), ""),
        (
            "`curate` report on 750 (cached features)",
            (
                f"{curate_seconds:.1f} s: {len(report['label_issues'])} label issues, "
                f"{len(report['outliers'])} outliers, "
                f"{len(report['duplicates'])} duplicate groups, {len(report['warnings'])} warnings"
            ),
            "",
        ),
    ]
    print("| measure | value | target |")
    print("|---|---|---|")
    for measure, value, target in rows:
        print(f"| {measure} | {value} | {target} |")


if __name__ == "__main__":
    raise SystemExit(main())
