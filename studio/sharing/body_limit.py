"""A size limit on request bodies, except on the upload route.

Gradio caps each uploaded file (`--max-upload-mb`) and `UploadBudget` counts what each user uploads, but
only on `/upload`. Other routes take bodies of any size too: `/gradio_api/component_server` reads a whole
multipart body (up to 1000 files) into memory before it looks up the function it names, and
`/gradio_api/process_recording` writes one to disk until its answer is read. No event of the studio sends
more than a few hundred KB outside `/upload` (a queue join carries file paths, not files), so `BodyLimit`
answers 413 to a larger declared body and cuts off one that grows past the limit while it streams in.

No Gradio here: the launcher hands the middleware to Gradio.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from studio.sharing.responses import send_error

MAX_BODY_BYTES = 16 * 1024**2


def is_upload(scope: dict[str, Any]) -> bool:
    """The upload route (counted by `UploadBudget`, each file capped by Gradio)."""
    return str(scope.get("path", "")).rstrip("/").endswith("/upload")


class BodyLimit:
    """ASGI middleware: at most `max_bytes` of request body on every route but the upload route."""

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope.get("type") != "http" or is_upload(scope):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            limit = self.max_bytes // 1024**2
            await send_error(send, 413, f"The request is larger than {limit} MB, the limit outside uploads.")
            return
        counter = BodyCounter(receive, self.max_bytes)  # a body without a length that keeps coming
        await self.app(scope, counter.receive, send)


class BodyCounter:
    """Wraps an ASGI `receive`: counts the body bytes the app reads (`received`); past `limit` the app is
    told the client went away instead of getting more."""

    def __init__(self, receive: Callable, limit: float = float("inf")) -> None:
        self._receive, self.limit, self.received = receive, limit, 0

    async def receive(self) -> dict[str, Any]:
        message = await self._receive()
        self.received += len(message.get("body", b"") or b"")
        if self.received > self.limit:
            return {"type": "http.disconnect"}
        return message
