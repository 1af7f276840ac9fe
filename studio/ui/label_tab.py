"""Label tab: one large image with class buttons and keyboard shortcuts, and a grid for labeling many.

Every click is saved at once (the store writes one transaction per change, with history for undo).
The keyboard listener lives in `app.HEAD` and clicks the buttons with the elem_ids used here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd

from studio.app.suggestions import SuggestionStore
from studio.data.store import Project
from studio.errors import StudioError
from studio.service.runs import latest_model_run
from studio.sharing.caller import caller_name, label_write_args
from studio.ui import label_queue as lq
from studio.ui.access import requires
from studio.ui.context import AppContext, ProjectBinding
from studio.ui.feedback import api_errors, user_errors
from studio.ui.media import display_image, thumbnails

MAX_KEYS = 9
PAGE_SIZE = 48
SELECT, OPEN = "Select for bulk labeling", "Open in the labeler"
HELP = (
    "Click a class (or press **1–9**) to label the image and move on; **←/→** step back and forward, "
    "**U** undoes the last change. Every change is saved at once. Once a model is trained, each image "
    "shows the model's guess, and you can label the least certain images first or review disagreements. "
    "Under a thumbnail, ✓ means the model agrees, ⚠ that it guesses another class, '?' its guess for an "
    "unlabeled image; ☑ marks the ones you selected."
)


class LabelSession:
    """The tab's reads and writes on a project: what the callbacks call (no widgets here)."""

    def __init__(self, context: AppContext, store: SuggestionStore) -> None:
        self.context = context
        self.store = store
        self._joined: tuple | None = None  # (suggestions, hashes, their columns): the last join, reused

    def table(self, project: Project, compute: bool = True) -> tuple[pd.DataFrame, str]:
        data = project.dataset()
        suggestions, status = self.store.suggestions(project, data["hash"].tolist(), compute=compute)
        return self._with_suggestions(data, suggestions), status

    def _with_suggestions(self, data: pd.DataFrame, suggestions) -> pd.DataFrame:
        """`lq.with_suggestions`, its per-row join made once while the images and the model's
        suggestions (the store hands out the same read-only mapping until they change) stay the same."""
        hashes = data["hash"].to_numpy()
        joined = self._joined
        if not (joined and suggestions and joined[0] is suggestions and np.array_equal(joined[1], hashes)):
            columns = lq.with_suggestions(data[["hash"]], suggestions)[["suggested", "confidence"]]
            joined = self._joined = (suggestions, hashes, columns)
        return data.assign(suggested=joined[2]["suggested"], confidence=joined[2]["confidence"])

    def label(self, root: str, image_id: int, label: str | None) -> dict:
        """Save one label; returns the saved state (`/set_label`'s answer)."""
        project = self.context.open_project(root)
        label = label.strip() if isinstance(label, str) and label.strip() else None
        changed = project.set_label(int(image_id), label, **label_write_args())
        data = project.dataset()  # the cached frame the write just patched: no counting query per click
        labeled = int(data["label"].notna().sum())
        return {"image_id": int(image_id), "label": label, "changed": changed, "labeled": labeled,
                "unlabeled": len(data) - labeled, "classes": project.classes()}

    def view(self, project: Project, data: pd.DataFrame, image_id: int | None) -> tuple[str | None, str]:
        """(display image path, caption Markdown) for one image."""
        if image_id is None:
            return (
                None,
                "Nothing to show here: every image in this view is done. Pick another view on the right.",
            )
        found = np.flatnonzero(data["image_id"].to_numpy() == image_id)
        if not len(found):
            raise StudioError(f"no image with id {image_id} in this project")
        row = data.iloc[int(found[0])]
        label = f"**{row['label']}**" if row["label"] else "_unlabeled_"
        text = f"**#{image_id}** · {row['original_name'] or ''} · {row['width']}×{row['height']} px · " \
               f"split: {row['split'] or 'none'}  \nLabel: {label}"
        if row["suggested"]:
            flag = " ⚠ disagrees" if row["label"] and row["label"] != row["suggested"] else ""
            text += f" · Model: **{row['suggested']}** ({row['confidence']:.0%}){flag}"
        return display_image(project.root, row["path"]), text


def _progress_text(data: pd.DataFrame, filter_value: str, order: str) -> str:
    labeled = int(data["label"].notna().sum())
    waiting = len(lq.queue_ids(data, filter_value, order))
    return f"**{labeled}** of **{len(data)}** images labeled · **{waiting}** in this view"


def _caption(row, selected: set[int]) -> str:
    """Short, so it stays on one line under a thumbnail: the label, and the model's guess only where it adds
    something (a disagreement stands out with ⚠; an unlabeled image shows the guess with a '?')."""
    mark = "☑ " if int(row.image_id) in selected else ""
    text = f"{mark}#{row.image_id} · "
    label = row.label if isinstance(row.label, str) and row.label else None  # pandas may give NaN
    if not row.suggested:
        return text + (label or "—")
    if label is None:
        return text + f"{row.suggested}? {row.confidence:.0%}"
    if label == row.suggested:
        return text + f"{label} ✓"
    return text + f"{label} ⚠ model: {row.suggested}"


def build(context: AppContext, binding: ProjectBinding) -> None:
    session = LabelSession(context, SuggestionStore(context.service))
    gr.Markdown(HELP, elem_classes="help-text")
    current = gr.State(None)  # image id in the large view
    trail = gr.State([])  # images shown before, for Previous
    selection = gr.State([])  # image ids picked in the grid
    page_ids = gr.State([])  # image ids of the grid's page, in grid order
    with gr.Column(elem_id="label-panel"):
        with gr.Row():
            with gr.Column(scale=3):
                image = gr.Image(type="filepath", interactive=False, height=420, show_label=False,
                                 elem_id="label-image", buttons=["fullscreen"])
                caption = gr.Markdown("Open a project in the Data tab.")
                with gr.Row():
                    keys = [
                        gr.Button(
                            str(k),
                            visible=False,
                            elem_id=f"label-key-{k}",
                            elem_classes="class-button",
                            variant="primary",
                        )
                        for k in range(1, MAX_KEYS + 1)
                    ]
                with gr.Row(elem_classes="align-end"):
                    other = gr.Dropdown(
                        label="Other class (or type a new one)", choices=[], allow_custom_value=True, scale=3
                    )
                    apply_other = gr.Button("Label", scale=1)
                    unlabel = gr.Button("Remove label", scale=1)
                with gr.Row():
                    prev = gr.Button("◀ Previous", elem_id="label-prev")
                    nxt = gr.Button("Next ▶", elem_id="label-next")
                    undo = gr.Button("↶ Undo", elem_id="label-undo")
            with gr.Column(scale=2):
                view = gr.Dropdown(label="Show", choices=lq.filter_choices([], False), value="unlabeled")
                order = gr.Radio(list(lq.ORDERS), value=lq.ORDER_IMPORT, label="Order")
                progress = gr.Markdown()
                model_status = gr.Markdown()
                retry = gr.Button("Refresh suggestions", size="sm")
        gr.Markdown(
            "### Browse and label many at once\nClick thumbnails to select them, pick a class, Apply.",
            elem_classes="help-text",
        )
        with gr.Row(elem_classes="align-end"):
            click_mode = gr.Radio([SELECT, OPEN], value=SELECT, label="Clicking a thumbnail will", scale=3)
            page = gr.Number(value=1, precision=0, minimum=1, label="Page", scale=1)
            page_prev = gr.Button("◀ Page", scale=1)
            page_next = gr.Button("Page ▶", scale=1)
        gallery = gr.Gallery(
            columns=8,
            height=440,
            allow_preview=False,
            object_fit="contain",
            show_label=False,
            elem_id="label-grid",
            elem_classes=["wrap-captions"],
        )
        with gr.Row(elem_classes="align-end"):
            selected_text = gr.Markdown("0 selected", elem_classes="selected-count")
            select_page = gr.Button("Select page", size="sm")
            clear = gr.Button("Clear selection", size="sm")
            bulk_class = gr.Dropdown(label="Class for selected", choices=[], allow_custom_value=True, scale=2)
            apply_bulk = gr.Button("Apply to selected", variant="primary")

    shown = [image, caption, current, trail, progress, model_status]

    def present(project: Project, data, status, image_id, history, view_value, order_value) -> dict:
        path, text = session.view(project, data, image_id)
        return {image: path, caption: text, current: image_id, trail: history,
                progress: _progress_text(data, view_value, order_value), model_status: status}

    def selected_update(chosen: list[int]) -> dict:
        return {selection: chosen, selected_text: f"{len(chosen)} selected"}

    def grid(project: Project, data, view_value, order_value, page_value, chosen) -> dict:
        positions = lq.queue_positions(data, view_value, order_value)
        pages = max(1, math.ceil(len(positions) / PAGE_SIZE))
        number = min(max(1, int(page_value or 1)), pages)
        rows = data.iloc[positions[(number - 1) * PAGE_SIZE: number * PAGE_SIZE]]
        picked = set(chosen or [])
        thumbs = thumbnails(project.root, rows["path"].tolist())
        items = [(thumb, _caption(row, picked)) for thumb, row in zip(thumbs, rows.itertuples()) if thumb]
        kept = [int(row.image_id) for thumb, row in zip(thumbs, rows.itertuples()) if thumb]
        return {gallery: items, page_ids: kept,
                page: gr.update(value=number, maximum=pages, label=f"Page (of {pages})")}

    grid_out = [gallery, page_ids, page]

    @requires("viewer")
    @user_errors
    def reload(root, view_value, order_value, chosen) -> dict:
        if not root:
            return {image: None, caption: "Open a project in the Data tab.", current: None, trail: [],
                    progress: "", model_status: "", **{key: gr.update(visible=False) for key in keys},
                    other: gr.update(choices=[]), bulk_class: gr.update(choices=[]), gallery: [],
                    page_ids: [], **selected_update([])}
        project = context.open_project(root)
        classes = project.classes()
        data, status = session.table(project)
        has_model = latest_model_run(project.root) is not None
        choices = lq.filter_choices(classes, has_model)
        if view_value not in [value for _, value in choices]:
            view_value = "unlabeled"
        first = lq.step(data, view_value, order_value, None)
        key_updates = {key: gr.update(value=f"{k} · {classes[k - 1]}" if k <= len(classes) else str(k),
                                      visible=k <= len(classes)) for k, key in enumerate(keys, 1)}
        chosen = [i for i in chosen or [] if i in set(data["image_id"])]
        return {**present(project, data, status, first, [], view_value, order_value), **key_updates,
                other: gr.update(choices=classes, value=None), bulk_class: gr.update(choices=classes),
                view: gr.update(choices=choices, value=view_value),
                **grid(project, data, view_value, order_value, 1, chosen), **selected_update(chosen)}

    reload_out = [*shown, *keys, other, bulk_class, view, gallery, page_ids, page, selection, selected_text]
    for trigger in (binding.root.change, binding.version.change):
        trigger(reload, [binding.root, view, order, selection], reload_out, api_visibility="private")

    @requires("viewer")
    @user_errors
    def move(root, image_id, history, view_value, order_value, direction):
        project = context.open_project(root)
        data, status = session.table(project)
        history = list(history or [])
        if direction < 0 and history:
            target = history.pop()
        else:
            target = lq.step(data, view_value, order_value, image_id, direction)
            if image_id is not None and target is not None and target != image_id and direction > 0:
                history.append(image_id)
        return present(project, data, status, target, history[-200:], view_value, order_value)

    nav_in = [binding.root, current, trail, view, order]
    nxt.click(lambda *a: move(*a, 1), nav_in, shown, api_visibility="private")
    prev.click(lambda *a: move(*a, -1), nav_in, shown, api_visibility="private")

    @requires("labeler")
    @user_errors
    def label_and_next(root, image_id, history, view_value, order_value, label):
        if image_id is None:
            raise StudioError("no image is shown: pick a view with images on the right")
        session.label(root, image_id, label)
        return move(root, image_id, history, view_value, order_value, 1)

    def key_handler(index: int):
        @requires("labeler")
        @user_errors
        def handler(root, image_id, history, view_value, order_value):
            classes = context.open_project(root).classes() if root else []
            label = classes[index] if index < len(classes) else None
            if label is None:
                raise gr.Error(f"there is no class number {index + 1}")
            return label_and_next(root, image_id, history, view_value, order_value, label)

        return handler

    labeling = [button.click(key_handler(index), nav_in, shown, api_visibility="private")
                for index, button in enumerate(keys)]

    @requires("labeler")
    @user_errors
    def label_other(root, image_id, history, view_value, order_value, label, version):
        if not (label or "").strip():
            raise StudioError("type or choose a class name first")
        is_new = label.strip() not in context.open_project(root).classes()
        result = label_and_next(root, image_id, history, view_value, order_value, label)
        return {**result, binding.version: (version or 0) + 1 if is_new else version}  # a new class: refresh

    labeling.append(
        apply_other.click(
            label_other,
            [*nav_in, other, binding.version],
            [*shown, binding.version],
            api_visibility="private",
        )
    )
    labeling.append(
        unlabel.click(lambda *a: label_and_next(*a, None), nav_in, shown, api_visibility="private")
    )

    @requires("labeler")
    @user_errors
    def undo_last(root, history, view_value, order_value):
        project = context.open_project(root)
        reverted = project.undo_changes(1, by=caller_name())  # the caller's own change, not another user's
        if not reverted:
            raise StudioError("nothing of yours to undo")
        target = reverted[0]
        data, status = session.table(project)
        gr.Info(f"Undid your last change (image #{target}).")
        return present(project, data, status, target, list(history or []), view_value, order_value)

    labeling.append(
        undo.click(undo_last, [binding.root, trail, view, order], shown, api_visibility="private")
    )

    @requires("viewer")
    @user_errors
    def refresh_grid(root, view_value, order_value, page_value, chosen):
        if not root:
            return {gallery: [], page_ids: []}
        project = context.open_project(root)
        return grid(
            project, session.table(project, compute=False)[0], view_value, order_value, page_value, chosen
        )

    grid_in = [binding.root, view, order, page, selection]
    page.submit(refresh_grid, grid_in, grid_out, api_visibility="private")
    page_prev.click(lambda r, v, o, p, c: refresh_grid(r, v, o, (p or 1) - 1, c), grid_in, grid_out,
                    api_visibility="private")
    page_next.click(lambda r, v, o, p, c: refresh_grid(r, v, o, (p or 1) + 1, c), grid_in, grid_out,
                    api_visibility="private")
    for event in labeling:  # keep the grid's captions current, after the fast path has answered
        event.then(refresh_grid, grid_in, grid_out, api_visibility="private")
    for trigger in (view.input, order.input):  # a new view starts at its first image and page
        trigger(
            lambda r, c, t, v, o: move(r, None, [], v, o, 1), nav_in, shown, api_visibility="private"
        ).then(lambda r, v, o, p, c: refresh_grid(r, v, o, 1, c), grid_in, grid_out, api_visibility="private")

    @requires("viewer")
    @user_errors
    def on_thumbnail(mode, ids, chosen, root, history, view_value, order_value, evt: gr.SelectData):
        image_id = ids[evt.index] if evt.index is not None and evt.index < len(ids) else None
        chosen = list(chosen or [])
        if image_id is None:
            return selected_update(chosen)
        if mode == OPEN:
            project = context.open_project(root)
            data, status = session.table(project)
            return {**present(project, data, status, image_id, history, view_value, order_value),
                    **selected_update(chosen)}
        chosen = [i for i in chosen if i != image_id] if image_id in chosen else [*chosen, image_id]
        return selected_update(chosen)

    gallery.select(on_thumbnail, [click_mode, page_ids, selection, binding.root, trail, view, order],
                   [*shown, selection, selected_text], api_visibility="private").then(
        refresh_grid, grid_in, grid_out, api_visibility="private")
    select_page.click(lambda ids, chosen: selected_update(sorted(set(chosen or []) | set(ids or []))),
                      [page_ids, selection], [selection, selected_text], api_visibility="private").then(
        refresh_grid, grid_in, grid_out, api_visibility="private")
    clear.click(lambda: selected_update([]), None, [selection, selected_text], api_visibility="private").then(
        refresh_grid, grid_in, grid_out, api_visibility="private")

    @requires("labeler")
    @user_errors
    def apply_to_selected(root, chosen, label, version):
        if not chosen:
            raise StudioError("select some thumbnails first (click them in the grid)")
        if not (label or "").strip():
            raise StudioError("choose the class for the selected images")
        changed = context.open_project(root).set_labels(
            [(int(i), label.strip()) for i in chosen], **label_write_args()
        )
        gr.Info(
            f"Labeled {len(chosen)} image{'s' if len(chosen) != 1 else ''} as {label.strip()!r} ({changed} "
            "changed). Undo (U) reverts one image per press."
        )
        return {**selected_update([]), binding.version: (version or 0) + 1}

    apply_bulk.click(apply_to_selected, [binding.root, selection, bulk_class, binding.version],
                     [selection, selected_text, binding.version], api_visibility="private")

    @requires("labeler")
    @user_errors
    def retry_suggestions(root):
        project = context.open_project(root)
        session.store.retry(project)
        return session.table(project)[1]

    retry.click(retry_suggestions, binding.root, model_status, api_visibility="private")
    _register_api(context, session)


def _register_api(context: AppContext, session: LabelSession) -> None:
    """Scriptable endpoints for `gradio_client`: /set_label, /next_image, /undo and /label_history."""

    @requires("labeler")
    @api_errors
    def set_label(project: str, image_id: int, label: str) -> dict:
        """Label image `image_id` of `project` as `label` ("" removes the label); returns the saved state."""
        return session.label(project, image_id, label)

    @requires("viewer")
    @api_errors
    def next_image(project: str, after: int | None = None, view: str = "unlabeled",
                   order: str = lq.ORDER_IMPORT) -> dict:
        """The image the Label tab shows after `after`: id, label, model suggestion (display copy made)."""
        opened = context.open_project(project)
        data, _ = session.table(opened)
        image_id = lq.step(data, view, order, None if after is None else int(after))
        if image_id is None:
            return {"image_id": None}
        session.view(opened, data, image_id)
        row = data[data["image_id"] == image_id].iloc[0]
        confidence = None if pd.isna(row["confidence"]) else float(row["confidence"])
        return {
            "image_id": int(image_id),
            "label": row["label"],
            "suggested": row["suggested"],
            "confidence": confidence,
            "original_name": row["original_name"],
            "name": Path(row["path"]).name,
        }

    @requires("labeler")
    @api_errors
    def undo(project: str, n: int = 1) -> dict:
        """Undo the caller's own last `n` label changes; returns the image ids reverted, newest first."""
        if not 1 <= int(n) <= 1000:
            raise StudioError(f"undo 1 to 1000 changes at a time, not {n}")
        return {"reverted": context.open_project(project).undo_changes(int(n), by=caller_name())}

    @requires("viewer")
    @api_errors
    def label_history(project: str, limit: int = 100) -> list[dict]:
        """The newest label changes: change_id, image_id, old, new, at, by (the user), undone."""
        frame = context.open_project(project).label_history(max(1, min(int(limit), 10_000)))
        return json.loads(frame.to_json(orient="records"))

    gr.api(set_label, api_name="set_label")
    gr.api(next_image, api_name="next_image")
    gr.api(undo, api_name="undo")
    gr.api(label_history, api_name="label_history")
