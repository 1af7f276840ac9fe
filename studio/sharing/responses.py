"""How the sharing middlewares refuse a request: one ASGI answer with a status and a sentence."""

from __future__ import annotations

import json
from collections.abc import Callable


async def send_error(send: Callable, status: int, detail: str, *, headers: list[tuple[bytes, bytes]] = (),
                     as_text: bool = False) -> None:
    """Answer with `status` and `detail`: Gradio's JSON shape (`{"detail": ...}`), or the sentence as plain
    text for a page the browser shows (`as_text`)."""
    body = detail.encode() if as_text else json.dumps({"detail": detail}).encode()
    kind = b"text/plain; charset=utf-8" if as_text else b"application/json"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})
