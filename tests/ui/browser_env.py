"""What the real-browser tests share: Debian's Chromium driven by Playwright, and their screenshots.

Importing this skips the importing test module when playwright is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (uv sync --group dev)"
)
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="needs /usr/bin/chromium (apt-get install -y chromium)")


def shot(page, name: str, folder: Path) -> None:
    """A screenshot into the test's output folder (or $STUDIO_SHOTS, for the README); notices closed first."""
    folder = Path(os.environ.get("STUDIO_SHOTS") or folder)
    folder.mkdir(parents=True, exist_ok=True)
    for close in page.locator(".toast-close").all():  # an earlier step's notice would cover the tab
        if close.is_visible():
            close.click()
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
