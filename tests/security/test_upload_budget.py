"""Uploads through a shared link count against a per-user budget (Gradio stores every upload before any
role check runs, so one account could otherwise fill the server's disk)."""

from __future__ import annotations

import pytest
from browser import Browser
from conftest import USERS

from studio.sharing.upload_budget import UploadBudget

BUDGET = 1_000_000  # bytes per user and hour for this module's studio


@pytest.fixture(scope="module", autouse=True)
def small_budget():
    # autouse: set before the module's studio starts (its middleware reads the budget when built)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("studio.sharing.upload_budget.UPLOAD_BYTES_PER_HOUR", BUDGET)
        yield


def test_a_user_past_the_budget_is_refused_and_others_are_not(studio, tmp_path):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\0" * 400_000)
    viewer = Browser(studio["url"], "vic", USERS["vic"][1])
    owner = Browser(studio["url"], "olga", USERS["olga"][1])
    try:
        files = [("files", ("blob.bin", blob.read_bytes()))]
        codes = [viewer.http.post("/gradio_api/upload", files=files).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]  # 3 x 400 kB passes 1 MB: the fourth waits
        refused = viewer.http.post("/gradio_api/upload", files=files)
        assert "within the last hour" in refused.json()["detail"] and int(refused.headers["retry-after"]) > 0
        assert owner.http.post("/gradio_api/upload", files=files).status_code == 200  # a budget each
    finally:
        viewer.close()
        owner.close()


def test_the_budget_frees_as_uploads_leave_the_window():
    now = [0.0]
    budget = UploadBudget(None, budget_bytes=100, window_s=60.0, clock=lambda: now[0])
    budget.add("vic", 60)
    now[0] = 10.0
    budget.add("vic", 60)
    assert budget.used("vic") == 120 and budget.retry_after("vic") == pytest.approx(50.0)  # first leaves
    now[0] = 61.0  # the first left the window
    assert budget.used("vic") == 60 and budget.retry_after("vic") == 0
    assert budget.retry_after("olga") == 0


def test_other_routes_refuse_large_bodies(studio, tmp_path):
    """Outside /upload a body is held to MAX_BODY_BYTES: Gradio's component_server read 100 MB files into
    memory before refusing an unknown function, and process_recording wrote them to disk."""
    from studio.sharing.body_limit import MAX_BODY_BYTES

    viewer = Browser(studio["url"], "vic", USERS["vic"][1])
    try:
        big = [("files", ("a.bin", b"\0" * (MAX_BODY_BYTES + 1)))]
        for route in ("/gradio_api/component_server", "/gradio_api/process_recording"):
            response = viewer.http.post(route, files=big)
            assert response.status_code == 413 and "limit outside uploads" in response.text, route

        def chunks():  # no Content-Length: cut off once past the limit
            for _ in range(MAX_BODY_BYTES // 2**20 + 2):
                yield b"\0" * 2**20

        streamed = viewer.http.post("/gradio_api/component_server", content=chunks(),
                                    headers={"content-type": "application/octet-stream"})
        assert streamed.status_code >= 400
    finally:
        viewer.close()
    labeler = Browser(studio["url"], "lena", USERS["lena"][1])  # with upload budget left in this module
    try:
        big_upload = labeler.http.post("/gradio_api/upload", files=[("files", ("b.bin", b"\0" * 900_000))])
        assert big_upload.status_code == 200  # the upload route keeps its own limits, not this one
    finally:
        labeler.close()
