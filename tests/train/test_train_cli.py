"""`studio train / predict / eval / backbones` through studio.cli.main with --json."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest
from train_helpers import TINY_BACKBONE

from studio.cli import main
from studio.train.events import Epoch

TINY = ["--backbone", TINY_BACKBONE, "--no-pretrained", "--image-size", "64", "--epochs", "1",
        "--batch-size", "4", "--device", "cpu"]


def _last_json(capsys):
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_train_predict_eval_json(project, capsys, tmp_path):
    assert main(["train", str(project.root), *TINY, "--strategy", "linear", "--json"]) == 0
    result = _last_json(capsys)
    for key in (
        "val_accuracy",
        "val_accuracy_tta",
        "strategy",
        "backbone",
        "epochs_run",
        "train_seconds",
        "run_dir",
    ):
        assert key in result
    assert result["strategy"] == "linear" and result["backbone"] == TINY_BACKBONE
    run_dir = result["run_dir"]

    images = project.dataset()["path"].tolist()[:2]
    assert main(["predict", run_dir, *images, "--top-k", "1", "--tta", "--json"]) == 0
    predictions = _last_json(capsys)
    assert [p["path"] for p in predictions] == images
    assert all(len(p["top"]) == 1 and p["top"][0]["class"] in ("cat", "dog") for p in predictions)

    out_csv = tmp_path / "pred.csv"
    assert main(["predict", run_dir, str(project.images_dir), "--csv", str(out_csv), "--json"]) == 0
    assert len(_last_json(capsys)) == len(project.dataset())
    with open(out_csv) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(project.dataset()) and {"path", "prediction", "probability"} <= set(rows[0])

    assert main(["eval", run_dir, "--tta", "--json"]) == 0
    report = _last_json(capsys)
    assert report["accuracy"] == pytest.approx(result["val_accuracy"])
    assert "confusion_matrix" in report and "tta" in report


def test_no_pretrained_defaults_to_scratch(project, capsys):
    assert main(["train", str(project.root), *TINY, "--json", "--quiet"]) == 0
    assert _last_json(capsys)["strategy"] == "scratch"


def test_backbones_lists_the_registry(capsys):
    assert main(["backbones", "--json"]) == 0
    names = [b["name"] for b in _last_json(capsys)]
    assert "tf_efficientnet_lite0" in names


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--backbone", "resnet5O"], "Unknown backbone"),
        (["--weights", "/no/such/file.pth"], "does not exist"),
    ],
)
def test_train_errors_are_one_line_exit_2(project, capsys, argv, message):
    assert main(["train", str(project.root), "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


def test_predict_missing_image(project, capsys, tmp_path):
    assert main(["predict", str(tmp_path), str(tmp_path / "none.jpg")]) == 2
    assert "neither an image file nor a folder" in capsys.readouterr().err


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler during the test: a test run started as a background job inherits SIGINT
    ignored, and the CLI rightly leaves an ignored SIGINT alone (no Ctrl-C can reach it then)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _ctrl_c_on_epoch(monkeypatch, presses: int, gap_s: float = 0.0) -> None:
    """Press Ctrl-C (SIGINT to this process) `presses` times, `gap_s` apart, when the first epoch ends."""
    import time

    from studio.cli import train_commands

    progress = train_commands._progress

    def pressing(event):
        progress(event)
        if isinstance(event, Epoch) and event.epoch == 1:
            for press in range(presses):
                if press:
                    time.sleep(gap_s)
                signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(train_commands, "_progress", pressing)


def test_ctrl_c_cancels_the_run_and_keeps_its_best_checkpoint(project, capsys, monkeypatch, default_sigint):
    _ctrl_c_on_epoch(monkeypatch, presses=1)
    assert (
        main(["train", str(project.root), *TINY, "--strategy", "finetune", "--epochs", "5", "--json"]) == 130
    )
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["status"] == "cancelled" and result["epochs_run"] == 1
    run = Path(result["run_dir"])
    assert (run / "model.pt").is_file()
    assert json.loads((run / "status.json").read_text())["status"] == "cancelled"
    assert "Press Ctrl-C again" in captured.err and "checkpoint so far" in captured.err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_second_ctrl_c_quits_at_once_and_marks_the_run_cancelled(project, capsys, monkeypatch,
                                                                 default_sigint):
    from studio.cli.train_commands import SAME_KEY_PRESS_S

    _ctrl_c_on_epoch(monkeypatch, presses=2, gap_s=SAME_KEY_PRESS_S + 0.2)
    assert main(["train", str(project.root), *TINY, "--strategy", "finetune", "--epochs", "5"]) == 130
    assert "error: interrupted" in capsys.readouterr().err
    (run,) = (project.root / "runs").iterdir()
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "cancelled" and "Ctrl-C" in status["message"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_one_ctrl_c_delivered_twice_cancels_once(project, capsys, monkeypatch, default_sigint):
    """`uv run` forwards Ctrl-C to the studio and the terminal sends it to the process group as well: the
    two arrive together and must not read as a second press (which quits without the --json result)."""
    _ctrl_c_on_epoch(monkeypatch, presses=2, gap_s=0.01)
    assert (
        main(["train", str(project.root), *TINY, "--strategy", "finetune", "--epochs", "5", "--json"]) == 130
    )
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["status"] == "cancelled"
    assert "error: interrupted" not in captured.err


def test_predict_lists_and_skips_unreadable_files(project, capsys, tmp_path):
    assert main(["train", str(project.root), *TINY, "--strategy", "linear", "--json", "--quiet"]) == 0
    run_dir = _last_json(capsys)["run_dir"]
    good = project.dataset()["path"].iloc[0]
    broken = tmp_path / "notes.jpg"
    broken.write_text("a text file named like a photo")
    assert main(["predict", run_dir, good, str(broken), "--json"]) == 0
    captured = capsys.readouterr()
    first, second = json.loads(captured.out.strip().splitlines()[-1])
    assert first["top"] and "error" not in first
    assert second["top"] == [] and "not an image" in second["error"]
    assert f"skipped {broken}: not an image" in captured.err
    assert main(["predict", run_dir, str(broken)]) == 2
    assert "notes.jpg: not an image" in capsys.readouterr().err


def test_a_project_stands_for_its_newest_finished_run(project, capsys, tmp_path):
    from studio.data.store import Project

    empty = Project.create(tmp_path / "empty")
    empty.close()
    assert main(["eval", str(empty.root)]) == 2
    assert "no finished run with a model yet" in capsys.readouterr().err
    assert main(["train", str(project.root), *TINY, "--strategy", "linear", "--json", "--quiet"]) == 0
    run_dir = _last_json(capsys)["run_dir"]
    image = project.dataset()["path"].iloc[0]
    assert main(["predict", str(project.root), image, "--json"]) == 0
    captured = capsys.readouterr()
    assert f"Using {Path(run_dir).name}" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])[0]["path"] == image
    assert main(["eval", str(project.root), "--json"]) == 0
    assert (Path(run_dir) / "eval.json").is_file()


def test_eval_keeps_reporting_the_runs_own_images_after_relabel_and_exclusion(project, capsys):
    from studio.curate import decisions

    assert main(["train", str(project.root), *TINY, "--strategy", "linear", "--json", "--quiet"]) == 0
    run_dir = Path(_last_json(capsys)["run_dir"])
    training_eval = (run_dir / "eval.json").read_bytes()
    assert main(["eval", str(run_dir), "--json"]) == 0
    before = _last_json(capsys)

    val = project.dataset().query("split == 'val'")
    relabeled, excluded = val.iloc[0], val.iloc[1]
    other = next(c for c in project.classes() if c != relabeled["label"])
    project.set_label(int(relabeled["image_id"]), other)
    decisions.record(project, [int(excluded["image_id"])], "label_issue", "excluded")

    assert main(["eval", str(run_dir), "--json"]) == 0
    after = _last_json(capsys)
    assert {k: after[k] for k in ("n", "accuracy", "confusion_matrix")} == \
        {k: before[k] for k in ("n", "accuracy", "confusion_matrix")}
    assert (run_dir / "eval.json").read_bytes() == training_eval  # the training-time file is never rewritten

    # Today's split is explicit, leaves out the excluded image, sees the new label, and has its own file.
    assert main(["eval", str(run_dir), "--current-split", "--json"]) == 0
    current = _last_json(capsys)
    assert current["n"] == before["n"] - 1 and current["images"] == "current-split"
    support = current["per_class"][other]["support"]
    assert support == before["per_class"][other]["support"] + 1 - int(excluded["label"] == other)
    saved = json.loads((run_dir / "eval-current-split.json").read_text())
    assert saved["n"] == current["n"]
    assert (run_dir / "eval.json").read_bytes() == training_eval
    assert main(["eval", str(run_dir), "--project", str(project.root)]) == 2  # --project alone is ambiguous
