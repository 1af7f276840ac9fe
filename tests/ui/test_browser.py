"""A real browser (headless Chromium via Playwright) clicks through the tabs and labels with a key.

Set STUDIO_SHOTS=/some/dir to also save a screenshot of each tab there.
"""

from __future__ import annotations

import os
import re
import time

from browser_env import ARGS, CHROMIUM, needs_chromium, sync_api
from browser_env import shot as _shot
from studio_server import running_studio

from studio.data.store import Project
from studio.ui.demo_data import fill_demo_project

pytestmark = needs_chromium


def test_tabs_and_keyboard_labeling(tmp_path):
    workspace = tmp_path / "workspace"
    with Project.create(workspace / "digits") as project:
        fill_demo_project(project)
        root = str(project.root)
    with running_studio(workspace, initial_project=root) as (url, _), sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_text("Image Classifier Studio").first.wait_for()
        page.locator("#studio-project").get_by_text("digits").wait_for(timeout=30_000)
        page.get_by_text("unlabeled, in").first.wait_for(timeout=30_000)  # the Data tab's overview
        _shot(page, "1-data", tmp_path / "screenshots")

        page.get_by_role("tab", name="Label").click()
        key = page.locator("#label-key-1")
        key.get_by_text("1 · zero").wait_for(timeout=30_000)
        caption = page.locator("#label-panel").get_by_text(re.compile(r"#\d+ ·")).first
        caption.wait_for(timeout=30_000)
        shown = int(re.search(r"#(\d+)", caption.inner_text()).group(1))
        with Project.open(root) as check:
            assert check.dataset().set_index("image_id").loc[shown, "label"] is None
        _shot(page, "2-label", tmp_path / "screenshots")

        page.locator("body").click(position={"x": 5, "y": 5})  # focus off any text field
        page.keyboard.press("1")
        page.wait_for_function(
            "shown => !document.querySelector('#label-panel').innerText.includes('#' + shown + ' ·')",
            arg=shown, timeout=30_000,
        )
        with Project.open(root) as check:
            assert check.dataset().set_index("image_id").loc[shown, "label"] == "zero"
        page.keyboard.press("u")  # undo brings the image back, unlabeled
        page.locator("#label-panel").get_by_text(f"#{shown} ·").first.wait_for(timeout=30_000)
        with Project.open(root) as check:
            assert check.dataset().set_index("image_id").loc[shown, "label"] is None

        page.get_by_role("tab", name="Augment").click()
        page.locator("#augment-samples img").first.wait_for(timeout=60_000)
        page.get_by_text("The next run uses").or_(page.get_by_text("The next run trains")).first.wait_for()
        _shot(page, "3-augment", tmp_path / "screenshots")

        page.get_by_role("tab", name="Curate").click()
        page.get_by_role("button", name="Analyse").first.wait_for(timeout=30_000)
        _shot(page, "4-curate", tmp_path / "screenshots")

        # A tiny training run: the live curves fill in while the job runs and the bar ends at Done.
        page.get_by_role("tab", name="Train").click()
        page.get_by_label("linear").first.check()
        image_size = page.get_by_label("Image size (px)")
        image_size.fill("64")
        image_size.press("Tab")
        page.get_by_role("button", name="Start training").click()
        page.locator("#train-curves .scatterlayer .trace").first.wait_for(timeout=120_000)
        page.locator("#train-progress").get_by_text("Done").first.wait_for(timeout=120_000)
        # The bar fills on done (its width animates for half a second; wait for the end of it).
        page.wait_for_function(
            "() => { const bar = document.querySelector('#train-progress .train-progress > div > div');"
            " return bar && bar.getBoundingClientRect().width"
            " >= bar.parentElement.getBoundingClientRect().width - 1; }",
            timeout=5_000,
        )
        _shot(page, "5-train", tmp_path / "screenshots")

        for number, title in ((6, "Evaluate"), (7, "Predict")):
            page.get_by_role("tab", name=title).click()
            if title == "Evaluate":  # a run that finished after the page loaded is listed on opening the tab
                page.wait_for_function(
                    "() => [...document.querySelectorAll('input')].some(i => i.value.includes('-linear ('))",
                    timeout=30_000,
                )
            page.wait_for_timeout(1_000)
            _shot(page, f"{number}-{title.lower()}", tmp_path / "screenshots")
        browser.close()
    shots = sorted(p.name for p in (tmp_path / "screenshots").glob("*.png"))
    if not os.environ.get("STUDIO_SHOTS"):
        assert len(shots) == 7, shots


def _no_error_badges(page) -> None:
    """Gradio's red "Error" badge replaces an output when its event raised; a notice must not do that."""
    assert page.locator(".error").filter(has_text="Error").count() == 0


def _notice(page, text: str) -> None:
    """A notice (toast) with `text` appears; close it so it does not cover the next step."""
    toast = page.locator(".toast-body").filter(has_text=text).first
    toast.wait_for(timeout=30_000)
    for close in page.locator(".toast-close").all():
        if close.is_visible():
            close.click()


def test_reload_and_second_page_come_back_to_the_project_and_running_job(tmp_path):
    workspace = tmp_path / "workspace"
    with Project.create(workspace / "digits") as project:
        fill_demo_project(project)
    # No project given at start: only the browser can remember which one was open.
    with running_studio(workspace) as (url, context), sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        profile = browser.new_context(viewport={"width": 1400, "height": 1000})  # one profile, two pages
        page = profile.new_page()
        page.goto(url)
        page.locator("#studio-project").get_by_text("No project open").wait_for(timeout=30_000)
        page.get_by_label("Open a project").click()
        page.get_by_role("option", name="digits").click()
        page.locator("#studio-project").get_by_text("digits").wait_for(timeout=30_000)

        page.get_by_role("tab", name="Train").click()
        page.get_by_label("finetune").first.check()
        for label, value in (("Image size (px)", "64"), ("Epochs", "200")):  # long enough to reload mid-run
            field = page.get_by_label(label)
            field.fill(value)
            field.press("Tab")
        page.get_by_role("button", name="Start training").click()
        page.locator("#train-curves .scatterlayer .trace").first.wait_for(timeout=180_000)
        job = next(j for j in context.service.list_jobs("train"))
        assert job.state.value == "running"

        page.reload()
        page.locator("#studio-project").get_by_text("digits").wait_for(timeout=30_000)
        assert page.get_by_role("tab", name="Train").get_attribute("aria-selected") == "true"
        page.locator("#train-progress").get_by_text(job.id).wait_for(timeout=30_000)
        page.locator("#train-progress").get_by_text("Running").wait_for(timeout=30_000)
        page.locator("#train-curves .scatterlayer .trace").first.wait_for(timeout=30_000)
        # the form shows the settings the running job trains with, not the defaults
        assert page.get_by_label("finetune").first.is_checked()
        assert page.get_by_label("Epochs").input_value() == "200"

        second = profile.new_page()
        second.goto(url)
        second.locator("#studio-project").get_by_text("digits").wait_for(timeout=30_000)
        second.locator("#train-progress").get_by_text(job.id).wait_for(timeout=30_000)
        context.service.cancel(job.id)
        job.wait(60)
        browser.close()


def test_a_user_error_in_each_tab_is_a_notice_and_the_outputs_stay(tmp_path):
    workspace = tmp_path / "workspace"
    Project.create(workspace / "empty").close()  # no images, no classes: every tab has a mistake to make
    root = str((workspace / "empty").resolve())
    with running_studio(workspace, initial_project=root) as (url, _), sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.locator("#studio-project").get_by_text("empty").wait_for(timeout=30_000)
        steps = [
            ("Data", "Add", "type the new class name"),
            ("Label", "Apply to selected", "select some thumbnails first"),
            ("Curate", "Analyse", "no images to analyse"),
            ("Augment", "Another image", "no images yet"),
            ("Train", "Start training", "at least two classes"),
            ("Evaluate", "Evaluate", None),
            ("Predict", "Predict", "Upload an image"),
        ]
        for tab, button, message in steps:
            page.get_by_role("tab", name=tab).click()
            page.wait_for_timeout(500)
            before = _settled_text(page, f"#tab-{tab.lower()}")
            page.locator(f"#tab-{tab.lower()}").get_by_role("button", name=button, exact=True).first.click()
            page.locator(".toast-body").first.wait_for(timeout=30_000)
            text = page.locator(".toast-body").first.inner_text()
            assert message is None or message in text, (tab, text)
            assert "Error" not in page.locator(".toast-title").first.inner_text(), (tab, text)
            _notice(page, text.splitlines()[-1][:30])
            page.wait_for_timeout(300)
            _no_error_badges(page)
            if tab == "Train":
                page.locator("#train-progress").get_by_text("No training job yet").wait_for()
            assert _settled_text(page, f"#tab-{tab.lower()}") == before, tab
        browser.close()


def _settled_text(page, selector: str, timeout_s: float = 15.0) -> str:
    """The element's text once no event is running over it: while one runs Gradio shows a timer line
    ("0.1s") over its outputs, which leaves when the callback has returned (waits a bounded time)."""
    timer = re.compile(r"^\d+(\.\d+)?s$", re.MULTILINE)
    deadline = time.monotonic() + timeout_s
    text = page.locator(selector).inner_text()
    while time.monotonic() < deadline:
        page.wait_for_timeout(300)
        again = page.locator(selector).inner_text()
        if again == text and not timer.search(text):
            break
        text = again
    return text


# Records whether Gradio's status tracker ever shows its progress (the ETA bar or the "processing"
# timer) inside the map panel. With show_progress="hidden" the tracker is in the page but not visible.
MAP_OVERLAY_WATCH_JS = """() => {
  window.mapOverlaySeen = false;
  const panel = document.querySelector('#curate-map-plot');
  const check = () => {
    for (const shown of panel.querySelectorAll('.eta-bar, .progress-text')) {
      if (shown.checkVisibility({opacityProperty: true, visibilityProperty: true})) {
        window.mapOverlaySeen = shown.outerHTML.slice(0, 300);
      }
    }
  };
  new MutationObserver(check).observe(panel, {subtree: true, childList: true, attributes: true});
}"""


def test_lasso_on_the_embedding_map_bulk_labels_the_selected_images(tmp_path):
    workspace = tmp_path / "workspace"
    with Project.create(workspace / "digits") as project:
        fill_demo_project(project)
        root = str(project.root)
        unlabeled = set(project.dataset().query("label.isna()")["image_id"].astype(int))
    with running_studio(workspace, initial_project=root) as (url, _), sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.locator("#studio-project").get_by_text("digits").wait_for(timeout=30_000)
        page.get_by_role("tab", name="Curate").click()
        page.locator("#curate-analyse").click()
        page.locator("#curate-status").get_by_text("Last analysis").wait_for(timeout=600_000)  # 3 backbones
        _shot(page, "curate-duplicates", tmp_path / "screenshots")
        page.get_by_role("tab", name="Label issues").click()
        page.locator("#curate-issue-image img").first.wait_for(timeout=30_000)
        _shot(page, "curate-issues", tmp_path / "screenshots")
        page.get_by_role("tab", name="Embedding map").click()
        drag = page.locator("#curate-map-plot .nsewdrag").first
        drag.wait_for(timeout=30_000)
        page.locator("#curate-map-plot .scatterlayer .point").first.wait_for(timeout=30_000)
        _shot(page, "curate-map", tmp_path / "screenshots")

        # A lasso drawn with the mouse around the whole plot area selects every (unlabeled) point.
        box = drag.bounding_box()
        corners = [(box["x"] + 3, box["y"] + 3), (box["x"] + box["width"] - 3, box["y"] + 3),
                   (box["x"] + box["width"] - 3, box["y"] + box["height"] - 3),
                   (box["x"] + 3, box["y"] + box["height"] - 3), (box["x"] + 3, box["y"] + 8)]
        page.mouse.move(*corners[0])
        page.mouse.down()
        for x, y in corners[1:]:
            page.mouse.move(x, y, steps=12)
        page.mouse.up()
        page.get_by_text(f"{len(unlabeled)} unlabeled images selected on the map").wait_for(timeout=30_000)
        chooser = page.get_by_label("Class for the selected images")
        chooser.fill("zero")
        chooser.press("Enter")
        # The redraw after the bulk label must not cover the map with Gradio's progress overlay.
        page.evaluate(MAP_OVERLAY_WATCH_JS)
        page.get_by_role("button", name="Label all selected").click()
        page.locator(".toast-body").get_by_text(f"Labeled {len(unlabeled)} image(s)").wait_for(timeout=30_000)
        page.wait_for_function(  # the map is redrawn with the new labels: no unlabeled point is left
            "() => !document.querySelector('#curate-map-plot .legend').textContent.includes('(unlabeled)')",
            timeout=60_000,
        )
        assert page.evaluate("window.mapOverlaySeen") is False, page.evaluate("window.mapOverlaySeen")
        _shot(page, "curate-map-labeled", tmp_path / "screenshots")
        browser.close()
    with Project.open(root) as check:
        labels = check.dataset().set_index("image_id")["label"]
        assert all(labels[i] == "zero" for i in unlabeled)
