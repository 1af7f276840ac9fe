"""The app driven through gradio_client: projects, imports, labels, and what the server refuses to serve."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from helpers_images import make_image_folder
from studio_server import running_studio

from studio.data.store import Project


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    workspace = tmp_path_factory.mktemp("workspace")
    with running_studio(workspace) as (url, context):
        yield url, context, Client(url, verbose=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = make_image_folder(tmp_path_factory.mktemp("source"), ["cat", "dog"], 4, size=24)
    (folder / "cat" / "broken.jpg").write_bytes(b"not an image")
    return folder


def test_create_import_and_label_are_saved(studio, images):
    _, context, client = studio
    root = client.predict("pets", False, api_name="/create_project")
    assert Path(root) == context.workspace / "pets"

    report = client.predict(root, str(images), "auto", api_name="/import_path")
    assert report["imported"] == 8 and report["duplicates"] == 0
    assert [Path(r["file"]).name for r in report["rejected"]] == ["broken.jpg"]
    assert report["rejected"][0]["reason"]

    again = client.predict(root, str(images), "auto", api_name="/import_path")
    assert again["imported"] == 0 and again["duplicates"] == 8

    first = client.predict(root, None, "all", "import order", api_name="/next_image")
    state = client.predict(root, first["image_id"], "bird", api_name="/set_label")
    assert state["label"] == "bird" and state["changed"] and "bird" in state["classes"]
    unlabeled = client.predict(root, first["image_id"], "", api_name="/set_label")
    assert unlabeled["label"] is None and unlabeled["unlabeled"] == 1
    following = client.predict(root, None, "unlabeled", "import order", api_name="/next_image")
    assert following["image_id"] == first["image_id"]
    client.predict(root, first["image_id"], "dog", api_name="/set_label")

    with Project.open(root) as fresh:  # a second connection sees what the app acknowledged
        data = fresh.dataset().set_index("image_id")
        assert data.loc[first["image_id"], "label"] == "dog"
        assert fresh.info()["unlabeled"] == 0
        assert list(fresh.label_history(3)["new"]) == ["dog", None, "bird"]


def test_user_errors_are_readable(studio, images, tmp_path):
    _, context, client = studio
    root = client.predict("errors", False, api_name="/create_project")
    with pytest.raises(Exception, match="no image with id 999"):
        client.predict(root, 999, "cat", api_name="/set_label")
    with pytest.raises(Exception, match="not a project of this studio"):
        client.predict(str(tmp_path), 1, "cat", api_name="/set_label")
    with pytest.raises(Exception, match="does not exist"):
        client.predict(root, str(tmp_path / "missing"), "auto", api_name="/import_path")
    with pytest.raises(Exception, match="already exists"):
        client.predict("errors", False, api_name="/create_project")
    with pytest.raises(Exception, match="not allowed"):
        client.predict("../escape", False, api_name="/create_project")
    assert not (context.workspace.parent / "escape").exists()


def test_demo_project_is_ready_to_train(studio):
    _, _, client = studio
    root = client.predict("demo", True, api_name="/create_project")
    with Project.open(root) as project:
        info = project.info()
    assert info["classes"] == ["zero", "one", "two", "three"]
    assert all(counts["train"] == 24 and counts["val"] == 6 for counts in info["counts"].values())
    assert info["unlabeled"] == 20


@pytest.mark.parametrize(
    "path",
    [
        "/gradio_api/file=/etc/passwd",
        "/gradio_api/file=/etc/../etc/passwd",
        "/gradio_api/file=../../../../../../etc/passwd",
        "/gradio_api/file=%2Fetc%2Fpasswd",
        "/gradio_api/file=..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/file=/etc/passwd",
        "/gradio_api/file=PROJECT/project.db",
        "/gradio_api/file=PROJECT/images/../project.db",
        "/gradio_api/file=REPO/pyproject.toml",
        "/gradio_api/file=HOME/.bashrc",
    ],
)
def test_no_file_outside_the_app_can_be_read(studio, path):
    url, context, client = studio
    project = context.workspace / "pets"
    if not project.exists():
        client.predict("pets", False, api_name="/create_project")
    path = (path.replace("PROJECT", str(project)).replace("REPO", str(Path.cwd()))
            .replace("HOME", str(Path.home())))
    response = httpx.get(url.rstrip("/") + path)
    assert response.status_code in (403, 404), (path, response.status_code)
    assert b"root:" not in response.content and b"SQLite" not in response.content
