"""Predict tab: classify uploaded or webcam images with a run's model (TTA optional), show the top-k as
bars and a Grad-CAM, add a mispredicted image to the project with its right label, and predict a whole
folder or zip to a CSV. Predictions run in the service (interactive jobs, beside training where the
device allows); big batches queue like any job. API: /predict (see `register_api`).
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from studio.errors import StudioError
from studio.export.standalone import plain_prediction
from studio.sharing.confinement import inside
from studio.train.runs import STATUS_FILE, read_json
from studio.ui import charts, media
from studio.ui.access import requires
from studio.ui.context import AppContext, ProjectBinding
from studio.ui.evaluate_tab import checked_run_dir, grad_cams, run_choices, service_of, wait_for
from studio.ui.feedback import api_errors, user_errors

LATEST = ""  # the run choice meaning "the newest run with a model"
RESULT_COLUMNS = ["image", "prediction", "probability"]
MAX_TOP_K = 10


NOT_SURE = "not sure"


def shown_class(result: dict[str, Any]) -> str:
    """The top class, or "not sure (top class?)" when the run flags the image unknown."""
    best = result["top"][0]["class"]
    return f"{NOT_SURE} ({best}?)" if result.get("unknown") else best


def bars_title(result: dict[str, Any], name: str | None) -> str | None:
    """The bars' title: the image name when several, and "not sure" when the model flagged it unknown."""
    if not result.get("unknown"):
        return name
    unsure = ("Not sure: unlike the training images (top guesses below)" if result.get("unlike_training")
              else "Not sure: none of the classes fits well (top guesses below)")
    return f"{name}: {unsure}" if name else unsure


def answer_markdown(result: dict[str, Any] | None, run_dir: Path | None = None, tta: bool | None = None,
                    name: str | None = None) -> str:
    """The one-line answer above the bars: the class and its probability, or "not sure" with the top guess
    and why; then how it was predicted (TTA, which run)."""
    if not result or not result.get("top"):
        return ""
    best = result["top"][0]
    guess = f"**{html.escape(str(best['class']))}** ({best['probability']:.1%})"
    if result.get("unknown"):
        why = ("unlike the images it was trained on" if result.get("unlike_training")
               else "no class fits well")
        line = f"**Not sure**: {why}. Top guess {guess}; check it before you trust it."
    else:
        line = guess
    how = []
    if tta is None and run_dir is not None:
        tta = ((read_json(run_dir / STATUS_FILE) or {}).get("result") or {}).get("tta")
    if tta is not None:
        how.append("with test-time augmentation" if tta else "without test-time augmentation")
    if run_dir is not None:
        how.append(f"run {html.escape(run_dir.name)}")
    prefix = f"{html.escape(name)}: " if name else ""
    return f"{prefix}{line}" + (f" <span class='help-text'>({', '.join(how)})</span>" if how else "")


def suggested_class(result: dict[str, Any]) -> str | None:
    """What "Correct class" starts at: the top class, or nothing when the model is not sure (one click
    must not add an image it could not place under its guess)."""
    return None if result.get("unknown") else result["top"][0]["class"]


def prediction_rows(results: list[dict[str, Any]], names: list[str]) -> pd.DataFrame:
    rows = [[name, f"could not read: {r['error']}", ""] if r.get("error") else
            [name, shown_class(r), f"{r['top'][0]['probability']:.1%}"] for name, r in zip(names, results)]
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


TTA_CHOICES = [("As the run chose", "run"), ("On", "on"), ("Off", "off")]


def tta_mode(value: Any) -> bool | None:
    """The TTA setting a caller sent: None follows the run's own choice. Anything else is refused (a
    caller may send any value by the callback's index)."""
    if value in (None, "", "run"):
        return None
    if value in (True, "on"):
        return True
    if value in (False, "off"):
        return False
    raise StudioError(f"Test-time augmentation must be 'run', 'on' or 'off', not {str(value)[:40]!r}.")


def _top_k(value: Any) -> int:
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise StudioError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, got {value!r}.") from None
    if not 1 <= k <= MAX_TOP_K:
        raise StudioError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, got {value!r}.")
    return k


class PredictApi:
    def __init__(self, context: AppContext) -> None:
        self.context = context

    def run_dir(self, project: str, run: str) -> Path:
        """`run` may be a run folder path (its project is then implied) or a name inside `project`."""
        if not (project or "").strip() and (run or "").strip() and Path(run).is_absolute():
            project = str(Path(run).resolve().parent.parent)
        if not (project or "").strip():
            raise StudioError(
                "No project is open: open one in the Data tab (API: pass project or a run folder)."
            )
        return checked_run_dir(self.context, project, run)

    def uploaded(self, path: str) -> str:
        """A file path an API caller passed: a Gradio upload, or a server path the caller may name."""
        if inside(path, media.media_root().parent):
            return str(path)
        return str(self.context.server_path(path))

    def predict(
        self, project: str, run: str, paths: list[str], tta: Any, top_k: Any
    ) -> list[dict[str, Any]]:
        tta = tta_mode(tta)
        if not paths:
            raise StudioError("Upload an image (or take one with the webcam) first.")
        run_dir = self.run_dir(project, run)
        # Several images: an unreadable one is listed with its reason and the others are still predicted.
        results = service_of(self.context).predict(run_dir, paths, tta, _top_k(top_k), timeout=300,
                                                   skip_unreadable=len(paths) > 1)
        if all(r.get("error") for r in results):
            raise StudioError(f"None of the images could be read ({Path(results[0]['path']).name}: "
                              f"{results[0]['error']}).")
        return results

    def add_to_project(self, project: str, path: str, label: str) -> str:
        label = (label or "").strip()
        if not label:
            raise StudioError("Choose or type the class this image belongs to.")
        store = self.context.open_project(project)
        image_id, is_new = store.add_image_file(path, label=label, source="predict tab")
        if not is_new:  # already in the project: an explicit correction wins over its old label
            store.set_label(image_id, label)
        store.assign_splits()
        return f"Image #{image_id} {'added to' if is_new else 'already in'} the project, labeled '{label}'."

    def predict_batch(self, project: str, run: str, folder: str, zip_path: str | None, tta: Any):
        """Submit a folder (or an extracted zip) prediction job; returns (job, csv path)."""
        from studio.data.archive import extract_zip
        from studio.sharing.limits import check_zip_file

        tta = tta_mode(tta)
        if not zip_path:  # the folder is checked first: a refused path learns nothing about runs
            if not str(folder or "").strip():
                raise StudioError("Type the full path of a folder on this machine, or upload a zip.")
            source = self.context.server_path(folder)
            if not source.is_dir():
                raise StudioError(
                    f"{folder} is not a folder on this machine; type its full path or upload a zip."
                )
        run_dir = self.run_dir(project, run)
        if zip_path:
            archive = Path(self.uploaded(zip_path))
            check_zip_file(archive)  # refused now, from its directory; unpacked only when the job runs
        out = media.output_folder("predictions")
        if zip_path:
            source = out / "images"
            name = Path(zip_path).stem
        else:
            name = source.name or "folder"
        csv_path = out / f"predictions-{name}.csv"
        service = service_of(self.context)

        def job_fn(ctx: Any) -> dict[str, Any]:
            try:
                if zip_path:  # here, not at submit: a job cancelled while it waits leaves nothing unpacked
                    source.mkdir()
                    extract_zip(archive, source)
                with service.predictors.use(run_dir, ctx.device) as predictor:
                    results = predictor.predict_folder(source, csv_path, tta=tta)
            finally:
                if zip_path:  # the unpacked images go as soon as the job ends (the CSV stays for download)
                    shutil.rmtree(source, ignore_errors=True)
            return {"images": len(results), "unreadable": sum(bool(r.get("error")) for r in results),
                    "csv": str(csv_path)}

        job = service.submit(
            "predict",
            job_fn,
            config={"run_dir": str(run_dir), "folder": str(source), "tta": tta},
            project=str(self.context.open_project(project).root),
        )
        return job, csv_path

    def register_api(self) -> None:
        @requires("viewer")
        @api_errors
        def predict(image: gr.FileData, tta: bool | None = None, top_k: int = 5, run: str = "",
                    project: str = "") -> dict:
            """Classify one image file. run: a run folder (or its name inside project); empty: the project's
            newest run with a model. tta: None (the run's own choice), true or false. Returns what
            `studio predict --json` gives for the image, less its "path": {"top": [{"class", "probability"},
            ...] most likely first, "unknown" ("not sure"), "unlike_training" (why: unlike the training
            images)}. (gradio_client takes any dict with a "path" for a file to download.)"""
            path = image.get("path") if isinstance(image, dict) else getattr(image, "path", None)
            if not path:
                raise StudioError("Pass the image as a file (gradio_client.handle_file(path)).")
            # Gradio checks a file it was told is one (FileData meta: an upload of this app); a bare
            # {"path": ...} is only a name, held to the caller's folders like any server path (inside
            # Gradio's folder it could name another user's upload).
            meta = image.get("meta") if isinstance(image, dict) else getattr(image, "meta", None)
            checked = isinstance(meta, dict) and meta.get("_type") == "gradio.FileData"
            source = self.uploaded(path) if checked else str(self.context.server_path(path))
            found = plain_prediction(self.predict(project, run, [source], tta, top_k)[0])
            return {key: value for key, value in found.items() if key != "path"}

        gr.api(predict, api_name="predict")


def build(context: AppContext, binding: ProjectBinding) -> None:
    api = PredictApi(context)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            run = gr.Dropdown(
                choices=[("Newest run with a model", LATEST)], value=LATEST, label="Model (run)"
            )
            # image_mode=None: Gradio hands the upload over undecoded (with "RGB" it would decode it first,
            # before the studio's size check in pixels could refuse a small file that unpacks huge)
            image = gr.Image(sources=["upload", "webcam", "clipboard"], type="filepath", image_mode=None,
                             label="Image", height=300)
            files = gr.File(file_count="multiple", file_types=["image"], label="Or several images at once",
                            height=160)
            with gr.Row():
                tta = gr.Radio(
                    TTA_CHOICES, value="run", label="Test-time augmentation",
                    info="Average the crop and the whole frame, each also mirrored: 4x the work, often a "
                    "little more accurate. Auto runs choose it on their training images.",
                )
                top_k = gr.Slider(1, MAX_TOP_K, value=5, step=1, label="Top-k classes")
            predict = gr.Button("Predict", variant="primary")
        with gr.Column(scale=3):
            answer = gr.Markdown()
            bars = gr.Plot(charts.topk_bars([]), show_label=False)
            table = gr.Dataframe(
                pd.DataFrame(columns=RESULT_COLUMNS),
                interactive=False,
                max_height=220,
                wrap=True,
                column_widths=["28%", "52%", "20%"],
                label="Predictions (click a row to see its bars)",
                visible=False,
            )
            with gr.Row(equal_height=True):
                cam_button = gr.Button("Show Grad-CAM", scale=0, min_width=160)
                correct_class = gr.Dropdown(
                    choices=[], allow_custom_value=True, label="Correct class", scale=2
                )
                add = gr.Button("Add to the project as this class", scale=1)
            cam = gr.Image(label="Grad-CAM: where the model looked for its top class", interactive=False,
                           height=300)
    gr.Markdown("### Predict a folder or a zip to CSV")
    with gr.Row(equal_height=True):
        folder = gr.Textbox(label="Folder on this machine", placeholder="/path/to/images", scale=3)
        zip_file = gr.File(file_types=[".zip"], label="Or upload a zip", scale=2)
        batch = gr.Button("Predict all to CSV", scale=1)
    batch_status = gr.Markdown()
    csv_file = gr.File(label="Predictions CSV", interactive=False, visible=False, height=80)

    results = gr.State([])  # [{"path", "top"}] of the last prediction, for row clicks
    current = gr.State("")  # the image shown in the bars: used by Grad-CAM and "add to project"

    @requires("viewer")
    @user_errors
    def on_project(root: str) -> dict:
        choices = [("Newest run with a model", LATEST)] + (run_choices(context, root) if root else [])
        classes = context.open_project(root).classes() if root else []
        most = max(1, min(MAX_TOP_K, len(classes))) if classes else MAX_TOP_K  # no more bars than classes
        return {run: gr.Dropdown(choices=choices, value=LATEST),
                correct_class: gr.Dropdown(choices=classes, value=None),
                top_k: gr.Slider(maximum=most, value=min(5, most))}

    @requires("viewer")
    @user_errors
    def on_classes(root: str):
        return gr.Dropdown(choices=context.open_project(root).classes() if root else [])

    @requires("viewer")
    @user_errors
    def on_predict(
        root: str, run_dir: str, single: str | None, many: list[str] | None, use_tta: str, k: float
    ) -> dict:
        paths = [str(p) for p in (many or [])] or ([single] if single else [])
        found = api.predict(root, run_dir, paths, use_tta, k)
        found = [plain_prediction(r, p) for p, r in zip(paths, found)]
        first = next(r for r in found if not r.get("error"))
        name = Path(first["path"]).name if len(found) > 1 else None
        rows = prediction_rows(found, [Path(p).name for p in paths])
        how = {"run_dir": api.run_dir(root, run_dir), "tta": tta_mode(use_tta)}
        return {answer: answer_markdown(first, name=name, **how),
                bars: charts.topk_bars(first["top"], title=bars_title(first, name)),
                table: gr.Dataframe(rows, visible=len(found) > 1), results: found, current: first["path"],
                correct_class: gr.Dropdown(value=suggested_class(first)), cam: None}

    @requires("viewer")
    @user_errors
    def on_row(found: list[dict[str, Any]], event: gr.SelectData) -> dict:
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        if not found or not 0 <= row < len(found):
            return gr.skip()
        item = found[row]
        if item.get("error"):
            gr.Warning(f"{Path(item['path']).name} could not be read: {item['error']}")
            return gr.skip()
        name = Path(item["path"]).name
        return {answer: answer_markdown(item, name=name),
                bars: charts.topk_bars(item["top"], title=bars_title(item, name)),
                current: item["path"], correct_class: gr.Dropdown(value=suggested_class(item)), cam: None}

    @requires("viewer")
    @user_errors
    def on_cam(root: str, run_dir: str, path: str, found: list[dict[str, Any]]):
        if not path:
            raise gr.Error("Predict an image first.")
        top = next((r["top"][0]["class"] for r in found if r["path"] == path), None)
        return grad_cams(context, api.run_dir(root, run_dir), path, [top])[0]

    @requires("owner")
    @user_errors
    def on_add(root: str, path: str, label: str, version: float) -> dict:
        if not path:
            raise gr.Error("Predict an image first, then add it with its right class.")
        gr.Info(api.add_to_project(root, path, label))
        return {binding.version: (version or 0) + 1,
                correct_class: gr.Dropdown(choices=context.open_project(root).classes())}

    @requires("viewer")
    @user_errors
    def on_batch(root: str, run_dir: str, path: str, archive: str | None, use_tta: str):
        job, csv_path = api.predict_batch(root, run_dir, path, archive, use_tta)
        try:
            for line in wait_for(job, "Predicting"):
                yield {batch_status: line, csv_file: gr.File(visible=False)}
        finally:
            if not job.is_finished:  # the page went away or the wait broke off: nobody will read the CSV
                service_of(context).cancel(job.id)
        count, unreadable = job.result["images"], job.result.get("unreadable", 0)
        skipped = (f" {unreadable} could not be read: the CSV's `error` column says why."
                   if unreadable else "")
        message = (f"Predicted {count - unreadable} of {count} images: **{html.escape(csv_path.name)}** is "
                   f"ready to download.{skipped}")
        yield {batch_status: message, csv_file: gr.File(value=str(csv_path), visible=True)}

    binding.root.change(on_project, binding.root, [run, correct_class, top_k], api_visibility="private")
    binding.version.change(on_classes, binding.root, correct_class, api_visibility="private")
    predict.click(on_predict, [binding.root, run, image, files, tta, top_k],
                  [answer, bars, table, results, current, correct_class, cam], api_visibility="private")
    table.select(on_row, results, [answer, bars, current, correct_class, cam], api_visibility="private")
    cam_button.click(on_cam, [binding.root, run, current, results], cam, api_visibility="private")
    add.click(
        on_add,
        [binding.root, current, correct_class, binding.version],
        [binding.version, correct_class],
        api_visibility="private",
    )
    batch.click(on_batch, [binding.root, run, folder, zip_file, tta], [batch_status, csv_file],
                api_visibility="private")
    api.register_api()

