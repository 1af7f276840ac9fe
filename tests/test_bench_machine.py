"""bench/machine.py: the steal share and load line the benchmarks print beside their numbers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "machine.py"


@pytest.fixture()
def machine():
    spec = importlib.util.spec_from_file_location("bench_machine", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stat(path: Path, user: int, idle: int, steal: int) -> None:
    path.write_text(f"cpu  {user} 0 0 {idle} 0 0 0 {steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")


def test_steal_share_is_the_stolen_part_of_the_interval(machine, tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    monkeypatch.setattr(machine, "PROC_STAT", stat)
    _stat(stat, user=1000, idle=500, steal=100)
    load = machine.MachineLoad()
    _stat(stat, user=1600, idle=600, steal=400)  # +600 user, +100 idle, +300 steal over the interval
    assert load.steal_share() == pytest.approx(0.3)
    assert "30% of CPU time stolen" in load.summary()
    assert "load average" in load.summary()


def test_without_proc_stat_it_says_unknown(machine, tmp_path, monkeypatch):
    monkeypatch.setattr(machine, "PROC_STAT", tmp_path / "missing")
    load = machine.MachineLoad()
    assert load.steal_share() is None
    assert "steal unknown" in load.summary()
