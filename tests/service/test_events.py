"""EventLog: numbering, reading from any point, blocking readers, bounded memory on long runs."""

from __future__ import annotations

import threading

from service_helpers import GUARD_S

from studio.service.events import EventLog


def test_events_are_numbered_and_readable_from_any_point():
    log = EventLog()
    for i in range(5):
        log.append({"type": "log", "message": str(i)})
    assert [e["seq"] for e in log.since(0)] == [1, 2, 3, 4, 5]
    assert [e["message"] for e in log.since(3)] == ["3", "4"]
    assert log.since(5) == []
    assert all("time" in e for e in log.since(0))


def test_stored_events_are_copies():
    log = EventLog()
    event = {"type": "log", "message": "a"}
    log.append(event)
    log.since(0)[0]["message"] = "changed"
    assert "seq" not in event and log.since(0)[0]["message"] == "a"


def test_wait_blocks_until_an_event_arrives():
    log = EventLog()
    waiting = threading.Event()
    got: list = []

    def reader():
        waiting.set()
        got.extend(log.wait(0, timeout=GUARD_S))

    thread = threading.Thread(target=reader)
    thread.start()
    waiting.wait(GUARD_S)
    log.append({"type": "epoch", "epoch": 1})
    thread.join(GUARD_S)
    assert [e["type"] for e in got] == ["epoch"]


def test_wait_returns_empty_on_timeout_and_at_once_when_closed():
    log = EventLog()
    assert log.wait(0, timeout=0.01) == []
    log.append({"type": "state", "state": "done"})
    log.close()
    assert log.wait(1, timeout=None) == []  # closed: no blocking forever


def test_long_run_stays_bounded_and_keeps_every_epoch():
    log = EventLog(max_steps=1000, keep_recent=200)
    for step in range(100_000):
        log.append({"type": "step", "step": step})
        if step % 1000 == 999:
            log.append({"type": "epoch", "epoch": step // 1000})
    events = log.since(0)
    steps = [e for e in events if e["type"] == "step"]
    assert len(steps) <= 1000
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == list(range(100))
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert log.last_seq == 100_100
    # The most recent steps are all there; older ones are spread over the whole run.
    assert [e["step"] for e in steps[-200:]] == list(range(99_800, 100_000))
    assert steps[0]["step"] == 0 and steps[len(steps) // 2]["step"] > 10_000


def test_reader_position_survives_thinning():
    log = EventLog(max_steps=10, keep_recent=4)
    log.append({"type": "epoch", "epoch": 0})
    seen = log.last_seq
    for step in range(50):
        log.append({"type": "step", "step": step})
    log.append({"type": "epoch", "epoch": 1})
    new = log.since(seen)
    assert new[-1]["type"] == "epoch" and all(e["seq"] > seen for e in new)
