"""In a real browser, the Predict tab says "not sure" for images of another domain and keeps the guesses.

Set STUDIO_SHOTS=/some/dir to save the screenshot the README shows (predict-not-sure.png).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from browser_env import ARGS, CHROMIUM, needs_chromium, shot, sync_api
from PIL import Image
from studio_server import running_studio

from studio.data.store import Project
from studio.predict.predictor import Predictor
from studio.train import TrainConfig, train
from studio.ui.demo_data import fill_demo_project

pytestmark = needs_chromium


def _other_domain(folder: Path) -> list[Path]:
    """Colour photos-like images nothing like the demo's grey digits: noise, a gradient, stripes."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:160, 0:160]
    arrays = {
        "noise.png": rng.integers(0, 256, (160, 160, 3), dtype=np.uint8),
        "sunset.png": np.stack([255 - y * 1.2, x * 0.8 + 40, y * 0.5], axis=-1).clip(0, 255).astype(np.uint8),
        "stripes.png": np.stack([(np.sin(x / 5) > 0) * 200 + 30, y * 0 + 120, (np.cos(y / 7) > 0) * 180],
                                axis=-1).astype(np.uint8),
    }
    paths = []
    for name, array in arrays.items():
        Image.fromarray(array).save(folder / name)
        paths.append(folder / name)
    return paths


def test_predict_tab_says_not_sure_for_another_domain(tmp_path):
    workspace = tmp_path / "workspace"
    with Project.create(workspace / "digits") as project:
        fill_demo_project(project)
        root = str(project.root)
        run = train(project, TrainConfig(strategy="linear", image_size=96, device="cpu"))
        digit = project.dataset(labeled_only=True).query("split == 'val'")["path"].iloc[0]
    others = _other_domain(tmp_path / "other")
    flagged = [r["unknown"] for r in Predictor.from_run(run.run_dir, "cpu").predict([str(p) for p in others])]
    assert sum(flagged) >= 2, flagged  # the engine flags most of them (its own test covers the rule)
    assert not Predictor.from_run(run.run_dir, "cpu").predict(digit)[0]["unknown"]
    with running_studio(workspace, initial_project=root) as (url, _), sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.locator("#studio-project").get_by_text("digits").wait_for(timeout=30_000)
        page.get_by_role("tab", name="Predict").click()
        assert page.get_by_label("As the run chose").is_checked()  # TTA follows the run unless forced
        block = page.locator(".block").filter(has_text="Or several images at once")
        block.locator("input[type=file]").first.set_input_files([*map(str, others), str(digit)])
        page.get_by_role("button", name="Predict", exact=True).click()
        page.wait_for_function("() => document.body.innerText.includes('not sure (')", timeout=60_000)
        shown = page.locator("body").inner_text()  # what is visible: the table's rows and the bars' title
        assert shown.count("not sure (") == sum(flagged)
        assert "noise.png" in shown and "sunset.png" in shown
        shot(page, "predict-not-sure", tmp_path / "screenshots")
        browser.close()
