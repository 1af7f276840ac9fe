"""Labeling latency on a 2,000-image project, measured through gradio_client like a script would.

Generates 2,000 tiny images, imports them with /import_path, then times 50 rounds of
`/set_label` (save one label) + `/next_image` (find the next unlabeled image and make its display copy),
and prints the median and 95th percentile per round. The target is under 200 ms of server time, so
the same round is also timed in-process (the Label tab's own calls, without HTTP and the client).

    uv run python bench/label_latency.py [--images 2000] [--rounds 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from studio.app.suggestions import SuggestionStore
from studio.ui import label_queue as lq
from studio.ui.context import AppContext
from studio.ui.label_tab import LabelSession
from studio.ui.label_tab import _progress_text as progress_text
from studio.ui.launcher import start


def write_images(folder: Path, count: int, size: int = 16) -> Path:
    """`count` distinct tiny PNGs, loose in one folder (an unlabeled import)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"img_{index:05d}.png")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args(argv)
    from gradio_client import Client

    with tempfile.TemporaryDirectory(prefix="studio-bench-") as scratch:
        scratch = Path(scratch)
        source = write_images(scratch / "source", args.images)
        context = AppContext(workspace=scratch / "workspace")
        app, url = start(context)
        try:
            client = Client(url, verbose=False)
            root = client.predict("bench", False, api_name="/create_project")
            began = time.perf_counter()
            report = client.predict(root, str(source), "flat", api_name="/import_path")
            print(f"imported {report['imported']} images in {time.perf_counter() - began:.1f} s")
            current = client.predict(root, None, "unlabeled", "import order", api_name="/next_image")
            rounds = []
            for index in range(args.rounds):
                began = time.perf_counter()
                client.predict(root, current["image_id"], f"class{index % 3}", api_name="/set_label")
                current = client.predict(root, current["image_id"], "unlabeled", "import order",
                                         api_name="/next_image")
                rounds.append((time.perf_counter() - began) * 1000)
            server = server_rounds(context, root, current["image_id"], args.rounds)
        finally:
            app.close()
            context.close()
    print(f"label + next image, {args.rounds} rounds on {args.images} images:")
    print(f"  through gradio_client (2 calls, HTTP + queue): {_summary(rounds)}")
    print(f"  server work (the Label tab's calls):           {_summary(server)}")
    return 0 if statistics.median(server) < 200 else 1


def server_rounds(context: AppContext, root: str, current: int, rounds: int) -> list[float]:
    """The Label tab's click path in-process (a class key's `label_and_next`): read the classes, save the
    label, find the next image, make its display copy and the progress line."""
    session = LabelSession(context, SuggestionStore())
    project = context.open_project(root)
    times = []
    for index in range(rounds):
        began = time.perf_counter()
        project.classes()
        session.label(root, current, f"class{index % 3}")
        data, _ = session.table(project)
        current = lq.step(data, "unlabeled", lq.ORDER_IMPORT, current)
        session.view(project, data, current)
        progress_text(data, "unlabeled", lq.ORDER_IMPORT)
        times.append((time.perf_counter() - began) * 1000)
    return times


def _summary(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms"


if __name__ == "__main__":
    sys.exit(main())
