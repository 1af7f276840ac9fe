"""Drive a running studio as a browser does: sign in, upload, and run any event by its function index
through Gradio's queue (`/gradio_api/queue/join` + the `/queue/data` event stream)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx


class Browser:
    def __init__(self, url: str, user: str, password: str) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=120, follow_redirects=True)
        response = self.http.post("/login", data={"username": user, "password": password})
        assert response.status_code == 200, response.text

    def upload(self, *paths: Path) -> list[dict[str, Any]]:
        """Upload files the way the File component does; FileData dicts to pass as an input value."""
        files = [("files", (Path(p).name, Path(p).read_bytes())) for p in paths]
        response = self.http.post("/gradio_api/upload", files=files)
        response.raise_for_status()
        return [{"path": served, "orig_name": Path(p).name, "meta": {"_type": "gradio.FileData"}}
                for served, p in zip(response.json(), paths)]

    def call(self, fn_index: int, data: list[Any]) -> tuple[bool, Any]:
        """(success, output data or the error text) of one event, run by index. An event that ends with a
        warning notice and its outputs skipped (how the tabs refuse: `studio.ui.feedback.user_errors`)
        counts as refused, with the notice's text."""
        session = uuid.uuid4().hex
        joined = self.http.post(
            "/gradio_api/queue/join",
            json={
                "data": data,
                "fn_index": fn_index,
                "session_hash": session,
                "event_data": None,
                "trigger_id": None,
            },
        )
        if joined.status_code != 200:
            return False, joined.text
        warnings: list[str] = []
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "log" and message.get("level") == "warning":
                    warnings.append(str(message.get("log") or message.get("message") or ""))
                if message.get("msg") == "process_completed":
                    output = message.get("output") or {}
                    if message.get("success") and warnings:
                        return False, " ".join(warnings)
                    if message.get("success"):
                        return True, output.get("data")
                    return False, str(output.get("error") or output)
                if message.get("msg") == "unexpected_error":
                    return False, message.get("message", "")
        return False, "stream ended"

    def close(self) -> None:
        self.http.close()


def fn_index(app: Any, name: str, button: str | None = None) -> int:
    """The index of the event whose function is `name` (and, when given, triggered by the button labeled
    so)."""
    found = []
    for index, block_fn in app.fns.items():
        fn = block_fn.fn
        while fn is not None and getattr(fn, "__name__", None) != name and hasattr(fn, "__wrapped__"):
            fn = fn.__wrapped__
        if fn is None or getattr(fn, "__name__", None) != name:
            continue
        if button is not None:
            labels = [getattr(app.blocks.get(target[0]), "value", None) for target in block_fn.targets]
            if button not in labels:
                continue
        found.append(index)
    assert len(found) == 1, (name, button, found)
    return found[0]
