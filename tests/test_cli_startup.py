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
