"""Evaluate tab: a run's accuracy with and without TTA, per-class precision/recall/F1, a confusion
matrix whose cells list their images, the most confident mistakes with one-click label fixes, Grad-CAM
heatmaps, and the chosen run's model exported as a zip to download. Evaluation and Grad-CAM run as
interactive service jobs (they may run beside a training job), the export as a queued one; the callbacks
only submit them, wait, and draw.

Also holds the run helpers the Predict tab shares (`run_choices`, `checked_run_dir`, `wait_for`).
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from studio.app.evaluation import evaluation_job
from studio.app.exporting import FORMATS as EXPORT_FORMATS
from studio.app.exporting import export_job, export_summary
from studio.errors import StudioError
from studio.service.runs import run_settings
from studio.sharing.caller import label_write_args
from studio.sharing.quotas import outcome_or_cancel
from studio.ui import charts, media
from studio.ui.access import requires
from studio.ui.context import AppContext, ProjectBinding
from studio.ui.feedback import user_errors

CLASS_COLUMNS = ["class", "precision", "recall", "F1", "images"]
VIEWS = [("Without TTA", "plain"), ("With TTA (mirrored and whole-frame views averaged)", "tta")]
IMAGE_SETS = [("The run's own images (its snapshot)", "snapshot"), ("Today's validation split", "current")]
# Thumbnail galleries: six per row, captions ("true→predicted 87%") wrap when class names are long (app CSS).
THUMBNAILS = {
    "columns": 6,
    "fit_columns": False,
    "height": 240,
    "allow_preview": False,
    "object_fit": "contain",
    "elem_classes": ["wrap-captions"],
}


# ---- helpers shared with the Predict tab ---------------------------------------------------------------

def service_of(context: AppContext) -> Any:
    if context.service is None:
        raise StudioError("The trainer service is not running; restart the studio.")
    return context.service


def run_choices(context: AppContext, root: str) -> list[tuple[str, str]]:
    """(label, run folder) of the project's runs that have a model, newest first."""
    if not root:
        return []
    project = context.open_project(root)
    choices = []
    for run in service_of(context).list_runs(project.root):
        if not run.get("has_model"):
            continue
        settings, backbone = run_settings(run)
        accuracy = run.get("val_accuracy")  # the reported number (service.runs), not the curve's best
        shown = None if accuracy is None else f"val {accuracy:.1%}"
        detail = " · ".join(str(x) for x in (settings.get("strategy"), backbone, shown, run["status"]) if x)
        choices.append((f"{run['name']} ({detail})", run["run_dir"]))
    return choices


def checked_run_dir(context: AppContext, root: str, run: str | None) -> Path:
    """The run folder to use: `run` (a folder name or path inside the project's runs/) or the newest run
    with a model. Only runs of a project this app may open are accepted (a checkpoint is code to load)."""
    project = context.open_project(root)
    runs_dir = project.runs_dir.resolve()
    if not (run or "").strip():
        choices = run_choices(context, root)
        if not choices:
            raise StudioError("This project has no trained model yet: train one in the Train tab first.")
        return Path(choices[0][1])
    path = Path(run.strip())
    path = (path if path.is_absolute() else runs_dir / path).resolve()
    if path.parent != runs_dir:
        raise StudioError(f"{run} is not a run of this project; pick one from {runs_dir}.")
    if not (path / "model.pt").is_file():
        raise StudioError(f"Run {path.name} has no model (it failed or was cancelled before its first "
                          "checkpoint); pick another run.")
    return path


def wait_for(job: Any, what: str) -> Iterator[str]:
    """Yield a status line every half second until the job ends; then StudioError if it did not succeed."""
    while not job.wait(0.5):
        state = job.state.value
        yield (
            f"{what}: "
            f"{'waiting for the device (a training job is using it)' if state == 'queued' else state}…"
        )
    job.outcome(0)


# ---- drawing ---------------------------------------------------------------------------------------------

def summary_markdown(data: dict[str, Any]) -> str:
    report = data["report"]
    tta = report.get("tta", {})
    which = (
        "today's validation split" if report.get("images") == "current-split" else "its own validation images"
    )
    parts = [(f"**Run {html.escape(Path(data['run_dir']).name)}** on {report['n']} images ({which}): "
              f"accuracy **{report['accuracy']:.1%}** without TTA")]
    if tta:
        parts.append(f", **{tta['accuracy']:.1%}** with TTA")
    if "tta_default" in report:  # which of the two the run's predictions give (its own choice)
        parts.append(f" (this run predicts {'with' if report['tta_default'] else 'without'} TTA)")
    parts.append(f" · macro F1 {report['macro_f1']:.3f} (precision and recall of each class, averaged over "
                 "the classes: 1 is perfect)")
    threshold, novelty = report.get("unknown_threshold"), report.get("novelty")
    if threshold or novelty:  # the share `studio predict` and the Predict tab flag "not sure"
        flagged = round(report["unknown_rate"] * report["n"])
        if not threshold:  # a manual fine-tune, an SVM or k-NN probe: the novelty test alone
            why = "unlike the training images; the run has no confidence threshold"
        else:
            why = f"below the run's {threshold:.2f} confidence" + (
                f", or unlike the training images: {round(novelty['unlike_rate'] * report['n'])} of them"
                if novelty else "")
        parts.append(f" · {flagged} of {report['n']} \"not sure\" ({why})")
    if report.get("unreadable"):
        parts.append(f"  \n⚠ {len(report['unreadable'])} image(s) can no longer be read and were left out.")
    for note in report.get("notes", []):
        parts.append(f"  \n⚠ {html.escape(note)}.")
    return "".join(parts)


def reliability_of(data: dict[str, Any] | None) -> tuple[dict | None, dict | None]:
    """(reliability bins, calibration) of an evaluation, or Nones before one has run."""
    report = (data or {}).get("report") or {}
    return report.get("reliability"), report.get("calibration")


def class_frame(report: dict[str, Any]) -> pd.DataFrame:
    rows = [[name, round(m["precision"], 3), round(m["recall"], 3), round(m["f1"], 3), m["support"]]
            for name, m in report["per_class"].items()]
    return pd.DataFrame(rows, columns=CLASS_COLUMNS)


def cell_choices(report: dict[str, Any]) -> list[tuple[str, str]]:
    """Dropdown entries for non-empty confusion cells, mistakes first (largest first)."""
    names, matrix = report["classes"], report["confusion_matrix"]
    cells = [(count, t, p) for t, row in enumerate(matrix) for p, count in enumerate(row) if count]
    cells.sort(key=lambda c: (c[1] == c[2], -c[0]))
    return [(f"{'✓' if t == p else '✗'} true {names[t]} → predicted {names[p]} ({count})", f"{t}|{p}")
            for count, t, p in cells]


def gallery_items(root: str, items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    project_root = Path(root)
    out = []
    for item in items:
        try:
            thumb = media.thumbnail(project_root, item["path"])
        except (StudioError, OSError):
            continue
        out.append((thumb, f"{item['label']}→{item['predicted']} {item['probability']:.0%}"))
    return out


def view_report(data: dict[str, Any], view: str) -> dict[str, Any]:
    return data["report"].get("tta", data["report"]) if view == "tta" else data["report"]


def top_loss_items(data: dict[str, Any], view: str) -> list[dict[str, Any]]:
    fixed = set(data.get("fixed", []))  # labels fixed since this evaluation: no longer mistakes to show
    return [{"image_id": t["image_id"], "path": t["path"], "label": t["label"], "predicted": t["predicted"],
             "probability": t["probability"]} for t in view_report(data, view)["top_losses"]
            if t.get("path") and t["image_id"] not in fixed]


def cell_items(data: dict[str, Any], view: str, cell: str | None) -> list[dict[str, Any]]:
    if not cell:
        return []
    names = data["report"]["classes"]
    true_name, predicted_name = (names[int(i)] for i in cell.split("|"))
    return [{"image_id": i["image_id"], "path": i["path"], "label": i["label"], "predicted": i[view],
             "probability": i[f"{view}_p"]}
            for i in data["images"] if i["label"] == true_name and i[view] == predicted_name]


def with_label(data: dict[str, Any] | None, image_id: int, label: str) -> dict[str, Any] | None:
    """The evaluation's images with one label fixed: its confusion cell and mistake lists follow the new
    label (the metrics stay the evaluation's until it runs again)."""
    if not data:
        return data
    images = [{**i, "label": label} if i["image_id"] == image_id else i for i in data["images"]]
    return {**data, "images": images, "fixed": [*data.get("fixed", []), image_id]}


def losses_label(losses: list[dict[str, Any]] | None) -> str:
    """The mistakes gallery's title; an empty gallery after an evaluation says there was nothing to show."""
    if losses is not None and not losses:
        return "Most confident mistakes: none, every image here was predicted right"
    return "Most confident mistakes (click one to select it)"


def selected_markdown(item: dict[str, Any] | None) -> str:
    if not item:
        return "Click an image in a gallery to select it, then fix its label or look at its Grad-CAM."
    verdict = "correct" if item["label"] == item["predicted"] else "a mistake"
    return (f"Selected image #{item['image_id']}: labeled **{html.escape(item['label'])}**, predicted "
            f"**{html.escape(item['predicted'])}** ({item['probability']:.0%}), {verdict}.")


# ---- the tab ---------------------------------------------------------------------------------------------

def build(context: AppContext, binding: ProjectBinding) -> None:
    gr.Markdown("Check a trained model on the project's validation images. Evaluation runs in the background "
                "and takes a few seconds.", elem_classes="help-text")
    with gr.Row(equal_height=True):
        run = gr.Dropdown(choices=[], label="Run", scale=5)
        refresh = gr.Button("Refresh runs", scale=0, min_width=120)
        start = gr.Button("Evaluate", variant="primary", scale=1)
    images_choice = gr.Radio(
        IMAGE_SETS,
        value="snapshot",
        label="Validation images",
        info="The run's own images give the same numbers as when it was trained; today's "
        "split includes later relabels and exclusions (saved separately).",
    )
    summary = gr.Markdown("Pick a run and press **Evaluate**.")
    view = gr.Radio(VIEWS, value="plain", label="Results shown")
    with gr.Row():
        with gr.Column(scale=3):
            confusion = gr.Plot(charts.confusion_heatmap([], []), label="Confusion matrix", show_label=False)
        with gr.Column(scale=2):
            per_class = gr.Dataframe(pd.DataFrame(columns=CLASS_COLUMNS), interactive=False,
                                     label="Per class (validation)")
            cell = gr.Dropdown(choices=[], label="Show the images of a confusion cell (true → predicted)")
    cell_gallery = gr.Gallery(label="Images in the chosen cell", visible=False, **THUMBNAILS)
    reliability = gr.Plot(charts.reliability_diagram(None), label="Reliability diagram", show_label=False)
    gr.Markdown("### Top losses\nThe most confident mistakes: often a wrong label rather than a wrong model.")
    losses_gallery = gr.Gallery(label=losses_label(None), **THUMBNAILS)
    with gr.Row(equal_height=True):
        selected_text = gr.Markdown(selected_markdown(None))
        fix = gr.Button("Fix label: use the predicted class", interactive=False, scale=0, min_width=240)
        cam_button = gr.Button("Show Grad-CAM", interactive=False, scale=0, min_width=160)
    with gr.Row():
        cam_predicted = gr.Image(
            label="Grad-CAM: evidence for the predicted class", interactive=False, height=300
        )
        cam_true = gr.Image(label="Grad-CAM: evidence for the labeled class", interactive=False, height=300)

    gr.Markdown("### Export the model\nA folder to use the model outside the studio: the model file, "
                "`predict.py` (the studio's own prediction, \"not sure\" included, with numpy, Pillow and "
                "onnxruntime or torch), and a model card. Before you get it, it is checked to predict like "
                "the studio on the run's validation images.", elem_classes="help-text")
    with gr.Row(equal_height=True):
        export_format = gr.Radio([(label, fmt) for fmt, label in EXPORT_FORMATS.items()], value="onnx",
                                 label="Format", scale=3)
        export_button = gr.Button("Export the chosen run", scale=1)
    export_status = gr.Markdown()
    export_file = gr.File(label="Exported model (zip)", interactive=False, visible=False, height=80)

    data_state = gr.State(None)  # the last evaluation (report + per-image predictions)
    losses_state = gr.State([])  # items shown in each gallery, to map a click to an image
    cell_state = gr.State([])
    selected = gr.State(None)

    @requires("viewer")
    @user_errors
    def on_project(root: str):
        return run_dropdown(root)

    def run_dropdown(root: str, keep: str | None = None) -> gr.Dropdown:
        """The project's runs with a model; `keep` stays chosen while it is one of them, else the newest."""
        choices = run_choices(context, root) if root else []
        values = [value for _, value in choices]
        return gr.Dropdown(choices=choices, value=keep if keep in values else values[0] if values else None)

    @requires("viewer")
    @user_errors
    def on_tab_opened(root: str, tab: str, current: str | None):
        """Coming back to the tab lists the runs finished meanwhile; the chosen run stays chosen."""
        return run_dropdown(root, keep=current) if tab == "evaluate" and root else gr.skip()

    def drawn(root: str, data: dict[str, Any] | None, view_name: str) -> dict:
        """The evaluation's panels (`draw_outputs`) in one view; empty before an evaluation has run."""
        if not data:
            return {confusion: charts.confusion_heatmap([], []),
                    per_class: pd.DataFrame(columns=CLASS_COLUMNS), cell: gr.Dropdown(choices=[], value=None),
                    losses_gallery: [], losses_state: [], cell_gallery: [], cell_state: []}
        report = view_report(data, view_name)
        losses = top_loss_items(data, view_name)
        return {confusion: charts.confusion_heatmap(report["confusion_matrix"], report["classes"]),
                per_class: class_frame(report), cell: gr.Dropdown(choices=cell_choices(report), value=None),
                losses_gallery: gr.Gallery(value=gallery_items(root, losses), label=losses_label(losses)),
                losses_state: losses, cell_gallery: [], cell_state: []}

    @requires("viewer")
    @user_errors
    def draw(root: str, data: dict[str, Any] | None, view_name: str) -> dict:
        return drawn(root, data, view_name)

    draw_outputs = [confusion, per_class, cell, losses_gallery, losses_state, cell_gallery, cell_state]

    @requires("owner")
    @user_errors
    def on_evaluate(root: str, run_dir: str, view_name: str, image_set: str = "snapshot"):
        project_root = context.open_project(root).root
        path = checked_run_dir(context, root, run_dir)
        current_split = image_set == "current"
        job = service_of(context).submit(
            "evaluate", evaluation_job(service_of(context), context.open_project, project_root, path,
                                       current_split=current_split),
            config={"run_dir": str(path), "tta": True, "current_split": current_split},
            interactive=True, project=str(project_root))
        for line in wait_for(job, "Evaluating"):
            yield {summary: line}
        data = job.result
        # First the view the run predicts with (its own TTA choice); the radio switches to the other.
        shown = "tta" if data["report"].get("tta_default") else view_name
        yield {summary: summary_markdown(data), data_state: data, view: gr.Radio(value=shown),
               **drawn(root, data, shown)}

    @requires("viewer")
    @user_errors
    def on_cell(data, view_name: str, chosen: str | None, root: str) -> dict:
        items = cell_items(data, view_name, chosen) if data else []
        return {cell_gallery: gr.Gallery(value=gallery_items(root, items), visible=bool(chosen)),
                cell_state: items}

    @requires("viewer")
    @user_errors
    def on_select(items: list[dict[str, Any]], event: gr.SelectData) -> dict:
        item = items[event.index] if 0 <= event.index < len(items) else None
        wrong = bool(item) and item["label"] != item["predicted"]
        return {selected: item, selected_text: selected_markdown(item), fix: gr.Button(interactive=wrong),
                cam_button: gr.Button(interactive=bool(item))}

    @requires("labeler")
    @user_errors
    def on_fix(root: str, item: dict[str, Any] | None, version: float, losses, cells, data) -> dict:
        if not item:
            raise gr.Error("Select an image first.")
        context.open_project(root).set_label(item["image_id"], item["predicted"], **label_write_args())
        gr.Info(
            f"Image #{item['image_id']} is now labeled '{item['predicted']}'. "
            "Evaluate again to update the metrics."
        )
        losses = [i for i in losses if i["image_id"] != item["image_id"]]
        cells = [i for i in cells if i["image_id"] != item["image_id"]]
        return {binding.version: (version or 0) + 1, selected: None, selected_text: selected_markdown(None),
                fix: gr.Button(interactive=False), cam_button: gr.Button(interactive=False),
                cam_predicted: None, cam_true: None, losses_gallery: gallery_items(root, losses),
                losses_state: losses, cell_gallery: gallery_items(root, cells), cell_state: cells,
                data_state: with_label(data, item["image_id"], item["predicted"])}

    @requires("viewer")
    @user_errors
    def on_cam(root: str, run_dir: str, item: dict[str, Any] | None) -> dict:
        if not item:
            raise gr.Error("Select an image first.")
        path = checked_run_dir(context, root, run_dir)
        images = grad_cams(context, path, item["path"], [item["predicted"], item["label"]])
        return {cam_predicted: images[0], cam_true: images[1]}

    binding.root.change(on_project, binding.root, run, api_visibility="private")
    refresh.click(on_project, binding.root, run, api_visibility="private")
    if binding.tab is not None:  # a run may have finished in the Train tab since the list was made
        binding.tab.change(on_tab_opened, [binding.root, binding.tab, run], run, api_visibility="private",
                           show_progress="hidden")
    start.click(on_evaluate, [binding.root, run, view, images_choice],
                [summary, data_state, view, *draw_outputs], api_visibility="private")
    view.change(draw, [binding.root, data_state, view], draw_outputs, api_visibility="private")
    data_state.change(lambda data: charts.reliability_diagram(*reliability_of(data)), data_state, reliability,
                      api_visibility="private")
    cell.change(
        on_cell, [data_state, view, cell, binding.root], [cell_gallery, cell_state], api_visibility="private"
    )
    select_outputs = [selected, selected_text, fix, cam_button]
    losses_gallery.select(on_select, losses_state, select_outputs, api_visibility="private")
    cell_gallery.select(on_select, cell_state, select_outputs, api_visibility="private")
    fix.click(
        on_fix,
        [binding.root, selected, binding.version, losses_state, cell_state, data_state],
        [
            binding.version,
            selected,
            selected_text,
            fix,
            cam_button,
            cam_predicted,
            cam_true,
            losses_gallery,
            losses_state,
            cell_gallery,
            cell_state,
            data_state,
        ],
        api_visibility="private",
    )
    cam_button.click(
        on_cam, [binding.root, run, selected], [cam_predicted, cam_true], api_visibility="private"
    )

    @requires("owner")
    @user_errors
    def on_export(root: str, run_dir: str, fmt: str):
        path = checked_run_dir(context, root, run_dir)
        project_root = context.open_project(root).root
        job = service_of(context).submit(
            "export", export_job(path, fmt, media.output_folder("exports")),
            config={"run_dir": str(path), "format": fmt}, project=str(project_root))
        yield {export_status: "Exporting…", export_file: gr.File(value=None, visible=False)}
        for line in wait_for(job, "Exporting and checking"):
            yield {export_status: line}
        result = job.result
        yield {export_status: export_summary(result, path.name),
               export_file: gr.File(value=result["zip"], visible=True)}

    export_button.click(on_export, [binding.root, run, export_format], [export_status, export_file],
                        api_visibility="private")


def grad_cams(context: AppContext, run_dir: Path, image: Any, classes: list[str]) -> list[Any]:
    """Grad-CAM overlays of one image for each class, computed in the service (beside training if it can)."""
    service = service_of(context)

    def run(ctx: Any) -> list[Any]:
        from studio.predict.gradcam import grad_cam

        with service.predictors.use(run_dir, ctx.device) as predictor:
            return [_enlarged(grad_cam(predictor, image, name).overlay) for name in classes]

    job = service.submit(
        "gradcam", run, config={"run_dir": str(run_dir), "classes": classes}, interactive=True
    )
    return outcome_or_cancel(service, job, 120)


def _enlarged(image: Any, side: int = 320) -> Any:
    """Small model crops (e.g. 64 px) upscaled for display; the heatmap itself is unchanged."""
    from PIL import Image

    scale = side / max(image.size)
    if scale <= 1:
        return image
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
