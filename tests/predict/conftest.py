"""Fixtures of the prediction tests; helpers live in predict_helpers.py."""

from __future__ import annotations

import pytest
from predict_helpers import tiny_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    project, result = tiny_run(tmp_path_factory.mktemp("run"))
    yield project, result
    project.close()
