"""A per-user budget for uploads through a shared link.

Gradio's upload route stores whatever a signed-in user sends (up to `--max-upload-mb` per file, with no
total), before any callback or role check runs, so one account could fill the server's disk. `UploadBudget`
(an ASGI middleware in front of that route) counts the bytes each signed-in user uploaded within the last
hour; past `UPLOAD_BYTES_PER_HOUR` their uploads get 429 until older ones leave the window. Together with
the app's cache cleanup (uploads older than two hours are removed) this bounds what one account can keep
on disk. Without accounts (one person on their own machine) nothing is counted.

The user is read the way Gradio signs requests: its access-token cookie, looked up in the app's tokens.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from studio.sharing.body_limit import BodyCounter, is_upload
from studio.sharing.sessions import signed_in_user
from studio.sharing.windows import SlidingWindow, too_many_requests

UPLOAD_BYTES_PER_HOUR = 2 * 1024**3
WINDOW_S = 3600.0


class UploadBudget(SlidingWindow):
    """ASGI middleware: per-user upload bytes within a sliding window (`limit`: the budget)."""

    def __init__(self, app: Callable[..., Awaitable[None]], budget_bytes: int | None = None,
                 window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(UPLOAD_BYTES_PER_HOUR if budget_bytes is None else budget_bytes, window_s, clock)
        self.app = app

    used = SlidingWindow.total  # bytes within the window

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        user = None
        if scope.get("type") == "http" and scope.get("method") == "POST" and is_upload(scope):
            user = signed_in_user(scope)
        if user is None:
            await self.app(scope, receive, send)
            return
        wait = self.retry_after(user)
        if wait:
            await too_many_requests(send, wait, f"You uploaded {self.limit / 1024**3:g} GB within the last "
                                    f"hour, the limit per user: try again in {math.ceil(wait / 60)} min.")
            return
        counter = BodyCounter(receive)
        try:
            await self.app(scope, counter.receive, send)
        finally:
            self.add(user, counter.received)

