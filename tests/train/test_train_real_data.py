"""Slow: a real backbone on a subset of ../shared/datasets/flowers, through the CLI, then predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from studio.cli import main
from studio.data.importers import import_source
from studio.data.store import Project

FLOWERS = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "flowers"


@pytest.mark.slow
@pytest.mark.skipif(
    not FLOWERS.is_dir(), reason=f"shared datasets not found at {FLOWERS} (../shared is absent)"
)
def test_flowers_subset_linear_probe_and_predict(tmp_path, capsys):
    # 3 classes x (10 train + 4 val) images, copied keeping the dataset's fixed split.
    source = tmp_path / "flowers"
    for split, count in (("train", 10), ("val", 4)):
        for name in ("daisy", "dandelion", "sunflower"):
            target = source / split / name
            target.mkdir(parents=True)
            for image in sorted((FLOWERS / split / name).glob("*.jpg"))[:count]:
                shutil.copy(image, target / image.name)
    with Project.create(tmp_path / "project") as project:
        import_source(project, source, layout="pre-split")
    assert (
        main(["train", str(tmp_path / "project"), "--strategy", "linear", "--device", "cpu", "--json"]) == 0
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["backbone"] == "tf_efficientnet_lite0" and result["val_accuracy"] >= 0.75
    config = json.loads((Path(result["run_dir"]) / "config.json").read_text())
    assert config["weights_source"]["kind"] == "bundled"

    images = sorted(str(p) for p in (source / "val" / "sunflower").glob("*.jpg"))
    assert main(["predict", result["run_dir"], *images, "--tta", "--json"]) == 0
    predictions = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(predictions) == 4
    assert sum(p["top"][0]["class"] == "sunflower" for p in predictions) >= 3
