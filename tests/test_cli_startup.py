"""The CLI starts without loading the heavy libraries: `studio --help` and argument errors stay fast."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "timm", "albumentations", "cv2", "cleanlab", "sklearn", "gradio")


def test_building_the_cli_parser_loads_no_heavy_library():
    code = (
        "import sys\n"
        "from studio.cli import build_parser\n"
        "build_parser().format_help()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"loaded at start-up: {out.stdout.strip()}"



def test_a_reader_that_goes_away_gets_no_traceback(tmp_path):
    # `studio info P --json | head -c 10`: here the read end is closed before the command prints
    from studio.data.store import Project

    Project.create(tmp_path / "p").close()
    command = [sys.executable, "-m", "studio", "info", str(tmp_path / "p"), "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, stderr  # 128 + SIGPIPE, as a shell tool stopped by the pipe
    assert "Traceback" not in stderr, stderr


def test_a_run_that_did_not_finish_is_used_with_a_note(tmp_path, capsys):
    import json

    from studio.cli import run_argument

    run = tmp_path / "20261206-000000-auto"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"status": "running"}))  # killed: nothing set it to done
    assert run_argument(str(run)) == str(run)
    assert capsys.readouterr().err == ""  # no checkpoint yet: the error that follows says so, no note first
    (run / "model.pt").write_bytes(b"a checkpoint")
    assert run_argument(str(run)) == str(run)
    assert "did not finish (still training, or interrupted)" in capsys.readouterr().err
    (run / "status.json").write_text(json.dumps({"status": "done"}))
    run_argument(str(run / "model.pt"))
    assert capsys.readouterr().err == ""


def test_an_output_path_that_is_a_folder_is_refused_before_the_work(tmp_path, capsys):
    from studio.cli import main
    from studio.export.standalone import output_file_problem

    assert main(["predict", str(tmp_path / "run"), str(tmp_path), "--csv", str(tmp_path)]) == 2
    assert "is a folder; give a file path" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert "is a file, not a folder" in output_file_problem(tmp_path / "file" / "out.csv")
    assert output_file_problem(tmp_path / "new" / "out.csv") is None  # its folder is made when written
    assert main(["lr-find", str(tmp_path), "--chart", str(tmp_path)]) == 2


def test_an_output_file_never_replaces_an_image_or_another_csv(tmp_path, capsys):
    """`--csv photo.jpg` had turned the photo into predictions; a labels CSV would have gone the same way."""
    from studio.cli import main
    from studio.export.standalone import CSV_COLUMNS, output_file_problem

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8 not really a jpeg, but a user's file")
    assert main(["predict", str(tmp_path / "run"), str(photo), "--csv", str(photo)]) == 2
    assert "already exists and is not a predictions CSV" in capsys.readouterr().err
    assert photo.read_bytes().startswith(b"\xff\xd8")
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\na.jpg,cat\n")
    assert "is not a predictions CSV" in output_file_problem(labels)
    earlier = tmp_path / "predictions.csv"
    earlier.write_text(",".join(CSV_COLUMNS) + ",p_cat,error\n")
    assert output_file_problem(earlier) is None  # the previous predictions may be replaced
    (tmp_path / "notes.txt").write_text("mine")
    assert "is not a .html file" in output_file_problem(tmp_path / "notes.txt", "--chart", ".html")


def test_a_run_folder_that_does_not_exist_is_named_so(tmp_path):
    import pytest

    from studio.errors import StudioError
    from studio.predict.checkpoint import read_checkpoint

    with pytest.raises(StudioError, match="does not exist: give a run folder"):
        read_checkpoint(tmp_path / "runs" / "nope")
