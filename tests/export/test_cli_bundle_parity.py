"""One numeric truth: `studio predict --json` and the exported bundle's predict.py give the same JSON
shape, the same probabilities (within 1e-4) and the same "unknown" flags; so does the evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import val_paths

from studio.cli import main
from studio.export.parity import TOLERANCE, load_bundle_script, write_generated_images
from studio.predict.checkpoint import load_model, read_checkpoint
from studio.predict.evaluate import evaluate
from studio.predict.predictor import Predictor


def _by_class(prediction: dict) -> dict:
    return {t["class"]: t["probability"] for t in prediction["top"]}


def test_cli_predict_and_bundle_agree_within_tolerance(trained_run, onnx_bundle, capsys, tmp_path):
    dest, _ = onnx_bundle
    images = val_paths(trained_run) + write_generated_images(tmp_path)
    assert main(["predict", str(trained_run), *images, "--top-k", "2", "--json", "--device", "cpu"]) == 0
    cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    bundle = load_bundle_script(dest).BundleModel(dest).predict(images, top_k=2)
    keys = {"path", "top", "unknown", "unlike_training"}
    assert [set(p) for p in cli] == [set(p) for p in bundle] == [keys] * len(images)
    for ours, theirs in zip(cli, bundle):
        assert ours["path"] == theirs["path"] and ours["unknown"] == theirs["unknown"]
        assert ours["unlike_training"] == theirs["unlike_training"]
        assert ours["top"][0]["class"] == theirs["top"][0]["class"]
        a, b = _by_class(ours), _by_class(theirs)
        assert max(abs(a[c] - b[c]) for c in a) <= TOLERANCE
    checkpoint = read_checkpoint(trained_run)
    assert (
        json.loads((dest / "decision.json").read_text())["unknown_threshold"]
        == checkpoint["unknown_threshold"]
    )
    decision = json.loads((dest / "decision.json").read_text())
    assert decision["novelty_threshold"] == checkpoint["novelty"]["threshold"]


def test_cli_predict_tta_and_bundle_tta_agree_within_tolerance(trained_run, onnx_bundle, capsys, tmp_path):
    """`--tta` means the same views everywhere: the studio's TTA, not a cheaper mirror-only variant."""
    dest, result = onnx_bundle
    images = val_paths(trained_run) + write_generated_images(tmp_path)
    args = ["predict", str(trained_run), *images, "--tta", "--top-k", "2", "--json", "--device", "cpu"]
    assert main(args) == 0
    cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    bundle = load_bundle_script(dest).BundleModel(dest)
    tta = bundle.predict(images, tta=True, top_k=2)
    plain = bundle.probabilities(images)
    for ours, theirs, untouched in zip(cli, tta, plain):
        assert ours["unknown"] == theirs["unknown"] and ours["top"][0]["class"] == theirs["top"][0]["class"]
        a, b = _by_class(ours), _by_class(theirs)
        assert max(abs(a[c] - b[c]) for c in a) <= TOLERANCE
    assert np.abs(bundle.probabilities(images, tta=True) - plain).max() > 1e-3  # TTA changed something
    assert result["parity"]["tta_max_abs_diff"] <= TOLERANCE  # and the export measured it


def test_evaluation_uses_the_predictor_s_numbers(trained_run):
    report = evaluate(trained_run, device="cpu")
    paths = val_paths(trained_run)
    probs = Predictor(load_model(trained_run), "cpu").probabilities(paths)[:, 0]
    assert report["accuracy"] == float(np.mean(probs.argmax(1) == [report["classes"].index(label) for label in
                                                                   _labels(trained_run)]))
    assert {"temperature", "ece_before", "ece_after"} <= set(report["calibration"])


def _labels(run_dir) -> list[str]:
    return [item["label"] for item in json.loads((run_dir / "split.json").read_text())["val"]]


def test_a_run_that_chose_tta_predicts_with_it_everywhere_by_default(trained_run, capsys, tmp_path):
    """The run's own TTA choice is the default of `studio predict`, the evaluation and the bundle's
    predict.py alike; `--tta` / `--no-tta` override it in both."""
    import shutil

    from studio.export import export_run
    from studio.predict.checkpoint import save_checkpoint

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    checkpoint = read_checkpoint(run)
    checkpoint["tta"] = {"tta": True, "fitted_on": "test", "n": 4, "accuracy_plain": 0.5,
                         "accuracy_tta": 0.75}
    save_checkpoint(checkpoint, run / "model.pt")
    dest = tmp_path / "bundle"
    export_run(run, dest, "onnx")
    assert json.loads((dest / "decision.json").read_text())["tta"] is True
    images = val_paths(run) + write_generated_images(tmp_path)

    def cli(*flags) -> list[dict]:
        assert main(["predict", str(run), *images, "--top-k", "2", "--json", "--device", "cpu", *flags]) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    bundle = load_bundle_script(dest).BundleModel(dest)
    default, with_tta, without = cli(), cli("--tta"), cli("--no-tta")
    for ours, forced, theirs in zip(default, with_tta, bundle.predict(images, top_k=2)):
        assert _by_class(ours) == _by_class(forced)  # no flag = the run's choice = TTA
        a, b = _by_class(ours), _by_class(theirs)
        assert max(abs(a[c] - b[c]) for c in a) <= TOLERANCE
    plain = bundle.probabilities(images, tta=False)
    for ours, row in zip(without, plain):
        assert max(abs(p - row[bundle.class_names.index(c)]) for c, p in _by_class(ours).items()) <= TOLERANCE
    assert np.abs(bundle.probabilities(images) - plain).max() > 1e-3  # the bundle's default is TTA too
    report = evaluate(run, device="cpu")
    assert report["tta_default"] is True and report["default_accuracy"] == report["tta"]["accuracy"]
    assert "predicts with test-time augmentation by default" in (dest / "model_card.md").read_text()


def test_bundle_predict_script_reads_folders_and_writes_the_studio_s_csv(trained_run, onnx_bundle, capsys,
                                                                         tmp_path):
    """`predict.py FOLDER --csv OUT` finds the same images as `studio predict FOLDER --csv OUT` (recursively,
    unreadable files listed, other files ignored) and writes the same table within the parity tolerance."""
    import csv
    import shutil

    dest, _ = onnx_bundle
    folder = tmp_path / "incoming"
    (folder / "nested").mkdir(parents=True)
    for i, path in enumerate(val_paths(trained_run)):
        shutil.copy(path, (folder if i % 2 else folder / "nested") / f"photo {i}.PNG")
    (folder / "half-copied.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"x" * 40)
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    ours, theirs = tmp_path / "studio.csv", tmp_path / "bundle.csv"
    assert main(["predict", str(trained_run), str(folder), "--csv", str(ours), "--json", "--top-k", "1"]) == 0
    cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert load_bundle_script(dest).main([str(folder), "--csv", str(theirs), "--json", "--top-k", "1"]) == 0
    bundle = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [p["path"] for p in cli] == [p["path"] for p in bundle]
    assert len(cli) == len(val_paths(trained_run)) + 2 and all(len(p["top"]) <= 1 for p in cli + bundle)
    rows = [list(csv.reader(path.open(encoding="utf-8"))) for path in (ours, theirs)]
    assert rows[0][0] == rows[1][0] and len(rows[0]) == len(rows[1]) == len(cli) + 1
    for a, b in zip(rows[0][1:], rows[1][1:]):
        assert (a[0], a[1], a[3], bool(a[-1])) == (b[0], b[1], b[3], bool(b[-1]))  # path, class, unknown
        if not a[-1]:
            assert max(abs(float(x) - float(y)) for x, y in zip(a[2:-1], b[2:-1])) <= TOLERANCE
    # Unreadable files are listed with plain reasons, not Pillow's ("cannot identify image file ...").
    studio_says, bundle_says = ({Path(r[0]).name: r[-1] for r in table[1:] if r[-1]} for table in rows)
    assert set(bundle_says) == set(studio_says) == {"empty.png", "half-copied.jpg"}
    assert bundle_says["empty.png"] == studio_says["empty.png"] == "file is empty (0 bytes)"
    assert "cannot identify" not in bundle_says["half-copied.jpg"]


def test_bundle_predict_script_refuses_a_missing_path_with_a_message(onnx_bundle, tmp_path, capsys):
    import pytest

    dest, _ = onnx_bundle
    with pytest.raises(SystemExit) as stop:
        load_bundle_script(dest).main([str(tmp_path / "nowhere.jpg")])
    assert stop.value.code == 2 and "neither an image file nor a folder" in capsys.readouterr().err
