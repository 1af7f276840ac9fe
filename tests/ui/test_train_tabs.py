"""Train, Evaluate and Predict tabs end to end: the whole app on loopback, driven through gradio_client
(/train, /train_status, /cancel, /predict), plus the tab helpers that turn service results into widgets.

One tiny project (two colors, 40 px images) and one linear-probe run are shared by the module's tests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from helpers_images import make_image, make_image_folder

from studio.app.evaluation import evaluation_job
from studio.augment import AugmentConfig, preset, save_project_augment
from studio.data.importers import import_source
from studio.data.store import Project
from studio.errors import StudioError
from studio.service import TrainerService
from studio.ui import evaluate_tab, predict_tab, train_tab
from studio.ui.context import AppContext
from studio.ui.launcher import start

FINISHED = ("done", "failed", "cancelled")


def _poll(client: Client, job_id: str, until=lambda s: s["state"] in FINISHED, limit: int = 600) -> dict:
    """Poll /train_status until `until` holds (bounded by a number of polls, not by time)."""
    for _ in range(limit):
        status = client.predict(job_id, api_name="/train_status")
        if until(status):
            return status
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} never reached the expected state; last: {status}")


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    base = tmp_path_factory.mktemp("studio")
    workspace = base / "workspace"
    workspace.mkdir()
    source = make_image_folder(base / "source", ["red", "blue"], per_class=8, size=40)
    with Project.create(workspace / "colors") as project:
        import_source(project, source, val_fraction=0.25)
    Project.create(workspace / "empty").close()
    service = TrainerService("cpu")
    context = AppContext(workspace=workspace, service=service)
    app, url = start(context)
    client = Client(url, verbose=False)
    yield {"client": client, "context": context, "service": service, "root": str(workspace / "colors"),
           "empty": str(workspace / "empty"), "base": base}
    app.close()
    service.shutdown(10)
    context.close()


@pytest.fixture(scope="module")
def trained(studio):
    """One finished linear-probe run (seconds on a CPU) trained through /train."""
    client = studio["client"]
    job_id = client.predict(project=studio["root"], strategy="linear", image_size=64, api_name="/train")
    status = _poll(client, job_id)
    assert status["state"] == "done", status
    return status


def test_train_runs_to_done_with_metrics_and_progress(studio, trained) -> None:
    assert trained["progress"] == 1.0
    assert trained["metrics"]["val_accuracy"] > 0.5  # two clearly different colors
    assert Path(trained["run_dir"]).parent == Path(studio["root"]) / "runs"
    assert trained["result"]["strategy"] == "linear"
    assert trained["error"] is None


def test_predict_with_tta_returns_sorted_probabilities(studio, trained) -> None:
    client = studio["client"]
    image = studio["base"] / "query.png"
    make_image(40, seed=99, color=(200, 30, 30)).save(image)
    found = client.predict(handle_file(str(image)), True, 2, "", studio["root"], api_name="/predict")
    # The shape `studio predict --json` gives, less the path (the caller sent the one image).
    assert set(found) == {"top", "unknown", "unlike_training"}
    top = found["top"]
    assert {t["class"] for t in top} == {"red", "blue"}
    assert top[0]["probability"] >= top[1]["probability"]
    assert abs(sum(t["probability"] for t in top) - 1.0) < 1e-4
    # A run folder alone is enough: its project is implied.
    again = client.predict(
        image=handle_file(str(image)), top_k=1, run=trained["run_dir"], api_name="/predict"
    )
    assert len(again["top"]) == 1 and again["top"][0]["class"] in {"red", "blue"}
    # The same image through the predictor the CLI uses: the same numbers and the same flags.
    from studio.predict.predictor import Predictor

    direct = Predictor.from_run(trained["run_dir"], "cpu").predict([str(image)], tta=True, top_k=2)[0]
    assert [t["class"] for t in direct["top"]] == [t["class"] for t in top]
    assert max(abs(a["probability"] - b["probability"]) for a, b in zip(direct["top"], top)) <= 1e-4
    assert (direct["unknown"], direct["unlike_training"]) == (found["unknown"], found["unlike_training"])


def test_user_errors_are_readable_messages(studio, tmp_path) -> None:
    client = studio["client"]
    with pytest.raises(AppError, match="no project is open"):
        client.predict(project="", api_name="/train")
    with pytest.raises(AppError, match="at least two classes"):
        client.predict(project=studio["empty"], api_name="/train")
    with pytest.raises(AppError, match="Epochs must be a whole number"):
        client.predict(project=studio["root"], epochs=-3, api_name="/train")
    with pytest.raises(AppError, match="Unknown strategy"):
        client.predict(project=studio["root"], strategy="magic", api_name="/train")
    with pytest.raises(
        AppError, match="the limit is 1000"
    ):  # absurd settings: refused before anything starts
        client.predict(project=studio["root"], epochs=100_000, api_name="/train")
    with pytest.raises(AppError, match="would make training diverge"):
        client.predict(project=studio["root"], lr=10.0, api_name="/train")
    with pytest.raises(AppError, match="not a project of this studio"):
        client.predict(project=str(tmp_path), api_name="/train")
    with pytest.raises(AppError, match=r"Time budget must be a positive number such as 600 \(seconds\)"):
        client.predict(project=studio["root"], time_budget=-60, api_name="/train")
    with pytest.raises(AppError, match="more than a week"):
        client.predict(project=studio["root"], time_budget=10**9, api_name="/train")
    with pytest.raises(AppError, match="Strategy 'auto' cannot train on several processes"):
        client.predict(project=studio["root"], processes=2, api_name="/train")
    with pytest.raises(AppError, match="Processes must be a whole number"):
        client.predict(project=studio["root"], strategy="finetune", processes=-2, api_name="/train")
    with pytest.raises(AppError, match="more CPU processes than"):
        client.predict(project=studio["root"], strategy="finetune", processes=4096, api_name="/train")
    image = tmp_path / "x.png"
    make_image(32, seed=1).save(image)
    with pytest.raises(AppError, match="no trained model yet"):
        client.predict(image=handle_file(str(image)), project=studio["empty"], api_name="/predict")
    with pytest.raises(AppError, match="not a run of this project"):
        client.predict(image=handle_file(str(image)), run="../../elsewhere", project=studio["root"],
                       api_name="/predict")
    with pytest.raises(AppError, match="No job"):
        client.predict("00999-train", api_name="/train_status")


def test_cancel_queued_and_running_jobs(studio, trained) -> None:
    client = studio["client"]
    slow = {
        "project": studio["root"],
        "strategy": "finetune",
        "epochs": 200,
        "batch_size": 4,
        "image_size": 32,
        "augment": "none",
        "api_name": "/train",
    }
    running = client.predict(**slow)
    queued = client.predict(**slow)
    assert client.predict(queued, api_name="/train_status")["queue_position"] == 1
    assert client.predict(queued, api_name="/cancel") == "cancelled"  # never started
    _poll(client, running, until=lambda s: s["state"] == "running" and s["stage"] == "finetune")
    assert client.predict(running, api_name="/cancel") in ("cancelling", "cancelled")
    status = _poll(client, running)
    assert status["state"] == "cancelled"
    assert client.predict(queued, api_name="/train_status")["state"] == "cancelled"


def test_train_helpers_turn_a_job_into_widgets(studio, trained) -> None:
    service, root = studio["service"], studio["root"]
    job = service.get(trained["job_id"])
    html_text = train_tab.progress_html(train_tab.job_status(job, job.events(0)))
    assert "Done" in html_text and "val accuracy" in html_text
    assert "No training job yet" in train_tab.progress_html(None)
    runs = train_tab.runs_frame(service.list_runs(root))
    assert Path(trained["run_dir"]).name in runs["run"].tolist()
    assert (runs[runs["run"] == Path(trained["run_dir"]).name]["model"] == "yes").all()
    jobs = train_tab.jobs_frame(service, root)
    assert trained["job_id"] in jobs["job"].tolist()
    api = train_tab.TrainApi(studio["context"])
    assert api.latest_train_job(root)  # the page finds the project's job after a reload
    assert api.curve_rows(trained["run_dir"])[0]["val_accuracy"] == trained["metrics"]["val_accuracy"]


def test_evaluation_job_lists_every_image_of_each_confusion_cell(studio, trained) -> None:
    context, root = studio["context"], studio["root"]
    run_dir = evaluate_tab.checked_run_dir(context, root, Path(trained["run_dir"]).name)
    training_eval = (run_dir / "eval.json").read_bytes()
    job = studio["service"].submit(
        "evaluate",
        evaluation_job(studio["service"], context.open_project, Path(root), run_dir),
        interactive=True,
        project=root,
    )
    data = job.outcome(120)
    report = data["report"]
    assert report["images"] == "snapshot" and (run_dir / "eval.json").read_bytes() == training_eval
    assert "tta" in report and 0 <= report["accuracy"] <= 1
    assert len(data["images"]) == report["n"]
    # The tab's "not sure" share is the one `studio eval` reports: confidence and novelty alike.
    from_training = json.loads(training_eval)
    assert report["novelty"] and report["novelty"] == from_training["novelty"]
    assert report["unknown_rate"] == from_training["unknown_rate"]
    matrix = report["confusion_matrix"]
    for choice_label, cell in evaluate_tab.cell_choices(report):
        true_index, predicted_index = (int(i) for i in cell.split("|"))
        assert len(evaluate_tab.cell_items(data, "plain", cell)) == matrix[true_index][predicted_index]
        assert f"({matrix[true_index][predicted_index]})" in choice_label
    table = evaluate_tab.class_frame(report)
    assert sorted(table["class"]) == ["blue", "red"]
    assert (table["images"].sum()) == report["n"]
    assert "accuracy" in evaluate_tab.summary_markdown(data)
    # a linear run records no TTA choice: it predicts plain, and the summary says which number that is
    assert report["tta_default"] is False and report["default_accuracy"] == report["accuracy"]
    assert "this run predicts without TTA" in evaluate_tab.summary_markdown(data)
    # a label fixed from the tab moves its image out of the mistake cell and the mistakes list at once
    image = data["images"][0]
    fixed_to = next(name for name in report["classes"] if name != image["label"])
    cell = f"{report['classes'].index(image['label'])}|{report['classes'].index(image['plain'])}"
    fixed = evaluate_tab.with_label(data, image["image_id"], fixed_to)
    assert image["image_id"] in [i["image_id"] for i in evaluate_tab.cell_items(data, "plain", cell)]
    assert image["image_id"] not in [i["image_id"] for i in evaluate_tab.cell_items(fixed, "plain", cell)]
    assert image["image_id"] not in [i["image_id"] for i in evaluate_tab.top_loss_items(fixed, "plain")]
    assert data["images"][0]["label"] == image["label"]  # the evaluation's own data is not changed


def test_the_evaluate_tabs_current_split_choice_writes_its_own_file(studio, trained) -> None:
    context, root = studio["context"], studio["root"]
    run_dir = evaluate_tab.checked_run_dir(context, root, Path(trained["run_dir"]).name)
    training_eval = (run_dir / "eval.json").read_bytes()
    job = studio["service"].submit(
        "evaluate",
        evaluation_job(studio["service"], context.open_project, Path(root), run_dir, current_split=True),
        interactive=True,
    )
    report = job.outcome(120)["report"]
    assert report["images"] == "current-split"
    assert json.loads((run_dir / "eval-current-split.json").read_text())["n"] == report["n"]
    assert (run_dir / "eval.json").read_bytes() == training_eval


def test_add_to_project_labels_a_new_image(studio, trained) -> None:
    image = studio["base"] / "new-red.png"
    make_image(40, seed=1234, color=(210, 20, 20)).save(image)
    api = predict_tab.PredictApi(studio["context"])
    message = api.add_to_project(studio["root"], str(image), "red")
    assert "added to the project" in message
    project = studio["context"].open_project(studio["root"])
    data = project.dataset()
    added = data[data["original_name"] == "new-red.png"]
    assert added["label"].tolist() == ["red"] and added["split"].notna().all()
    with pytest.raises(Exception, match="Choose or type the class"):
        api.add_to_project(studio["root"], str(image), " ")


def _images_and_their_zip(base: Path, name: str, seed: int) -> tuple[Path, Path]:
    """Three small images in `base/name/any/` and a zip of them, `base/name.zip`."""
    import zipfile

    folder = make_image_folder(base / name, ["any"], per_class=3, size=40, seed=seed) / "any"
    archive = base / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in folder.iterdir():
            handle.write(path, path.name)
    return folder, archive


def test_predict_a_folder_and_a_zip_to_csv(studio, trained) -> None:
    import csv

    folder, archive = _images_and_their_zip(studio["base"], "batch", seed=7)
    api = predict_tab.PredictApi(studio["context"])
    for source, zip_path in ((str(folder), None), ("", str(archive))):
        job, csv_path = api.predict_batch(studio["root"], "", source, zip_path, tta=False)
        assert job.outcome(120)["images"] == 3
        rows = list(csv.DictReader(csv_path.open()))
        assert len(rows) == 3 and {r["prediction"] for r in rows} <= {"red", "blue"}
    with pytest.raises(Exception, match="is not a folder"):
        api.predict_batch(studio["root"], "", str(studio["base"] / "missing"), None, tta=False)

    # A truncated file among them: the others are still predicted, its row says why.
    good = min(folder.iterdir())
    (folder / "truncated.png").write_bytes(good.read_bytes()[:60])
    job, csv_path = api.predict_batch(studio["root"], "", str(folder), None, tta=False)
    assert job.outcome(120) == {"images": 4, "unreadable": 1, "csv": str(csv_path)}
    rows = {Path(r["path"]).name: r for r in csv.DictReader(csv_path.open())}
    assert rows["truncated.png"]["prediction"] == "" and rows["truncated.png"]["error"]
    assert rows[good.name]["prediction"] in {"red", "blue"} and rows[good.name]["error"] == ""


def test_the_evaluate_tabs_export_gives_a_checked_bundle_zip(studio, trained) -> None:
    import zipfile

    from studio.app.exporting import export_job, export_summary

    run_dir = evaluate_tab.checked_run_dir(studio["context"], studio["root"], Path(trained["run_dir"]).name)
    job = studio["service"].submit("export", export_job(run_dir, "onnx", studio["base"] / "exports"))
    result = job.outcome(300)
    with zipfile.ZipFile(result["zip"]) as archive:
        names = {Path(n).name for n in archive.namelist()}
    assert {"model.onnx", "predict.py", "classes.json", "model_card.md", "parity.json"} <= names
    assert result["parity"]["passed"] and result["parity"]["max_abs_diff"] <= 1e-4
    text = export_summary(result, run_dir.name)
    assert run_dir.name in text and "differ by at most" in text and "predict.py" in text
    with pytest.raises(Exception, match="Unknown export format"):
        export_job(run_dir, "pickle", studio["base"])


def test_a_zip_prediction_cancelled_while_it_waits_leaves_nothing_unpacked(studio, trained) -> None:
    """A waiting job cannot keep a viewer's unpacked zip on the server: it is unpacked when the job runs."""
    import threading
    import zipfile

    _, archive = _images_and_their_zip(studio["base"], "waiting", seed=8)
    service = studio["service"]
    release = threading.Event()
    blocker = service.submit("train", lambda ctx: release.wait(60))  # the device is busy
    try:
        job, csv_path = predict_tab.PredictApi(studio["context"]).predict_batch(studio["root"], "", "",
                                                                                 str(archive), tta=False)
        assert not (csv_path.parent / "images").exists()
        assert service.cancel(job.id)
    finally:
        release.set()
    blocker.outcome(60)
    assert job.state.value == "cancelled" and not (csv_path.parent / "images").exists()

    bomb = studio["base"] / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as handle:
        for number in range(50):
            handle.writestr(f"{number}.png", bytes(1024**2))
    with pytest.raises(Exception, match="zip bomb"):
        predict_tab.PredictApi(studio["context"]).predict_batch(studio["root"], "", "", str(bomb), tta=False)

def test_several_images_with_an_unreadable_one(studio, trained, tmp_path) -> None:
    api = predict_tab.PredictApi(studio["context"])
    good = tmp_path / "good.png"
    make_image(40, seed=5, color=(210, 20, 20)).save(good)
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    results = api.predict(studio["root"], "", [str(broken), str(good)], False, 2)
    assert (
        results[0]["error"] and results[0]["top"] == [] and results[1]["top"][0]["class"] in {"red", "blue"}
    )
    rows = predict_tab.prediction_rows(results, ["broken.jpg", "good.png"])
    assert rows.iloc[0]["prediction"].startswith("could not read:") and rows.iloc[1]["probability"].endswith(
        "%"
    )
    with pytest.raises(StudioError, match="broken.jpg: not an image"):  # one image: its own error, named
        api.predict(studio["root"], "", [str(broken)], False, 2)
    with pytest.raises(StudioError, match="None of the images could be read"):
        api.predict(studio["root"], "", [str(broken), str(broken)], False, 2)


def test_train_tab_trains_with_the_augment_tabs_custom_strengths(studio, tmp_path) -> None:
    source = make_image_folder(tmp_path / "source", ["a", "b"], per_class=3, size=32)
    with Project.create(tmp_path / "custom") as project:
        import_source(project, source, val_fraction=0.34)
        root = project.root
    api = train_tab.TrainApi(AppContext(workspace=tmp_path, extra_projects=[root]))
    settings = ("test_efficientnet", "finetune", 1, None, 4, 64)
    assert api.train_config(str(root), *settings, "project", False)[1]["augment"] == "light"
    assert api.train_config(str(root), *settings, "project", False)[1]["time_budget_s"] is None  # automatic
    assert api.train_config(str(root), *settings, "project", time_budget=600)[1]["time_budget_s"] == 600
    custom = preset("medium", rotate=5.0, cutmix=0.5)
    save_project_augment(root, custom)
    config = api.train_config(str(root), *settings, "project", False)[1]
    assert AugmentConfig.from_dict(config["augment"]) == AugmentConfig(
        **{**custom.to_dict(), "preset": "custom"}
    )
    assert api.train_config(str(root), *settings, "heavy", False)[1]["augment"] == "heavy"
    assert (
        api.augment_note(str(root), "project")
        == "Saved in the Augment tab: flip 50%, crop 60-100%, rotate ±5°, color ±20%, blur 10%, "
        "CutMix α0.5 on 100% of batches."
    )
    assert api.augment_note(str(root), "none").startswith("Preset none: no augmentation")
    elsewhere = tmp_path / "elsewhere"  # a folder the app may not open: its settings are not read
    elsewhere.mkdir()
    save_project_augment(elsewhere, preset("medium", rotate=33.0))
    note = api.augment_note(str(elsewhere), "project")
    assert note.startswith("⚠") and "33" not in note.replace(str(elsewhere), "")  # its path may hold 33
    (root / "augment.json").write_text("{broken")
    assert "augment.json" in api.augment_note(str(root), "project")  # a readable warning, not a crash
    api.context.close()


def test_train_tab_lr_finder_job_suggests_a_rate(studio) -> None:
    api = train_tab.TrainApi(studio["context"])
    job = api.lr_find_job(studio["root"], "tf_efficientnet_lite0", "auto", 0, 0, 4, 64, "none")
    result = job.outcome(300)
    assert result["steps"] >= 5 and len(result["rates"]) == len(result["losses"])
    assert (
        result["suggested_lr"] is None or result["rates"][0] <= result["suggested_lr"] <= result["rates"][-1]
    )
    with pytest.raises(StudioError):
        api.lr_find_job(studio["empty"], "tf_efficientnet_lite0", "auto", 0, 0, 4, 64, "none")


def test_the_evaluate_summary_counts_the_images_the_run_flags_not_sure() -> None:
    report = {"n": 20, "accuracy": 0.9, "macro_f1": 0.9, "tta_default": False,
              "unknown_threshold": 0.62, "unknown_rate": 0.15}
    text = evaluate_tab.summary_markdown({"run_dir": "runs/r1", "report": report})
    assert '3 of 20 "not sure" (below the run\'s 0.62 confidence)' in text
    novel = {**report, "novelty": {"threshold": 0.4, "k": 5, "n": 80, "keep": 0.99, "unlike_rate": 0.05}}
    text = evaluate_tab.summary_markdown({"run_dir": "runs/r1", "report": novel})
    assert ('3 of 20 "not sure" (below the run\'s 0.62 confidence, or unlike the training images: 1 of them)'
            in text)
    no_threshold = {"run_dir": "runs/r1", "report": {**report, "unknown_threshold": 0.0}}
    assert "not sure" not in evaluate_tab.summary_markdown(no_threshold)
    # A manual fine-tune: the novelty test alone (no confidence threshold was fitted).
    novelty_only = {**novel, "unknown_threshold": 0.0, "unknown_rate": 0.05}
    text = evaluate_tab.summary_markdown({"run_dir": "runs/r1", "report": novelty_only})
    assert '1 of 20 "not sure" (unlike the training images; the run has no confidence threshold)' in text


def test_a_reload_mid_run_shows_the_running_jobs_settings_in_the_form() -> None:
    from studio.train import TrainConfig

    running = TrainConfig(strategy="finetune", epochs=3, lr=0.002, backbone="tf_efficientnet_lite1").to_dict()
    values = train_tab.form_values(running)
    assert values["strategy"] == "finetune" and values["epochs"] == 3 and values["lr"] == 0.002
    assert values["backbone"] == "tf_efficientnet_lite1"
    assert values["batch_size"] == 0 and values["image_size"] == 0 and values["time_budget"] == 0  # automatic
    assert train_tab.form_values({"strategy": "auto"}) == {"strategy": "auto"}
