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
