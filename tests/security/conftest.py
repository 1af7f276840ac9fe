"""One studio per test module, on loopback, with an owner, a labeler and a viewer (and paths confined as
on a shared link), plus a folder outside the workspace that no attack may read or write."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # browser.py

from helpers_images import make_image_folder

USERS = {
    "olga": ("owner", "owner-pass"),
    "lena": ("labeler", "labeler-pass"),
    "vic": ("viewer", "viewer-pass"),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """Server files an attacker would like: a folder of images, a JSON file, a CSV target."""
    folder = tmp_path_factory.mktemp("outside")
    make_image_folder(folder / "photos", ["secret"], 2, size=24)
    (folder / "settings.json").write_text('{"private_key": 1}')
    return folder


@pytest.fixture(scope="module")
def studio(tmp_path_factory, outside):
    from studio.data.importers import import_source
    from studio.data.store import Project
    from studio.ui.launcher import build_context, parse_args, start

    workspace = tmp_path_factory.mktemp("workspace")
    users = workspace.parent / f"{workspace.name}-users.toml"
    users.write_text("".join(f'[[user]]\nname = "{name}"\npassword = "{password}"\nrole = "{role}"\n\n'
                             for name, (role, password) in USERS.items()))
    project_root = workspace / "shared"
    with Project.create(project_root) as project:
        source = make_image_folder(tmp_path_factory.mktemp("source"), ["cat", "dog"], 3, size=24)
        import_source(project, source)
    options = parse_args(["--workspace", str(workspace), "--users", str(users), "--confine", "--no-browser",
                          "--port", str(free_port())])
    context, _ = build_context(options)
    app, url = start(context, "", options=options)
    try:
        yield {
            "app": app,
            "url": url,
            "context": context,
            "project": str(project_root),
            "workspace": workspace,
        }
    finally:
        app.close()
        context.close()


@pytest.fixture(scope="module")
def browsers(studio):
    from browser import Browser

    opened = {role: Browser(studio["url"], name, password) for name, (role, password) in USERS.items()}
    yield opened
    for browser in opened.values():
        browser.close()
