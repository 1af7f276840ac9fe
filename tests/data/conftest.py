"""Fixtures for the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.data.store import Project


@pytest.fixture
def project(tmp_path: Path):
    with Project.create(tmp_path / "project") as opened:
        yield opened
