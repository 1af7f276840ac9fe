"""Data tab: open or create a project, import images, see class balance, edit classes and splits."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from studio.data.importers import import_source
from studio.data.layouts import LAYOUTS
from studio.data.store import Project
from studio.errors import StudioError
from studio.sharing.caller import caller_name
from studio.ui.access import requires
from studio.ui.context import AppContext, ProjectBinding
from studio.ui.demo_data import fill_demo_project, free_demo_name
from studio.ui.feedback import api_errors, user_errors
from studio.ui.importing import REPORT_COLUMNS, import_uploads, merge_reports, report_summary, report_table

SPLIT_COLORS = {"train": "#4f46e5", "val": "#0ea5e9", "test": "#f59e0b", "unsplit": "#94a3b8"}
UPLOAD_TYPES = ["image", ".zip", ".csv", ".tif", ".tiff", ".bmp", ".webp"]

HELP = (
    "Open a project or create one, then bring images in: upload files (images, a .zip, or a .csv of "
    "`path,label` rows with its images), or give a folder on this machine (one subfolder per class, "
    "`train/`/`val/` folders, or loose images to label later). Duplicates are skipped; unreadable files "
    "are listed with the reason."
)


def class_chart(info: dict) -> go.Figure:
    """Stacked bars: images per class, one color per split."""
    classes = info["classes"]
    figure = go.Figure()
    for split, color in SPLIT_COLORS.items():
        counts = [info["counts"][name][split] for name in classes]
        if any(counts):
            figure.add_bar(name=split, x=classes, y=counts, marker_color=color)
    title = f"Images per class and split ({info['unlabeled']} unlabeled)" if classes else "No classes yet"
    figure.update_layout(
        barmode="stack", title=title, height=320, margin={"l": 40, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
        plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)",
    )
    figure.update_yaxes(title="images", gridcolor="rgba(148,163,184,0.3)")
    return figure


def overview_text(info: dict) -> str:
    splits = info["splits"]
    return (
        f"**{info['images']}** images: **{info['labeled']}** labeled, **{info['unlabeled']}** unlabeled, "
        f"in **{len(info['classes'])}** classes. Splits: {splits['train']} train, {splits['val']} val, "
        f"{splits['test']} test, {splits['unsplit']} labeled but not split yet"
        + (" (training splits them: Split images does it now)." if splits["unsplit"] else ".")
    )


def _project_choices(context: AppContext) -> list[tuple[str, str]]:
    return [
        (path.name if path.parent == context.workspace else str(path), str(path))
        for path in context.list_projects()
    ]


def build(context: AppContext, binding: ProjectBinding) -> None:
    gr.Markdown(HELP, elem_classes="help-text")
    with gr.Row(elem_classes="align-end", equal_height=False):
        picker = gr.Dropdown(label="Open a project", choices=_project_choices(context), value=None, scale=3,
                             info=f"Projects in {context.workspace}")
        new_name = gr.Textbox(label="New project name", placeholder="e.g. leaf-disease", scale=2,
                              info="Creates an empty project in the workspace")
        with gr.Column(scale=1, min_width=220, variant="compact"):
            create = gr.Button("Create project", variant="primary", size="md")
            demo = gr.Button("Create demo project (digits)", size="md")
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Tabs():
                with gr.Tab("Upload files"):
                    uploads = gr.File(label="Images, a .zip or a .csv with its images", file_count="multiple",
                                      file_types=UPLOAD_TYPES, height=170)
                    upload_label = gr.Textbox(label="Label for uploaded images (optional)",
                                              placeholder="leave empty to label them later")
                    import_upload = gr.Button("Import uploaded files", variant="primary")
                with gr.Tab("Folder on this machine"):
                    folder = gr.Textbox(label="Folder, .zip or .csv path", placeholder="/data/photos")
                    layout = gr.Dropdown(
                        label="Layout",
                        choices=["auto", *LAYOUTS],
                        value="auto",
                        info="auto detects class folders, train/val folders, a CSV or loose images",
                    )
                    import_folder = gr.Button("Import folder", variant="primary")
            summary = gr.Markdown("")
            report = gr.Dataframe(value=pd.DataFrame(columns=REPORT_COLUMNS), label="Import report",
                                  interactive=False, wrap=True, max_height=240,
                                  column_widths=["18%", "37%", "45%"])  # else "file" shrank to a letter
        with gr.Column(scale=4):
            overview = gr.Markdown("Open or create a project to start.")
            chart = gr.Plot(label="Class balance", show_label=False)
    with gr.Row():
        with gr.Column():
            gr.Markdown(
                "### Classes\nSelect classes, type a name, then act. Deleting a class leaves its images "
                "unlabeled (undo in the Label tab brings the labels back).",
                elem_classes="help-text",
            )
            selected = gr.Dropdown(label="Selected classes", multiselect=True, choices=[])
            class_name = gr.Textbox(label="Name", placeholder="new class name, new name, or merge target")
            with gr.Row():
                add = gr.Button("Add", size="sm", min_width=80)
                rename = gr.Button("Rename", size="sm", min_width=80)
                merge = gr.Button("Merge into", size="sm", min_width=80)
                delete = gr.Button("Delete", size="sm", variant="stop", min_width=80)
        with gr.Column():
            gr.Markdown("### Splits\nLabeled images without a split get a stratified train/val split. "
                        "Test images are never moved.", elem_classes="help-text")
            val_fraction = gr.Slider(0.0, 0.5, value=0.2, step=0.05, label="Validation fraction")
            seed = gr.Number(value=0, precision=0, label="Seed")
            reshuffle = gr.Checkbox(label="Also re-split images already in train/val", value=False)
            split = gr.Button("Split images")

    def bump(version: float) -> float:
        return (version or 0) + 1

    @requires("viewer")
    @user_errors
    def refresh(root: str) -> dict:
        if not root:
            return {overview: "Open or create a project to start.", chart: None,
                    selected: gr.update(choices=[], value=[]),
                    picker: gr.update(choices=_project_choices(context), value=None)}
        try:
            info = context.open_project(root).info()
        except StudioError as error:
            gr.Warning(str(error))
            return {overview: f"Cannot open the project: {error}", chart: None,
                    selected: gr.update(choices=[], value=[])}
        return {overview: overview_text(info), chart: class_chart(info),
                selected: gr.update(choices=info["classes"], value=[]),
                picker: gr.update(choices=_project_choices(context), value=str(Path(root).resolve()))}

    refreshed = [overview, chart, selected, picker]
    binding.root.change(refresh, binding.root, refreshed, api_visibility="private")
    binding.version.change(refresh, binding.root, refreshed, api_visibility="private")
    if binding.tab is not None:  # labels change in the Label tab without a version bump: refresh on return
        binding.tab.change(lambda tab, root: refresh(root) if tab == "data" else gr.skip(),
                           [binding.tab, binding.root], refreshed, api_visibility="private")

    @requires("viewer")
    @user_errors
    def open_picked(path: str | None, root: str) -> str:
        if not path:
            return root
        context.open_project(path)
        return path

    picker.input(open_picked, [picker, binding.root], binding.root, api_visibility="private")

    @requires("owner")
    @user_errors
    def create_named_project(name: str) -> dict:
        project = context.create_project(name)
        gr.Info(f"Created project {project.root.name}. Now import some images.")
        return {binding.root: str(project.root), new_name: ""}

    create.click(create_named_project, new_name, [binding.root, new_name], api_visibility="private")

    @requires("owner")
    @user_errors
    def create_demo(progress=gr.Progress()) -> dict:
        progress(0.1, desc="Writing demo digits")
        project = context.create_project(free_demo_name(context.workspace))
        result = merge_reports(fill_demo_project(project))
        gr.Info("Demo project ready: 4 digit classes x 30 labeled images, 20 unlabeled. Try Label or Train.")
        return {binding.root: str(project.root), summary: report_summary(result),
                report: report_table(result)}

    demo.click(create_demo, None, [binding.root, summary, report], api_visibility="private")

    def _progress(progress: gr.Progress):
        return lambda done, total: progress((done, total), desc="Importing", unit="images")

    @requires("owner")
    @user_errors
    def import_from_uploads(root, files, label, fraction, seed_value, version, progress=gr.Progress()):
        project = context.open_project(root)
        result = import_uploads(project, files or [], label=label or None, val_fraction=fraction,
                                seed=int(seed_value or 0), progress=_progress(progress))
        return {summary: report_summary(result), report: report_table(result), binding.version: bump(version),
                uploads: None}

    import_upload.click(
        import_from_uploads, [binding.root, uploads, upload_label, val_fraction, seed, binding.version],
        [summary, report, binding.version, uploads], api_visibility="private",
    )

    @requires("owner")
    @user_errors
    def import_from_folder(root, path, layout_name, fraction, seed_value, version, progress=gr.Progress()):
        if not (path or "").strip():
            raise StudioError("type the path of a folder, .zip or .csv on this machine first")
        project = context.open_project(root)
        source = context.server_path(path)
        result = merge_reports([import_source(project, source, layout_name, val_fraction=fraction,
                                              seed=int(seed_value or 0), progress=_progress(progress),
                                              confine_csv=context.paths.remote)])
        return {summary: report_summary(result), report: report_table(result), binding.version: bump(version)}

    import_folder.click(
        import_from_folder, [binding.root, folder, layout, val_fraction, seed, binding.version],
        [summary, report, binding.version], api_visibility="private",
    )

    @requires("owner")
    @api_errors
    def import_path(project: str, folder: str, layout: str = "auto") -> dict:
        """Import a folder, .zip or .csv on the server's disk into a project; returns the import report."""
        opened = context.open_project(project)
        return merge_reports([import_source(opened, context.server_path(folder), layout,
                                            confine_csv=context.paths.remote)])

    gr.api(import_path, api_name="import_path")

    @requires("owner")
    @api_errors
    def create_project_api(name: str, demo: bool = False) -> str:
        """Create project `name` in the workspace (filled with the demo digits if `demo`); returns its
        path."""
        project = context.create_project(name)
        if demo:
            fill_demo_project(project)
        return str(project.root)

    gr.api(create_project_api, api_name="create_project")

    _class_actions(context, binding, selected, class_name, add, rename, merge, delete)

    @requires("owner")
    @user_errors
    def split_images(root, fraction, seed_value, also_existing, version):
        project = context.open_project(root)
        warnings = project.assign_splits(val_fraction=fraction, seed=int(seed_value or 0),
                                         resplit=bool(also_existing))
        for text in warnings:
            gr.Warning(text)
        gr.Info("Splits updated.")
        return bump(version)

    split.click(split_images, [binding.root, val_fraction, seed, reshuffle, binding.version], binding.version,
                api_visibility="private")


def _class_actions(
    context: AppContext, binding: ProjectBinding, selected, name, add, rename, merge, delete
) -> None:
    """Wire the class buttons: each edits the store, then bumps the data version so every tab refreshes."""

    def run(action):
        @requires("owner")
        @user_errors
        def handler(root: str, chosen: list[str], text: str, version: float) -> dict:
            message = action(context.open_project(root), list(chosen or []), (text or "").strip())
            gr.Info(message)
            return {binding.version: (version or 0) + 1, name: ""}

        return handler

    def do_add(project: Project, chosen: list[str], text: str) -> str:
        if not text:
            raise StudioError("type the new class name in the Name box")
        return f"Added class {project.add_class(text)!r}."

    def do_rename(project: Project, chosen: list[str], text: str) -> str:
        if len(chosen) != 1 or not text:
            raise StudioError("select exactly one class and type its new name to rename it")
        project.rename_class(chosen[0], text)
        return f"Renamed {chosen[0]!r} to {text!r}."

    def do_merge(project: Project, chosen: list[str], text: str) -> str:
        if not chosen or not text:
            raise StudioError("select the classes to merge and type the class to merge them into")
        moved = project.merge_classes(chosen, text, by=caller_name())
        return f"Merged {', '.join(chosen)} into {text!r} ({moved} images relabeled)."

    def do_delete(project: Project, chosen: list[str], text: str) -> str:
        if not chosen:
            raise StudioError("select the classes to delete")
        freed = sum(project.delete_class(c, by=caller_name()) for c in chosen)  # the owner's Undo
        return f"Deleted {', '.join(chosen)}; {freed} images are unlabeled now."

    for button, action in ((add, do_add), (rename, do_rename), (merge, do_merge), (delete, do_delete)):
        button.click(run(action), [binding.root, selected, name, binding.version], [binding.version, name],
                     api_visibility="private")
