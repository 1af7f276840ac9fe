"""CPU set-up: the malloc tuning that keeps large tensors on the heap (Linux with glibc)."""

from __future__ import annotations

import os
import platform
import sys

import pytest
import torch

from studio.predict.device import select_device, tune_cpu_allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt tuning applies to Linux with glibc only")
def test_cpu_device_tunes_the_allocator(monkeypatch):
    for key in [k for k in os.environ if k.startswith("MALLOC_")]:
        monkeypatch.delenv(key)
    assert tune_cpu_allocator.__wrapped__() is True  # glibc accepted both settings
    assert select_device("cpu") == torch.device("cpu")


def test_user_malloc_settings_are_respected(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert tune_cpu_allocator.__wrapped__() is False
