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
