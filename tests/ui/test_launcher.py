"""launch.py's flags: safe defaults, readable one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from studio.errors import StudioError
from studio.ui.launcher import default_workspace, launch_kwargs, main, parse_args, parse_auth

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_local_and_private(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    options = parse_args([])
    assert options.host == "127.0.0.1" and not options.share and options.auth is None
    assert options.workspace == tmp_path / "studio" == default_workspace()
    kwargs = launch_kwargs(options)
    assert kwargs["allowed_paths"] == [] and kwargs["max_file_size"] == "200mb"


def test_share_needs_auth_or_an_explicit_no_auth(tmp_path, capsys):
    with pytest.raises(StudioError, match="--share.*--auth USER:PASS.*--no-auth"):
        parse_args(["--share", "--workspace", str(tmp_path)])
    assert main(["--share", "--workspace", str(tmp_path)]) == 2
    assert "--no-auth" in capsys.readouterr().err
    assert parse_args(["--share", "--no-auth"]).auth is None
    assert parse_args(["--share", "--auth", "ann:secret"]).auth == [("ann", "secret")]
    with pytest.raises(StudioError, match="contradict"):
        parse_args(["--auth", "ann:secret", "--no-auth"])


def test_auth_file_and_bad_values(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("# team\nann:pass:with:colons\n\nbob:hunter2\n")
    assert parse_auth(str(users)) == [("ann", "pass:with:colons"), ("bob", "hunter2")]
    users.write_text("ann\n")
    with pytest.raises(StudioError, match="line 1"):
        parse_auth(str(users))
    with pytest.raises(StudioError, match="USER:PASS"):
        parse_auth("nocolon")
    with pytest.raises(StudioError, match="--port"):
        parse_args(["--port", "70000"])
    with pytest.raises(StudioError, match="--max-upload-mb"):
        parse_args(["--max-upload-mb", "0"])


def test_bad_flag_is_one_line_and_exit_2():
    result = subprocess.run([sys.executable, str(REPO / "launch.py"), "--no-such-flag"], capture_output=True,
                            text=True, cwd=REPO, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--no-such-flag" in result.stderr
    assert "Traceback" not in result.stderr


def test_unwritable_workspace_or_project_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["--workspace", str(blocker / "ws"), "--no-browser"]) == 2
    assert "Cannot create the workspace folder" in capsys.readouterr().err
    assert main(["--workspace", str(tmp_path / "ws"), "--project", str(blocker / "p"), "--no-browser"]) == 2
    assert "Cannot create the project folder" in capsys.readouterr().err
