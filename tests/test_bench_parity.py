"""bench/engine.py's parity part: it drives the app's service, the CLI, the evaluation and an exported bundle
on the same images, so it breaks when one of their interfaces changes (evaluate() began passing `errors`
to its predictor and the bench's stand-in did not take it). Runs it on a tiny project with the bundled
default backbone."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers_images import make_image_folder

from studio.data.importers import import_source
from studio.data.store import Project

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture()
def engine(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # engine.py imports its sibling `machine`
    import engine as module

    yield module
    sys.modules.pop("engine", None)


def test_the_parity_bench_finds_app_cli_eval_and_bundle_within_1e_4(engine, tmp_path):
    source = make_image_folder(tmp_path / "source", ["cat", "dog"], 6, size=48, seed=0)
    project = Project.create(tmp_path / "project")
    import_source(project, source, val_fraction=0.34, seed=0)
    data = project.dataset(labeled_only=True)
    paths = data[data["split"] == "val"]["path"].tolist()
    row = engine.parity(project, paths, tmp_path / "bundle")
    project.close()
    assert set(row["parity_pairs"]) == {f"{a} vs {b}" for a, b in [
        ("app", "cli"), ("app", "eval"), ("app", "bundle"), ("cli", "eval"), ("cli", "bundle"),
        ("eval", "bundle")]}
    assert row["parity_max_diff"] <= 1e-4
    assert row["predict_studio_images_per_s"] > 0 and row["predict_naive_images_per_s"] > 0
