"""Large projects: import, label-and-next, page change and the Curate analysis at 2,000 and 20,000 images.

For each size it generates tiny distinct images (half in class folders, half loose and unlabeled, a few
near-duplicate copies planted), then measures in-process, as the app's server does the work:

- import images/s (`import_source`, the Data tab's and `studio import`'s call);
- label-and-next: the Label tab's key click (save the label, find the next unlabeled image, make its
  display copy): median and p95 server time (target p95 < 200 ms at 20,000);
- page change: the thumbnail grid's next page (the page's rows and thumbnails), first and cached;
- the Curate analysis (`studio.curate.report.curate`: duplicates, leakage, label issues, outliers) on
  feature vectors, and the duplicate candidate search alone;
- feature caching: backbone feature extraction images/s on a sample (the real default backbone) and the
  time to read all N cached feature vectors back.

Synthetic features stand in for the backbone's in the analysis (random unit vectors, planted copies
close to their originals), the label-issue check's extra backbones' too (other seeds): the analysis
cost depends on N and D, not on the images; the extraction rate shows what computing real ones costs
(N / rate, per backbone).

    uv run python bench/scale.py [--sizes 2000 20000] [--rounds 40] [--feature-sample 64] [--skip-curate]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest.mock import patch

import numpy as np
from label_latency import server_rounds
from PIL import Image

from studio.app.suggestions import SuggestionStore
from studio.curate import report as curate_report
from studio.curate.duplicates import find_pairs, project_hashes
from studio.curate.features import FeatureSet
from studio.curate.report import LABEL_ISSUE_BACKBONES, curate
from studio.data.importers import import_source
from studio.train.features import FeatureCache
from studio.ui import label_queue as lq
from studio.ui.context import AppContext
from studio.ui.label_tab import PAGE_SIZE, LabelSession
from studio.ui.media import thumbnails

FEATURE_DIM = 1280  # tf_efficientnet_lite0's pooled features
CLASSES = 10
PLANTED_COPIES = 20


def write_project_images(root: Path, count: int, size: int = 24, seed: int = 0) -> tuple[Path, Path]:
    """Half labeled (class folders), half loose; the last PLANTED_COPIES labeled ones are mirrored
    copies of earlier images. Returns (labeled folder, unlabeled folder)."""
    rng = np.random.default_rng(seed)
    labeled, loose = root / "labeled", root / "loose"
    originals = []
    for index in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        is_labeled = index % 2 == 0
        if is_labeled and index >= count - 2 * PLANTED_COPIES and originals:
            pixels = originals[index % len(originals)][:, ::-1]  # a mirrored copy
        elif len(originals) < PLANTED_COPIES:
            originals.append(pixels)
        folder = labeled / f"class_{index % (2 * CLASSES) // 2:02d}" if is_labeled else loose
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(pixels), "RGB").save(
            folder / f"img_{index:06d}.png", compress_level=1
        )
    return labeled, loose


def synthetic_features(project_frame, seed: int = 0) -> FeatureSet:
    """Vectors around a centre per class (as a backbone's features cluster by class; unlabeled images
    near a random class), and the planted copies at their original's vector plus a little noise (a
    mirrored copy is close in a real backbone)."""
    rng = np.random.default_rng(seed)
    n = len(project_frame)
    centres = rng.normal(size=(CLASSES, FEATURE_DIM)).astype(np.float32)
    codes = project_frame["label"].astype("category").cat.codes.to_numpy()
    codes = np.where(codes < 0, rng.integers(0, CLASSES, n), codes % CLASSES)
    features = (centres[codes] + 1.5 * rng.normal(size=(n, FEATURE_DIM))).astype(np.float32)
    copies = project_frame.index[project_frame["original_name"].str.startswith("img_")].to_numpy()[
        -PLANTED_COPIES:
    ]
    for offset, row in enumerate(copies):
        features[row] = features[offset] + rng.normal(scale=0.05, size=FEATURE_DIM)
    return FeatureSet(project_frame["image_id"].to_numpy(), features, backbone="synthetic")


def page_change_ms(session: LabelSession, project, pages: int = 5) -> tuple[float, float]:
    """The grid's next-page work (as `refresh_grid`): (first visit of a page, same page again) median ms."""
    first, again = [], []
    for number in range(2, 2 + pages):
        for times in (first, again):
            began = time.perf_counter()
            data = session.table(project, compute=False)[0]
            positions = lq.queue_positions(data, "all", lq.ORDER_IMPORT)
            rows = data.iloc[positions[(number - 1) * PAGE_SIZE: number * PAGE_SIZE]]
            thumbnails(project.root, rows["path"].tolist())
            times.append((time.perf_counter() - began) * 1000)
    return statistics.median(first), statistics.median(again)


def feature_rate(project, sample: int) -> tuple[float, float]:
    """(images/s extracting real features of `sample` images, seconds to load N cached vectors)."""
    from studio.curate.features import project_features

    ids = project.dataset()["image_id"].tolist()
    project_features(project, None, device="cpu", image_ids=ids[:8])  # warm-up: weights read, threads started
    began = time.perf_counter()
    project_features(project, None, device="cpu", image_ids=ids[8:8 + sample])
    rate = sample / (time.perf_counter() - began)  # including the model's creation (~1 s)
    n = len(project.dataset())
    cache = FeatureCache(project.cache_dir / "features" / "bench-scale")
    cache.save({f"{i:064x}": np.zeros((2, FEATURE_DIM), np.float32) for i in range(n)})
    began = time.perf_counter()
    cache.load()
    return rate, time.perf_counter() - began


def measure(size: int, rounds: int, feature_sample: int, skip_curate: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="studio-scale-") as scratch:
        scratch = Path(scratch)
        labeled, loose = write_project_images(scratch / "source", size)
        context = AppContext(workspace=scratch / "workspace")
        try:
            project = context.create_project("bench")
            began = time.perf_counter()
            import_source(project, labeled, "class-folders")
            import_source(project, loose, "flat")
            import_rate = size / (time.perf_counter() - began)
            session = LabelSession(context, SuggestionStore())
            data, _ = session.table(project)
            first = lq.step(data, "unlabeled", lq.ORDER_IMPORT, None)
            label_times = sorted(
                server_rounds(context, str(project.root), first, rounds)[1:]
            )  # first: warm-up
            page_first, page_again = page_change_ms(session, project)
            frame = project.dataset()
            features = synthetic_features(frame)
            began = time.perf_counter()
            phash, dhash = project_hashes(project, frame)
            hash_seconds = time.perf_counter() - began
            began = time.perf_counter()
            pairs = find_pairs(phash, dhash, features.features)
            pair_seconds = time.perf_counter() - began
            labeled_rows = frame["label"].notna().to_numpy()
            extra = [synthetic_features(frame, seed=seed)
                     for seed in range(1, 1 + len(LABEL_ISSUE_BACKBONES))]
            extra = [FeatureSet(e.image_ids[labeled_rows], e.features[labeled_rows], name)
                     for e, name in zip(extra, LABEL_ISSUE_BACKBONES)]
            began = time.perf_counter()
            with patch.object(curate_report, "label_issue_features", lambda *a, **k: extra):
                groups = float("nan") if skip_curate else len(curate(project, features)["duplicates"])
            curate_seconds = float("nan") if skip_curate else time.perf_counter() - began
            rate, cache_load = (
                feature_rate(project, feature_sample) if feature_sample else (float("nan"),) * 2
            )
        finally:
            context.close()
    p95 = label_times[min(len(label_times) - 1, round(0.95 * (len(label_times) - 1)))]
    return {"images": size, "import_per_s": import_rate, "label_median_ms": statistics.median(label_times),
            "label_p95_ms": p95, "page_ms": page_first, "page_cached_ms": page_again,
            "hash_s": hash_seconds, "pairs_s": pair_seconds, "pairs": len(pairs),
            "groups": groups, "curate_s": curate_seconds,
            "features_per_s": rate, "cache_load_s": cache_load}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--rounds", type=int, default=40, help="label-and-next rounds per size")
    parser.add_argument("--feature-sample", type=int, default=64,
                        help="images whose real features are extracted to measure the rate (0: skip)")
    parser.add_argument("--skip-curate", action="store_true",
                        help="leave out the whole Curate analysis (minutes at 20,000 on 2 cores)")
    args = parser.parse_args(argv)
    results = []
    for size in args.sizes:
        result = measure(size, args.rounds, args.feature_sample, args.skip_curate)
        results.append(result)
        print(result, flush=True)
    print("| images | import images/s | label-and-next median / p95 | page change (new / cached) | "
          "Curate analysis (hashes; pair search) | duplicate groups | features images/s; cache read |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['images']:,} | {r['import_per_s']:.0f} | "
            f"{r['label_median_ms']:.0f} / {r['label_p95_ms']:.0f} ms "
            f"| {r['page_ms']:.0f} / {r['page_cached_ms']:.0f} ms | "
            f"{r['curate_s']:.1f} s ({r['hash_s']:.1f} s; "
            f"{r['pairs_s']:.2f} s) | {r['groups']} | {r['features_per_s']:.0f}; {r['cache_load_s']:.2f} s |"
        )
    worst = max(r["label_p95_ms"] for r in results)
    return 0 if worst < 200 else 1


if __name__ == "__main__":
    sys.exit(main())
