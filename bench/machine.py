"""How busy the machine was during a benchmark: CPU time stolen by other tenants and the load average.

Auto's fine-tune plans its epochs from measured step times within a fixed time budget, so its accuracy
depends on machine speed (flowers: 9 epochs on a quiet 2-core VM, 3-5 at ~28% steal). The benchmarks print
this line next to their numbers so that two runs can be compared. Linux only (/proc); elsewhere it says so.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC_STAT = Path("/proc/stat")


def cpu_times() -> list[int] | None:
    """The aggregate `cpu` line of /proc/stat (user nice system idle iowait irq softirq steal ...)."""
    try:
        first = PROC_STAT.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    return [int(v) for v in first[1:]] if first and first[0] == "cpu" else None


class MachineLoad:
    """Start it before the work; `summary()` after: the steal share and load average over the interval."""

    def __init__(self) -> None:
        self.start = cpu_times()

    def steal_share(self) -> float | None:
        end = cpu_times()
        if self.start is None or end is None or len(end) < 8:
            return None
        delta = [b - a for a, b in zip(self.start, end)]
        total = sum(delta[:8])  # guest time is already counted in user time
        return delta[7] / total if total > 0 else None

    def summary(self) -> str:
        steal = self.steal_share()
        try:
            load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        except OSError:
            load = "unknown"
        stolen = f"{steal:.0%} of CPU time stolen by other tenants" if steal is not None else "steal unknown"
        return f"machine during the run: {stolen}; load average (1, 5, 15 min) {load}"
