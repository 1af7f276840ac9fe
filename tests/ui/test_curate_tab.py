"""The Curate tab end to end: the app on loopback, driven through gradio_client (/curate, /curate_report,
/review_label_issue, /resolve_duplicates, /next_to_label, /label_suggested, /label_box), plus one real
browser pass (keyboard review). Features come from a fake extractor that knows each image's true class
from its file name, so every finding is planted and known."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from studio.curate import analysis, decisions
from studio.curate import features as curate_features
from studio.curate.features import FeatureSet
from studio.data.store import Project
from studio.service import TrainerService
from studio.ui.context import AppContext
from studio.ui.launcher import start

CLASSES = ["ant", "bee", "cat"]
CHROMIUM = Path("/usr/bin/chromium")


def _smooth(seed: int, size: int = 32) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), "RGB").resize((size, size),
                                                                                          Image.BICUBIC)


def fake_features(project, backbone=None, *, should_stop=None, on_batch=None, **_options) -> FeatureSet:
    """Class clusters from the file names: `bee_3.png` and `bee_u1.png` are bees, `copy_of_X` is X again."""
    frame = project.dataset()
    centers = np.random.default_rng(0).normal(0, 4.0, (len(CLASSES), 16))
    rows = []
    for name in frame["original_name"]:
        base = name.removeprefix("copy_of_")
        noise = np.random.default_rng(zlib.crc32(base.encode())).normal(
            0, 3.0, 16
        )  # same-class cosine ~0.6: not copies
        rows.append(centers[CLASSES.index(base.split("_")[0])] + noise + (0.01 if base != name else 0.0))
    if on_batch is not None:
        on_batch(len(rows), len(rows))
    return FeatureSet(frame["image_id"].to_numpy(), np.array(rows, dtype=np.float32), backbone or "fake")


def make_project(workspace: Path, name: str) -> dict:
    """3 classes x 8 labeled images (6 train, 2 val), one bee labeled 'cat' (a planted label error),
    a resized copy of a train ant placed in val (leakage), and 3 unlabeled images of each class."""
    files = workspace.parent / f"{name}-files"
    files.mkdir()
    with Project.create(workspace / name) as project:
        ids: dict[str, int] = {}
        for c, label in enumerate(CLASSES):
            for i in range(8):
                path = files / f"{label}_{i}.png"
                _smooth(100 * c + i).save(path)
                ids[path.stem] = project.add_image_file(path, label=label, split="val" if i < 2 else "train")[
                    0
                ]
            for i in range(3):
                path = files / f"{label}_u{i}.png"
                _smooth(100 * c + 50 + i).save(path)
                ids[path.stem] = project.add_image_file(path)[0]
        _smooth(0 + 3).resize((48, 48)).save(files / "copy_of_ant_3.png")
        ids["copy"] = project.add_image_file(files / "copy_of_ant_3.png", label="ant", split="val")[0]
        project.set_label(ids["bee_5"], "cat")
        return {"root": str(project.root), "ids": ids}


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    workspace = tmp_path_factory.mktemp("curate") / "workspace"
    workspace.mkdir()
    service = TrainerService("cpu")
    context = AppContext(workspace=workspace, service=service)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(curate_features, "project_features", fake_features)
        app, url = start(context)
        yield {"client": Client(url, verbose=False), "workspace": workspace, "context": context}
        app.close()
    service.shutdown(10)
    context.close()


@pytest.fixture
def analysed(studio, request):
    """A fresh project of its own, analysed through /curate."""
    made = make_project(studio["workspace"], re.sub(r"\W", "-", request.node.name)[:60])
    made["summary"] = studio["client"].predict(made["root"], "", api_name="/curate")
    return made


def test_analyse_finds_the_planted_problems_and_the_results_persist(studio, analysed):
    summary, ids = analysed["summary"], analysed["ids"]
    assert summary["images"] == 34 and summary["backbone"] == "fake"
    assert summary["leakage_groups"] >= 1 and summary["label_issues"] >= 1
    report = studio["client"].predict(analysed["root"], api_name="/curate_report")
    assert report["analysed"] is True
    leak = [g for g in report["pending_duplicates"] if ids["copy"] in g["image_ids"]]
    assert leak and leak[0]["leakage"] and ids["ant_3"] in leak[0]["image_ids"]
    flagged = [issue["image"] for issue in report["pending_label_issues"]]
    assert flagged[0] == ids["bee_5"]  # the planted error ranks first
    assert report["pending_label_issues"][0]["suggested"] == "bee"
    assert analysis.read_curation_report(analysed["root"]) is not None  # survives a restart


def test_reviewing_a_label_issue_relabels_and_is_not_asked_again(studio, analysed):
    client, ids, root = studio["client"], analysed["ids"], analysed["root"]
    answer = client.predict(root, ids["bee_5"], "accept", "", api_name="/review_label_issue")
    assert answer == {"image_id": ids["bee_5"], "decision": "accepted", "label": "bee"}
    project = studio["context"].open_project(root)
    assert project.dataset().set_index("image_id").loc[ids["bee_5"], "label"] == "bee"
    assert project.label_history(1)["by"].tolist() == ["user"]  # the reviewer's: their Undo reverts it
    report = client.predict(root, api_name="/curate_report")
    assert ids["bee_5"] not in [issue["image"] for issue in report["pending_label_issues"]]
    client.predict(root, ids["cat_1"], "exclude", "", api_name="/review_label_issue")
    assert ids["cat_1"] in decisions.excluded_image_ids(project)
    with pytest.raises(AppError, match="decision must be one of accept, keep, ambiguous, exclude"):
        client.predict(root, ids["cat_2"], "delete", "", api_name="/review_label_issue")


def test_resolving_a_duplicate_group_keeps_one_and_excludes_the_rest(studio, analysed):
    client, ids, root = studio["client"], analysed["ids"], analysed["root"]
    group = [ids["ant_3"], ids["copy"]]
    with pytest.raises(AppError, match="keep must be one of the group's images"):
        client.predict(root, group, "12345", api_name="/resolve_duplicates")
    with pytest.raises(AppError, match="keep must be an image id of the group or 'all'"):
        client.predict(root, group, "the big one", api_name="/resolve_duplicates")
    result = client.predict(root, group, str(ids["ant_3"]), api_name="/resolve_duplicates")
    assert result == {"kept": [ids["ant_3"]], "excluded": [ids["copy"]]}
    project = studio["context"].open_project(root)
    assert decisions.excluded_image_ids(project) == {ids["copy"]}
    report = client.predict(root, api_name="/curate_report")
    assert not [g for g in report["pending_duplicates"] if ids["copy"] in g["image_ids"]]
    assert report["excluded_now"] == 1


def test_duplicate_controls_show_only_while_a_group_is_pending(studio, analysed):
    """Empty group/keep dropdowns and a Resolve button with nothing to resolve only confuse: hidden then."""
    from studio.app.curation import CurateSession
    from studio.ui import curate_views

    context, client, root = studio["context"], studio["client"], analysed["root"]
    session = CurateSession(context)
    project = context.open_project(root)

    def shown() -> list[bool]:
        group, _text, _gallery, keep, resolve, _ids = curate_views.duplicates(
            session, project, session.report(project), None)
        return [group["visible"], keep["visible"], resolve["visible"]]

    assert shown() == [True, True, True]
    for group in client.predict(root, api_name="/curate_report")["pending_duplicates"]:
        client.predict(root, group["image_ids"], "all", api_name="/resolve_duplicates")
    assert shown() == [False, False, False]


def test_active_learning_suggests_the_class_and_labels_in_one_call(studio, analysed):
    client, ids, root = studio["client"], analysed["ids"], analysed["root"]
    unlabeled = {ids[f"{c}_u{i}"]: c for c in CLASSES for i in range(3)}
    first = client.predict(root, api_name="/next_to_label")
    assert first["image_id"] in unlabeled and first["remaining"] == 9
    assert first["suggested"] == unlabeled[first["image_id"]]  # clusters are clear: the guess is right
    done = client.predict(root, first["image_id"], "", api_name="/label_suggested")
    assert done["label"] == unlabeled[first["image_id"]]
    second = client.predict(root, api_name="/next_to_label")
    assert second["image_id"] != first["image_id"] and second["remaining"] == 8
    for image_id in list(unlabeled)[:6]:  # more labels than REFIT_EVERY: the learner refits meanwhile
        client.predict(root, image_id, unlabeled[image_id], api_name="/label_suggested")
    for _ in range(100):  # the refit runs in the background: poll (bounded) until it has landed
        if client.predict(root, api_name="/next_to_label")["fits"] >= 2:
            break
    else:
        raise AssertionError("the learner never refitted after the new labels")


def test_box_on_the_embedding_map_labels_every_unlabeled_image_inside(studio, analysed):
    client, ids, root = studio["client"], analysed["ids"], analysed["root"]
    report = analysis.read_curation_report(root)
    points = dict(
        zip(report["embedding"]["image_id"], zip(report["embedding"]["x"], report["embedding"]["y"]))
    )
    bees = [ids[f"bee_u{i}"] for i in range(3)]
    xs, ys = [points[i][0] for i in bees], [points[i][1] for i in bees]
    box = (min(xs) - 1e-3, max(xs) + 1e-3, min(ys) - 1e-3, max(ys) + 1e-3)
    result = client.predict(root, *box, "bee", True, api_name="/label_box")
    assert set(bees) <= set(result["image_ids"]) and result["label"] == "bee"
    unlabeled = [ids[f"{c}_u{i}"] for c in CLASSES for i in range(3)]
    inside = {i for i in unlabeled if box[0] <= points[i][0] <= box[1] and box[2] <= points[i][1] <= box[3]}
    assert set(result["image_ids"]) == inside  # only unlabeled images, only those in the box
    labels = studio["context"].open_project(root).dataset().set_index("image_id")["label"]
    assert all(labels[i] == "bee" for i in inside)
    assert labels[ids["bee_0"]] == "bee" and labels[ids["bee_5"]] == "cat"  # labeled ones untouched
    with pytest.raises(AppError, match="no image lies in that box"):
        client.predict(root, 1e6, 1e6 + 1, 1e6, 1e6 + 1, "bee", True, api_name="/label_box")


def test_user_errors_are_readable(studio, tmp_path):
    client = studio["client"]
    Project.create(studio["workspace"] / "empty").close()
    with pytest.raises(AppError, match="no images to analyse"):
        client.predict(str(studio["workspace"] / "empty"), "", api_name="/curate")
    assert client.predict(str(studio["workspace"] / "empty"), api_name="/curate_report") == {
        "analysed": False
    }
    with pytest.raises(AppError, match="run Analyse first"):
        client.predict(str(studio["workspace"] / "empty"), api_name="/next_to_label")
    with pytest.raises(AppError, match="not a project of this studio"):
        client.predict(str(tmp_path), "", api_name="/curate")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_browser_shows_the_analysis_and_reviews_with_a_key(studio, analysed):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    ids, root = analysed["ids"], analysed["root"]
    _smooth(999).save(Path(root).parent / "cat_u9.png")
    studio["context"].open_project(root).add_image_file(Path(root).parent / "cat_u9.png")
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    app, url = start(studio["context"], root)  # a second server that opens this project on load
    with sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=str(CHROMIUM), args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.locator("#studio-project").get_by_text(Path(root).name).wait_for(timeout=30_000)
        page.get_by_role("tab", name="Curate").click()
        page.get_by_text("Last analysis").first.wait_for(timeout=30_000)
        page.get_by_text("⚠ Train/val leakage").first.wait_for(timeout=30_000)
        added = page.get_by_text("were added after this analysis")
        added.wait_for(timeout=30_000)
        page.get_by_role("button", name="Analyse").click()  # the job runs, the tab reloads when it ends
        added.wait_for(state="detached", timeout=60_000)
        page.get_by_text("Last analysis").first.wait_for(timeout=30_000)
        page.get_by_role("tab", name="Label issues").click()
        page.get_by_text(f"#{ids['bee_5']}").first.wait_for(timeout=30_000)
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("a")
        page.get_by_text(f"#{ids['bee_5']} ·").first.wait_for(state="detached", timeout=30_000)

        page.get_by_role("tab", name="Active learning").click()
        caption = page.locator("#curate-active-panel").get_by_text(re.compile(r"^#\d+ ·")).first
        caption.wait_for(timeout=30_000)
        shown = int(re.search(r"#(\d+)", caption.inner_text()).group(1))
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("Enter")  # accepts the pre-filled guess
        page.locator("#curate-active-panel").get_by_text(f"#{shown} ·").wait_for(
            state="detached", timeout=30_000
        )

        page.get_by_role("tab", name="Duplicates & leakage").click()
        resolve, done = page.get_by_role("button", name="Resolve group"), page.get_by_text(
            "No near-duplicates left to review")
        shown_group = page.locator("#curate-group input")

        def group_shown() -> str | None:  # None once the dropdown is gone (no group left); never waits
            values = shown_group.evaluate_all("els => els.filter(e => e.offsetParent).map(e => e.value)")
            return values[0] if values else None

        for _ in range(10):  # each click resolves the shown group (keeping its largest copy)
            if done.is_visible():
                break
            before = group_shown()
            resolve.click()
            for _ in range(100):  # until the next group (or the all-done text) replaces this one
                if done.is_visible() or group_shown() != before:
                    break
                page.wait_for_timeout(100)
        done.wait_for(timeout=30_000)
        assert not resolve.is_visible() and not page.locator("#curate-group").is_visible()
        browser.close()
    app.close()
    labels = studio["context"].open_project(root).dataset().set_index("image_id")["label"]
    assert labels[ids["bee_5"]] == "bee"
    assert labels[shown] is not None


def test_a_cli_analysis_appears_in_the_curate_tab(studio, capsys):
    from studio.cli import main

    made = make_project(studio["workspace"], "cli-analysed")
    assert studio["client"].predict(made["root"], api_name="/curate_report") == {"analysed": False}
    assert main(["curate", made["root"], "--json"]) == 0
    printed = capsys.readouterr().out
    assert "embedding" not in printed and '"label_issues"' in printed
    report = studio["client"].predict(made["root"], api_name="/curate_report")
    assert report["analysed"] is True and report["backbone"] == "fake" and report["images"] == 34
    assert report["pending_label_issues"][0]["image"] == made["ids"]["bee_5"]
    assert any(made["ids"]["copy"] in g["image_ids"] and g["leakage"] for g in report["pending_duplicates"])
