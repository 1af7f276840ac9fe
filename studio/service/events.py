"""A job's event history: append-only, numbered, readable from any point, bounded on long runs.

Every event is a dict with at least `seq` (1, 2, 3, ... in order of arrival), `time` (epoch seconds)
and `type`. Readers keep the last `seq` they saw and ask for what came after it, so a browser that
reloads asks with `since=0` and gets the whole history first.

Memory stays bounded: once more than `max_steps` high-rate events (`step`, `progress`) are held, older
ones are thinned to every k-th (k doubles each time), while the most recent `keep_recent` stay whole.
Epoch, state, log and every other event type are always kept. Thinning only removes events, so the
sequence numbers readers see stay increasing and no epoch event is ever missed.
"""

from __future__ import annotations

import bisect
import threading
import time
from typing import Any

THINNABLE = frozenset({"step", "progress"})


class EventLog:
    """Thread-safe event history of one job. Writers `append`; any number of readers poll or block."""

    def __init__(self, *, max_steps: int = 2000, keep_recent: int = 500) -> None:
        if not 0 < keep_recent < max_steps:
            raise ValueError("keep_recent must be positive and smaller than max_steps")
        self.max_steps = max_steps
        self.keep_recent = keep_recent
        self._events: list[dict[str, Any]] = []
        self._seqs: list[int] = []  # parallel to _events, for bisect
        self._next_seq = 1
        self._steps_held = 0
        self._step_ordinal = 0  # counts every thinnable event ever appended
        self._stride = 1
        self._closed = False
        self._cond = threading.Condition()

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Number, timestamp and store a copy of `event`; wake blocked readers. Returns the stored event."""
        stored = dict(event)
        stored.setdefault("type", "log")
        with self._cond:
            stored["seq"] = self._next_seq
            stored.setdefault("time", time.time())
            self._next_seq += 1
            if stored["type"] in THINNABLE:
                stored["_ordinal"] = self._step_ordinal
                self._step_ordinal += 1
                self._steps_held += 1
            self._events.append(stored)
            self._seqs.append(stored["seq"])
            if self._steps_held > self.max_steps:
                self._thin()
            self._cond.notify_all()
        return _public(stored)

    def close(self) -> None:
        """No more events will come (the job finished): blocked readers return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest event (0 when there is none)."""
        with self._cond:
            return self._next_seq - 1

    def __len__(self) -> int:
        with self._cond:
            return len(self._events)

    def since(self, since: int = 0) -> list[dict[str, Any]]:
        """Copies of the events with `seq > since`, oldest first."""
        with self._cond:
            return self._after(since)

    def wait(self, since: int = 0, timeout: float | None = None) -> list[dict[str, Any]]:
        """Events after `since`; if there are none yet, block until some arrive, the log closes or
        `timeout` seconds pass (then the list is empty)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._next_seq - 1 <= since and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._after(since)

    def _after(self, since: int) -> list[dict[str, Any]]:
        start = bisect.bisect_right(self._seqs, since)
        return [_public(e) for e in self._events[start:]]

    def _thin(self) -> None:
        # Keep every (2 * stride)-th of the older high-rate events; the newest keep_recent stay whole.
        self._stride *= 2
        recent_from = self._step_ordinal - self.keep_recent
        kept: list[dict[str, Any]] = []
        for e in self._events:
            ordinal = e.get("_ordinal")
            if ordinal is None or ordinal >= recent_from or ordinal % self._stride == 0:
                kept.append(e)
        self._events = kept
        self._seqs = [e["seq"] for e in kept]
        self._steps_held = sum(1 for e in kept if "_ordinal" in e)


def _public(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "_ordinal"}
