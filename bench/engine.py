"""Training-engine benchmark on the shared real datasets: accuracy, time and speed against naive baselines.

For each dataset (imported into a temporary project, keeping its fixed train/val split) it measures:
- a plain linear probe: PIL + timm eval transform, one forward per batch of 32 (the "naive loop", run
  in a fresh process like a user's own script), scikit-learn LogisticRegression on the pooled features;
- the studio's feature extraction on the same images (images/s ratio vs the naive loop);
- a plain 8-epoch fine-tune as in ../shared/datasets/README.md (PIL + timm train transform per item in
  the main process, AdamW 1e-4/1e-3, one-cycle, batch 16, label smoothing 0.1): its images/s is the
  "plain loop" speed;
- the studio's fine-tuning speed with the same model, batch and image size;
- the studio's default `auto` run (val accuracy as the run predicts, i.e. with TTA when it chose TTA on
  its training images, and both views beside it; total time, chosen backbone, the calibration it fitted
  on training data, its validation ECE before/after and the share of validation images it flags unknown);
- `parity`: a linear-probe run exported as an ONNX bundle, then the same validation images predicted by
  the app's path (the trainer service), `studio predict --json` (a subprocess), the evaluation and the
  bundle's own predict.py: the max probability difference between each pair; and prediction images/s
  of the studio (float32, onnxruntime), the bundle (onnxruntime), float32 torch, bf16 torch (where the
  CPU runs it natively; with its max difference from float32) and a naive float32 loop.

Prints one markdown table. Usage:
    uv run python bench/engine.py                      # everything (takes a while on 2 cores)
    uv run python bench/engine.py --quick              # small subsets, 1 epoch: checks the wiring
    uv run python bench/engine.py --only features auto --datasets flowers
    uv run python bench/engine.py --only finetune auto --seeds 0 1 2     # accuracy averaged over seeds
    uv run python bench/engine.py --only parity --datasets mri            # one numeric truth + speeds
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import MachineLoad
from PIL import Image
from sklearn.linear_model import LogisticRegression
from timm.data import create_transform, resolve_data_config

from studio.data.importers import import_source
from studio.data.store import Project
from studio.models.registry import DEFAULT_BACKBONE
from studio.models.weights import create_backbone, data_config
from studio.predict.checkpoint import preprocessing_dict
from studio.predict.device import cpu_count, inference_dtype, select_device
from studio.predict.inference import IDENTITY, InferenceRunner
from studio.predict.predictor import Predictor
from studio.train import TrainConfig, train
from studio.train.events import Epoch, Log, TrainEvent
from studio.train.features import extract_features
from studio.train.runs import EVAL_FILE, read_json

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
PARTS = ("features", "finetune", "auto", "parity")
MIN_TIMED = 256  # images per prediction-speed measurement


def _images(project: Project, split: str, limit: int | None) -> tuple[list[str], np.ndarray, list[str]]:
    data = project.dataset(labeled_only=True)
    data = data[data["split"] == split].sort_values("image_id")
    classes = sorted(set(project.dataset(labeled_only=True)["label"]))
    if limit:
        data = data.groupby("label", group_keys=False).head(max(1, limit // len(classes)))
    return data["path"].tolist(), data["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(), classes


# ---- naive baselines ------------------------------------------------------------------------------
def naive_features(model: torch.nn.Module, paths: list[str]) -> tuple[np.ndarray, float]:
    """PIL open, timm eval transform, one forward per batch of 32 (float32, torch.no_grad)."""
    transform = create_transform(**resolve_data_config({}, model=model))
    model.eval()
    out = []
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(paths), 32):
            batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths[i:i + 32]])
            out.append(model(batch).numpy())
    return np.concatenate(out), len(paths) / (time.perf_counter() - start)


def plain_finetune(project: Project, epochs: int, limit: int | None, seed: int = 0) -> dict:
    """The README's plain fine-tune; returns val accuracy, seconds per epoch and training images/s."""
    torch.manual_seed(seed)
    paths, targets, classes = _images(project, "train", limit)
    val_paths, val_targets, _ = _images(project, "val", limit)
    model, _ = create_backbone(DEFAULT_BACKBONE, num_classes=len(classes))
    cfg = resolve_data_config({}, model=model)
    train_tf = create_transform(**cfg, is_training=True, hflip=0.5, color_jitter=0.2)
    eval_tf = create_transform(**cfg)
    head = {id(p) for p in model.get_classifier().parameters()}
    optimizer = torch.optim.AdamW([
        {"params": [p for p in model.parameters() if id(p) not in head], "lr": 1e-4},
        {"params": list(model.get_classifier().parameters()), "lr": 1e-3}], weight_decay=0.01)
    batch, steps = 16, math.ceil(len(paths) / 16)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[1e-4, 1e-3], total_steps=epochs * steps)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    rng = np.random.default_rng(seed)
    train_seconds, seen = 0.0, 0
    for _ in range(epochs):
        model.train()
        order = rng.permutation(len(paths))
        start = time.perf_counter()
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            x = torch.stack([train_tf(Image.open(paths[j]).convert("RGB")) for j in idx])
            loss = loss_fn(model(x), torch.from_numpy(targets[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            seen += len(idx)
        train_seconds += time.perf_counter() - start
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(val_paths), 32):
            x = torch.stack([eval_tf(Image.open(p).convert("RGB")) for p in val_paths[i:i + 32]])
            correct += int((model(x).argmax(1).numpy() == val_targets[i:i + 32]).sum())
    return {"accuracy": correct / len(val_paths), "epoch_s": train_seconds / epochs,
            "images_per_s": seen / train_seconds}


def naive_features_fresh_process(paths: list[str]) -> tuple[np.ndarray, float]:
    """The naive loop in a new interpreter, as a user's own script would run it: the studio tunes the
    process's allocator for CPU tensors (studio.predict.device), which would speed up a naive loop
    measured after it in this process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_naive_default_backbone, (paths,))


def _naive_default_backbone(paths: list[str]) -> tuple[np.ndarray, float]:
    torch.set_num_threads(cpu_count())
    model, _ = create_backbone(DEFAULT_BACKBONE, num_classes=0)
    return naive_features(model, paths)


# ---- the studio -----------------------------------------------------------------------------------
def studio_features(paths: list[str]) -> float:
    device = select_device("auto")
    model, _ = create_backbone(DEFAULT_BACKBONE, num_classes=0)
    prep = preprocessing_dict(data_config(model)["image_size"], data_config(model))
    runner = InferenceRunner(model, prep, device, inference_dtype(device))
    _, stats = extract_features(runner, None, [str(i) for i in range(len(paths))], paths, (IDENTITY,))
    return stats.images_per_s


def studio_finetune_speed(project: Project) -> float:
    """Training images/s of the studio's loop (epoch event), same backbone, batch 16, default size."""
    rates = []
    config = TrainConfig(strategy="finetune", epochs=1, batch_size=16, augment="light")
    train(project, config, callback=lambda e: rates.append(e.images_per_s) if isinstance(e, Epoch) else None)
    return rates[-1]


def run_dataset(name: str, args, work: Path) -> dict:
    row: dict = {"dataset": name}
    project = Project.create(work / name)
    import_source(project, args.data / name, layout="pre-split")
    limit = None
    if args.quick:  # keep a small stratified subset: the rest of the images leave the splits
        keep = set(_images(project, "train", 80)[0]) | set(_images(project, "val", 40)[0])
        data = project.dataset()
        project.set_split(data[~data["path"].isin(keep)]["image_id"].tolist(), None)
    train_paths, train_y, _ = _images(project, "train", limit)
    val_paths, val_y, _ = _images(project, "val", limit)
    if "features" in args.only:
        features, naive_rate = naive_features_fresh_process(train_paths + val_paths)
        start = time.perf_counter()
        lp = LogisticRegression(max_iter=2000).fit(features[:len(train_paths)], train_y)
        row["lp_accuracy"] = float((lp.predict(features[len(train_paths):]) == val_y).mean())
        # Feature time from the loop's own rate (the fresh process's start-up is not the probe's cost).
        row["lp_seconds"] = len(features) / naive_rate + time.perf_counter() - start
        row["naive_images_per_s"] = naive_rate
        row["studio_images_per_s"] = studio_features(train_paths + val_paths)
        print(
            f"{name}: features naive {naive_rate:.1f} img/s, studio {row['studio_images_per_s']:.1f} img/s, "
            f"plain LP {row['lp_accuracy']:.3f}",
            file=sys.stderr,
            flush=True,
        )
    if "finetune" in args.only:
        plains = [
            plain_finetune(project, 1 if args.quick else args.epochs, limit, seed) for seed in args.seeds
        ]
        row.update(
            ft_accuracy=_mean(p["accuracy"] for p in plains),
            ft_range=_spread(p["accuracy"] for p in plains),
            ft_seconds=plains[0]["epoch_s"] * args.epochs,
            plain_train_images_per_s=_mean(p["images_per_s"] for p in plains),
        )
        row["studio_train_images_per_s"] = studio_finetune_speed(project)
        print(
            f"{name}: fine-tune plain {row['plain_train_images_per_s']:.1f} img/s "
            f"(acc {row['ft_accuracy']:.3f}), "
            f"studio {row['studio_train_images_per_s']:.1f} img/s",
            file=sys.stderr,
            flush=True,
        )
    if "auto" in args.only:
        results, seconds = [], []
        for seed in args.seeds:
            start = time.perf_counter()
            results.append(train(project, TrainConfig(seed=seed), callback=_log))
            seconds.append(time.perf_counter() - start)
        calibrations = [r.calibration or {} for r in results]
        # The share of validation images the run flags "not sure" (its unknown threshold): in-domain
        # images, so mostly right ones should pass.
        flagged = [(read_json(Path(r.run_dir) / EVAL_FILE) or {}).get("unknown_rate", 0.0) for r in results]
        # And of another domain's images (the other sets' val images): mostly flagged, most of them as
        # unlike the training images (studio.predict.novelty).
        others = other_domain_images(args.data, name)
        foreign = [flag_shares(r.run_dir, others) for r in results] if others else [None] * len(results)
        row.update(
            auto_ece=" | ".join(
                f"T={c.get('temperature', 1):.2f}, val ECE {c.get('ece_before', 0):.3f}->"
                f"{c.get('ece_after', 0):.3f}, val flagged unknown {share:.0%}"
                + (f", other sets' images flagged {f[0]:.0%} ({f[1]:.0%} unlike the training images)"
                   if f else "")
                for c, share, f in zip(calibrations, flagged, foreign)
            ),
            auto_backbone=", ".join(r.backbone for r in results),
        )
        # The run's number is its default prediction's (with TTA when it chose TTA); both views beside it.
        row.update(auto_accuracy=_mean(r.accuracy for r in results),
                   auto_range=_spread(r.accuracy for r in results),
                   auto_accuracy_plain=_mean(r.val_accuracy for r in results),
                   auto_accuracy_tta=_mean(r.val_accuracy_tta for r in results),
                   auto_seconds=max(seconds),
                   auto_kept=", ".join(r.strategy + (" + TTA" if r.tta else "") for r in results),
                   auto_reason=" | ".join(r.reason for r in results))
    if "parity" in args.only:
        row.update(parity(project, val_paths, work / f"{name}-bundle"))
    project.close()
    return row


def other_domain_images(data: Path, name: str, limit: int = 100) -> list[str]:
    """Val images of the sets beside `name` (another domain for its models), at most `limit`, spread
    evenly over them."""
    paths = sorted(str(p) for other in sorted(data.iterdir()) if other.is_dir() and other.name != name
                   for p in (other / "val").rglob("*.jpg"))
    step = max(1, len(paths) // limit)
    return paths[::step][:limit]


def flag_shares(run_dir, paths: list[str]) -> tuple[float, float]:
    """(share flagged unknown, share unlike the training images) of `paths` as the run predicts them."""
    predictions = Predictor.from_run(run_dir, "cpu").predict(paths)
    return (float(np.mean([p["unknown"] for p in predictions])),
            float(np.mean([p["unlike_training"] for p in predictions])))


def _log(event: TrainEvent) -> None:
    if isinstance(event, Epoch):
        # epochs trained on every training image (after auto's held-out check) have nothing to score
        val = "—" if event.val_accuracy is None else f"{event.val_accuracy:.3f}"
        print(f"  [{event.stage}] epoch {event.epoch}: val {val} ({event.images_per_s:.1f} img/s)",
              file=sys.stderr, flush=True)
    elif isinstance(event, Log):
        print(f"  {event.message}", file=sys.stderr, flush=True)


def _images_per_s(call, paths: list[str]) -> tuple[np.ndarray, float]:
    # Warm-up with full batches (sessions, allocator): every path is measured warm, as the bundle is after
    # its parity pass (a fresh session's first batches of 32 run slower than later ones).
    call(paths[:64])
    # At least MIN_TIMED images (a small set repeated): MRI's 41 val images pass in under half a second,
    # where one stray pause halved the figure.
    timed = paths * max(1, math.ceil(MIN_TIMED / max(1, len(paths))))
    start = time.perf_counter()
    out = call(timed)
    return np.asarray(out)[:len(paths)], len(timed) / (time.perf_counter() - start)


def parity(project: Project, paths: list[str], bundle_dir: Path) -> dict:
    """App, CLI, evaluation and bundle on the same images: max probability differences; prediction speeds."""
    import json
    import subprocess

    from studio.export import export_run
    from studio.export.parity import load_bundle_script
    from studio.predict.checkpoint import load_model
    from studio.predict.device import _cpu_bf16_fast
    from studio.predict.evaluate import evaluate
    from studio.service.trainer import TrainerService

    run = train(project, TrainConfig(strategy="linear", seed=0)).run_dir
    export_run(run, bundle_dir, "onnx")
    classes = load_model(run).class_names
    service = TrainerService("cpu")
    try:
        app = np.stack([r["probs"] for r in service.predict(run, paths, False, len(classes), timeout=600)])
    finally:
        service.shutdown(10)
    done = subprocess.run([sys.executable, "-m", "studio", "predict", str(run), *paths, "--json", "--top-k",
                           str(len(classes)), "--device", "cpu"], capture_output=True, text=True, check=True)
    cli = np.array([[{t["class"]: t["probability"] for t in r["top"]}[c] for c in classes]
                    for r in json.loads(done.stdout.strip().splitlines()[-1])])

    class Recorder:
        def __init__(self, predictor):
            self.inner, self.loaded, self.class_names = predictor, predictor.loaded, predictor.class_names

        def probabilities(self, images, views, errors=None):  # Predictor.probabilities' signature
            self.paths = [str(p) for p in images]
            self.probs = self.inner.probabilities(images, views, errors)
            return self.probs

    recorder = Recorder(Predictor(load_model(run), "cpu"))
    evaluate(run, project, predictor=recorder)
    row_of = {p: i for i, p in enumerate(recorder.paths)}
    # what the evaluation scores: the run's default prediction (the TTA average when it predicts with TTA)
    default = recorder.probs.mean(axis=1) if recorder.loaded.tta else recorder.probs[:, 0]
    eval_probs = default[[row_of[p] for p in paths]]
    bundle = load_bundle_script(bundle_dir).BundleModel(bundle_dir)
    sources = {"app": app, "cli": cli, "eval": eval_probs, "bundle": bundle.probabilities(paths)}
    names = list(sources)
    diffs = {f"{a} vs {b}": float(np.abs(sources[a] - sources[b]).max())
             for i, a in enumerate(names) for b in names[i + 1:]}
    row = {"parity_max_diff": max(diffs.values()), "parity_pairs": diffs}
    predictor = Predictor(load_model(run), "cpu")
    f32, row["predict_studio_images_per_s"] = _images_per_s(lambda p: predictor.probabilities(p)[:, 0], paths)
    _, row["predict_bundle_images_per_s"] = _images_per_s(bundle.probabilities, paths)
    predictor.runner.runtime = "torch"
    torch_f32, row["predict_torch_f32_images_per_s"] = _images_per_s(
        lambda p: predictor.probabilities(p)[:, 0], paths
    )
    row["torch_f32_vs_onnx_max_diff"] = float(np.abs(torch_f32 - f32).max())
    if _cpu_bf16_fast():
        predictor.runner.dtype = torch.bfloat16
        bf16, row["predict_bf16_images_per_s"] = _images_per_s(
            lambda p: predictor.probabilities(p)[:, 0], paths
        )
        row["bf16_max_diff"] = float(np.abs(bf16 - f32).max())
    loaded = load_model(run)
    _, row["predict_naive_images_per_s"] = _images_per_s(lambda p: naive_features(loaded.model, p)[0], paths)
    print(f"parity: {diffs}", file=sys.stderr, flush=True)
    return row


def parity_lines(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        if "parity_max_diff" not in r:
            continue
        g = r.get
        lines.append(
            f"\n{r['dataset']} one numeric truth: max probability difference {r['parity_max_diff']:.1e} "
            f"over app/CLI/eval/bundle ({', '.join(f'{k} {v:.1e}' for k, v in r['parity_pairs'].items())})."
        )
        bf16 = (
            f", bf16 torch {g('predict_bf16_images_per_s'):.1f} "
            f"(max diff from float32 {g('bf16_max_diff'):.3f})"
            if g("predict_bf16_images_per_s")
            else ""
        )
        lines.append(
            f"{r['dataset']} prediction images/s (batch 32, CPU): studio float32 onnxruntime "
            f"{g('predict_studio_images_per_s'):.1f}, "
            f"bundle onnxruntime {g('predict_bundle_images_per_s'):.1f}, "
            f"float32 torch {g('predict_torch_f32_images_per_s'):.1f} (max diff "
            f"{g('torch_f32_vs_onnx_max_diff'):.1e}){bf16}, naive float32 loop "
            f"{g('predict_naive_images_per_s'):.1f}."
        )
    return lines


def _mean(values) -> float:
    return float(np.mean(list(values)))


def _spread(values) -> tuple[float, float]:
    values = list(values)
    return min(values), max(values)


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _num(value, fmt="{:.1f}") -> str:
    return "—" if value is None else fmt.format(value)


def _ratio(a, b) -> str:
    return "—" if a is None or b is None else f"{a / b:.2f}x"


def _pct_range(mean, spread) -> str:
    if mean is None:
        return "—"
    if spread is None or spread[0] == spread[1]:
        return _pct(mean)
    return f"{_pct(mean)} ({_pct(spread[0])}-{_pct(spread[1])})"


def table(rows: list[dict], seeds: int = 1) -> str:
    over = f", mean of {seeds} seeds (range)" if seeds > 1 else ""
    header = (
        f"| dataset | auto val acc, as it predicts{over} | auto plain / with TTA | auto kept "
        "| auto time (s, slowest) "
        f"| plain LP acc (time s) | plain FT 8 ep acc{over} (time s) | features img/s studio vs naive "
        "| fine-tune img/s studio vs plain |"
    )
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        g = r.get
        lines.append(
            f"| {r['dataset']} | {_pct_range(g('auto_accuracy'), g('auto_range'))} | "
            f"{_pct(g('auto_accuracy_plain'))} / {_pct(g('auto_accuracy_tta'))} | "
            f"{g('auto_kept', '—')} | "
            f"{_num(g('auto_seconds'), '{:.0f}')} | {_pct(g('lp_accuracy'))} "
            f"({_num(g('lp_seconds'), '{:.0f}')}) | "
            f"{_pct_range(g('ft_accuracy'), g('ft_range'))} ({_num(g('ft_seconds'), '{:.0f}')}) | "
            f"{_num(g('studio_images_per_s'))} vs {_num(g('naive_images_per_s'))} "
            f"({_ratio(g('studio_images_per_s'), g('naive_images_per_s'))}) | "
            f"{_num(g('studio_train_images_per_s'))} vs {_num(g('plain_train_images_per_s'))} "
            f"({_ratio(g('studio_train_images_per_s'), g('plain_train_images_per_s'))}) |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["flowers", "mri"])
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--quick", action="store_true", help="80+40-image subsets, 1-epoch plain fine-tune")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the plain fine-tune baseline")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="training seeds for auto and the plain fine-tune (accuracy: mean and range)")
    parser.add_argument("--data", type=Path, default=DATASETS, help="folder holding the datasets")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"The shared datasets are not at {args.data}; nothing to benchmark.", file=sys.stderr)
        return 1
    rows = []
    load = MachineLoad()
    with tempfile.TemporaryDirectory(prefix="studio-bench-") as work:
        for name in args.datasets:
            rows.append(run_dataset(name, args, Path(work)))
    print(table(rows, len(args.seeds)))
    for r in rows:
        if r.get("auto_reason"):
            print(
                f"\n{r['dataset']} auto ({r['auto_backbone']}): {r['auto_reason']}\n"
                f"  calibration: {r['auto_ece']}"
            )
    for line in parity_lines(rows):
        print(line)
    print(f"\n{cpu_count()} CPU cores, torch {torch.__version__}, inference dtype "
          f"{inference_dtype(select_device('auto'))}, device {select_device('auto')}; {load.summary()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
