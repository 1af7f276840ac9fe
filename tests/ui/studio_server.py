"""Start the studio on loopback for tests (free port, no browser) and stop it afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from studio.ui.context import AppContext, default_service
from studio.ui.launcher import start


@contextmanager
def running_studio(
    workspace: Path, initial_project: str = "", **context_options
) -> Iterator[tuple[str, AppContext]]:
    """(local URL, context) of a studio serving `workspace` on 127.0.0.1 and a free port."""
    context_options.setdefault("service", default_service())  # the Train tab needs the real service
    context = AppContext(workspace=workspace, **context_options)
    app, url = start(context, initial_project)
    try:
        yield url, context
    finally:
        app.close()
        context.close()
