"""Facts about the machine that every layer needs and that need no torch (the service imports this
before the engine is loaded)."""

from __future__ import annotations

import os


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)
