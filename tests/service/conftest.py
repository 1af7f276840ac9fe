"""Fixtures for the service tests: a CPU service, shut down after each test."""

from __future__ import annotations

import pytest
from service_helpers import GUARD_S

from studio.service import TrainerService


@pytest.fixture
def service():
    svc = TrainerService("cpu", side_threads=1)
    yield svc
    svc.shutdown(GUARD_S)
