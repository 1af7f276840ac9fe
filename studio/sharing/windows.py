"""Per-key amounts within a sliding time window, and the 429 answer past their limit: what the sign-in
throttle (failed attempts per address and per name) and the upload budget (bytes per user) both count."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from studio.sharing.responses import send_error

MAX_TRACKED = 10_000  # keys remembered at most (the least recently added are forgotten)


class SlidingWindow:
    """Amounts added per key within the last `window_s` seconds, against a `limit`; thread-safe, bounded."""

    def __init__(self, limit: float, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._entries: OrderedDict[str, deque[tuple[float, float]]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[tuple[float, float]] | None:
        entries = self._entries.get(key)
        while entries and entries[0][0] <= now - self.window_s:
            entries.popleft()
        if entries is not None and not entries:
            del self._entries[key]
            return None
        return entries

    def total(self, key: str) -> float:
        with self._lock:
            return sum(amount for _, amount in self._recent(key, self.clock()) or ())

    def retry_after(self, key: str) -> float:
        """Seconds until `key` is under the limit again (0: now): when the newest entries that reach the
        limit together lose their oldest one."""
        with self._lock:
            now, total = self.clock(), 0.0
            for at, amount in reversed(self._recent(key, now) or ()):
                total += amount
                if total >= self.limit:
                    return max(0.0, at + self.window_s - now)
        return 0.0

    def add(self, key: str, amount: float = 1) -> None:
        with self._lock:
            now = self.clock()
            entries = self._recent(key, now)
            if entries is None:
                entries = self._entries[key] = deque()
            entries.append((now, amount))
            # Older entries no longer change `retry_after` once the newer ones reach the limit on their own.
            while len(entries) > 1 and sum(a for _, a in entries) - entries[0][1] >= self.limit:
                entries.popleft()
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_TRACKED:
                self._entries.popitem(last=False)

    def clear(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def tracked(self) -> int:
        """How many keys are remembered."""
        return len(self._entries)


async def too_many_requests(send: Callable, wait: float, detail: str) -> None:
    """Answer an ASGI request with 429, Retry-After (whole seconds, at least 1) and a JSON `detail`."""
    seconds = max(1, math.ceil(wait))
    await send_error(send, 429, detail, headers=[(b"retry-after", str(seconds).encode())])
