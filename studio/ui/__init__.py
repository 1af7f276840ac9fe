"""The studio's browser UI (Gradio 6): `app.build_app` assembles the tabs, `launcher` starts the server.

Nothing is imported here eagerly, so `launch.py --help` and flag errors answer without loading Gradio.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "build_app": "studio.ui.app",
    "AppContext": "studio.ui.context",
    "ProjectBinding": "studio.ui.context",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'studio.ui' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
