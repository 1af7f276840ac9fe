"""Fixtures of the training tests; helpers live in train_helpers.py."""

from __future__ import annotations

import pytest
from train_helpers import make_project


@pytest.fixture
def project(tmp_path):
    project = make_project(tmp_path)
    yield project
    project.close()
