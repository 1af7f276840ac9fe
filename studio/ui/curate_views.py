"""Widget values for the Curate tab's panels, from a project and its stored analysis.

Each function returns the values of one panel's outputs in the order `curate_tab` lists them; a
`project` of None (no project open) or a `report` of None (never analysed) gives that panel's empty look.
"""

from __future__ import annotations

import base64
import functools
import io
import os
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from studio.app.curation import REFIT_EVERY, CurateSession
from studio.curate.embedding import embedding_figure
from studio.data.imaging import load_rgb
from studio.data.store import Project
from studio.errors import StudioError
from studio.ui.media import display_image, thumbnails

NOT_ANALYSED = "Run **Analyse** first."
MAX_BOX_THUMBS = 60
HOVER_SIZE = 96  # px of the image shown beside a hovered map point
MAX_HOVER_THUMBS = 3000  # ~3 kB each ride in the figure; beyond this the page would grow too heavy
STAGES = {"features": "extracting features", "analysis": "finding duplicates, label issues and outliers"}


def _classes(project: Project | None) -> list[str]:
    return project.classes() if project is not None else []


def _rows(project: Project) -> pd.DataFrame:
    return project.dataset().set_index("image_id", drop=False)


def _gallery(project: Project, ids: list[int], caption) -> list[tuple[str, str]]:
    rows = _rows(project).loc[ids]
    thumbs = thumbnails(project.root, rows["path"].tolist())
    return [(thumb, caption(row)) for thumb, row in zip(thumbs, rows.itertuples()) if thumb]


# ---- the headline ----------------------------------------------------------------------------------

def _count(n: int, thing: str) -> str:
    """'**1** outlier', '**3** outliers'."""
    return f"**{n}** {thing}" + ("" if n == 1 else "s")


def summary(session: CurateSession, project: Project | None, report: dict | None) -> str:
    if project is None:
        return "Open a project in the Data tab."
    if report is None:
        return ("No analysis yet: click **Analyse**. The first run extracts features (about a minute per few "
                "hundred images on a CPU); later runs reuse them and take seconds.")
    groups = session.pending_duplicates(project, report)
    leaks = sum(1 for g in groups if g["leakage"])
    issues = [i for i in session.pending_issues(project, report) if i.get("flagged", True)]
    outliers = session.outliers(project, report)
    when = (report.get("finished_at") or "").replace("T", " ").replace("+00:00", " UTC")
    lines = [(f"Last analysis {when} · {report.get('backbone')} · {report.get('images')} images · "
             f"{report.get('seconds', '?')} s"),
             _count(len(groups), "duplicate group") + " to review"
             + (f" (**⚠ {leaks} with train/val leakage**)" if leaks else "")
             + f" · {_count(len(issues), 'likely label error')} · {_count(len(outliers), 'outlier')} · "
             + _count(len(report.get("warnings", [])), "dataset warning")]
    analysed = set(report.get("embedding", {}).get("image_id", []))
    new = int((~project.dataset()["image_id"].isin(analysed)).sum())
    if new:
        lines.append(f"⚠ {new} image(s) were added after this analysis: click **Analyse** to include them.")
    return "  \n".join(lines)


def job_text(session: CurateSession, job: Any) -> str:
    """One line about the analysis job: queued, running (stage and percent), failed or cancelled."""
    state = job.state.value
    if state == "queued":
        queued = [j.id for j in session.service().queued_jobs()]
        place = queued.index(job.id) + 1 if job.id in queued else 1
        return f"Analysis queued (position {place}); it starts when the device is free…"
    if state == "running":
        stages = [e["name"] for e in job.events() if e.get("type") == "stage"]
        stage = STAGES.get(stages[-1], stages[-1]) if stages else "starting"
        return f"Analysing: {stage}… **{job.progress:.0%}**"
    if state == "failed":
        return f"**Analysis failed:** {job.error}"
    if state == "cancelled":
        return "Analysis cancelled; the previous results (if any) are still shown."
    return "Analysis finished."


# ---- duplicates ------------------------------------------------------------------------------------

def _group_choice(number: int, group: dict) -> tuple[str, str]:
    splits = sorted({s or "no split" for s in group["splits"]})
    labels = sorted({label or "unlabeled" for label in group["labels"]})
    flag = "⚠ LEAKAGE · " if group["leakage"] else ""
    text = (
        f"{flag}Group {number}: {len(group['image_ids'])} images · {' + '.join(splits)} · {', '.join(labels)}"
    )
    return text, ",".join(map(str, group["image_ids"]))


def duplicates(session: CurateSession, project: Project | None, report: dict | None, key: str | None):
    """(group dropdown, explanation, gallery, keep dropdown, resolve button, group image ids); the
    controls are hidden while there is no group to review (empty dropdowns only confuse)."""
    empty, hidden = gr.update(choices=[], value=None, visible=False), gr.update(visible=False)
    if project is None or report is None:
        return empty, NOT_ANALYSED if project is not None else "", _shown([]), empty, hidden, []
    groups = session.pending_duplicates(project, report)
    if not groups:
        return empty, "No near-duplicates left to review ✓", _shown([]), empty, hidden, []
    choices = [_group_choice(n, g) for n, g in enumerate(groups, 1)]
    values = [value for _, value in choices]
    index = values.index(key) if key in values else 0
    group = groups[index]
    ids = group["image_ids"]
    notes = [(f"Group {index + 1} of {len(groups)} · these images look like copies of one photo (resized, "
             "re-encoded, mirrored or cropped). Training on copies over-weights them: keep one.")]
    if group["leakage"]:
        splits = " and ".join(sorted({s for s in group["splits"] if s}))
        notes.insert(0, f"### ⚠ Train/val leakage\nCopies sit in {splits}: validation accuracy then partly "
                        "measures memory, not how well the model generalises.")
    if group["conflicting_labels"]:
        notes.append("⚠ The copies carry **different labels**: keep the one whose label is right.")
    items = _gallery(project, ids, lambda row: f"#{row.image_id} · {row.split or '—'} · {row.label or '—'}")
    best = ids[max(range(len(ids)), key=lambda i: (group["sizes"][i], -i))]  # the largest copy by default
    keep_choices = [(f"Keep #{i} ({s or 'no split'}, {label or 'unlabeled'}), exclude the others", str(i))
                    for i, s, label in zip(ids, group["splits"], group["labels"])]
    keep_choices.append(("Keep all (they are different photos)", "all"))
    return (gr.update(choices=choices, value=values[index], visible=True), "\n\n".join(notes), _shown(items),
            gr.update(choices=keep_choices, value=str(best), visible=True), gr.update(visible=True), ids)


# ---- label issues ----------------------------------------------------------------------------------

def issue(session: CurateSession, project: Project | None, report: dict | None):
    """(image, text, relabel dropdown, image id) of the most likely mislabeled image not reviewed yet."""
    classes = _classes(project)
    if project is None or report is None:
        return None, NOT_ANALYSED if project is not None else "", gr.update(choices=classes, value=None), None
    pending = session.pending_issues(project, report)
    if not pending:
        return (None, "No label issues left to review ✓  \nAnalyse again after relabeling to look afresh.",
                gr.update(choices=classes, value=None), None)
    first = pending[0]
    row = _rows(project).loc[first["image"]]
    text = (
        f"**#{first['image']}** · {row['original_name']} · split: {row['split'] or 'none'}\n\n"
        f"Labeled **{first['label']}**; a classifier fitted on the other labeled images (not a trained run) "
        f"takes it for **{first['suggested']}**.  \n"
        f"Label quality {first['score']:.2f} (0 = surely wrong, 1 = fine)\n\n"
        f"**{sum(1 for i in pending if i.get('flagged', True))}** flagged as likely wrong left in the queue, "
        f"then {sum(1 for i in pending if not i.get('flagged', True))} more labels ranked by the same score "
        "(most likely mislabeled first): keep going past the flagged ones to check further."
    )
    return (
        display_image(project.root, row["path"]),
        text,
        gr.update(choices=classes, value=first["suggested"]),
        first["image"],
    )


# ---- active learning -------------------------------------------------------------------------------

def active(session: CurateSession, root: str, skipped: list[int]):
    """(image, text, class dropdown pre-filled with the model's guess, image id)."""
    if not root:
        return None, "", gr.update(choices=[], value=None), None
    project = session.context.open_project(root)
    classes = project.classes()
    try:
        nxt = session.next_to_label(root, skipped)
    except StudioError as error:
        return None, f"{error}.", gr.update(choices=classes, value=None), None
    refits = (f"The model refits in the background every {REFIT_EVERY} new labels "
              f"(fits so far: {nxt['fits']}).")
    extra = (f"  \n⚠ {nxt['new_images']} image(s) added since the analysis are not ranked: Analyse again."
             if nxt["new_images"] else "")
    if nxt["image_id"] is None:
        done = "You skipped the rest: reopen the project to see them again." if nxt["remaining"] else \
            "No unlabeled image left ✓"
        return None, done + extra, gr.update(choices=classes, value=None), None
    row = _rows(project).loc[nxt["image_id"]]
    text = (f"**#{nxt['image_id']}** · {row['original_name']}\n\n"
            f"Model's guess: **{nxt['suggested']}** ({nxt['confidence']:.0%} sure)\n\n"
            f"**{nxt['remaining']}** unlabeled images, the most uncertain first. {refits}{extra}")
    return (
        display_image(project.root, row["path"]),
        text,
        gr.update(choices=classes, value=nxt["suggested"]),
        nxt["image_id"],
    )


# ---- embedding map ---------------------------------------------------------------------------------

def empty_figure(message: str = "Run Analyse to draw the map.") -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, font={"size": 16})
    figure.update_layout(
        template="plotly_white", height=420, xaxis={"visible": False}, yaxis={"visible": False}
    )
    return figure


def _extent(values: pd.Series) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    pad = max((high - low) * 0.02, 1e-3)
    return round(low - pad, 3), round(high + pad, 3)


@functools.lru_cache(maxsize=20_000)
def _hover_thumbnail(path: str, mtime: float) -> str:
    """A small JPEG data: URI of an image, for the map's hover (cached per file version)."""
    image = load_rgb(path, draft_size=HOVER_SIZE)
    image.thumbnail((HOVER_SIZE, HOVER_SIZE))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def hover_thumbnails(project: Project, image_ids: list[int]) -> dict[int, str]:
    """{image id: data URI} for the map's hover images; none beyond MAX_HOVER_THUMBS points (page size)."""
    if len(image_ids) > MAX_HOVER_THUMBS:
        return {}
    paths = _rows(project).loc[image_ids, "path"]
    found = {}
    for image_id, path in paths.items():
        try:
            found[int(image_id)] = _hover_thumbnail(str(path), os.path.getmtime(path))
        except (StudioError, OSError):
            continue  # an unreadable file just has no hover image
    return found


def selection_view(project: Project, ids: list[int], where: str, unlabeled_only: bool) -> tuple[str, dict]:
    """(text, gallery) of the images a selection holds."""
    kind = "unlabeled images" if unlabeled_only else "images"
    text = f"**{len(ids)}** {kind} {where}" + (f" (showing the first {MAX_BOX_THUMBS})"
                                                if len(ids) > MAX_BOX_THUMBS else "")
    caption = lambda row: f"#{row.image_id} · {row.label or '—'}"
    return text, _shown(_gallery(project, ids[:MAX_BOX_THUMBS], caption))


def _shown(items: list):
    """A gallery's update: hidden while empty (an empty gallery is a large blank box with an icon)."""
    return gr.update(value=items, visible=bool(items))


def embedding(session: CurateSession, project: Project | None, report: dict | None,
              box: tuple | None, unlabeled_only: bool = True):
    """(figure, x from, x to, y from, y to, selection text, selection gallery, class dropdown, selected ids).

    Without a box the limits are set to the whole map and nothing is selected.
    """
    classes = _classes(project)
    frame = session.embedding(project, report) if project is not None else pd.DataFrame()
    if frame.empty:
        return (empty_figure(), None, None, None, None, "", _shown([]), gr.update(choices=classes), [])
    figure = embedding_figure(frame, title="",
                              thumbnails=hover_thumbnails(project, frame["image_id"].astype(int).tolist()))
    # Dragging draws a lasso (the box tool and zoom are in the plot's toolbar).
    # uirevision: a redraw after a bulk label keeps the user's zoom and pan.
    figure.update_layout(dragmode="lasso", height=520, margin={"l": 50, "r": 20, "t": 20, "b": 45},
                         uirevision="embedding-map")
    if box is None:
        (x0, x1), (y0, y1) = _extent(frame["x"]), _extent(frame["y"])
        return (figure, x0, x1, y0, y1, "", _shown([]), gr.update(choices=classes), [])
    ids = session.box_ids(project, box, unlabeled_only)
    x0, x1, y0, y1 = box
    figure.add_shape(
        type="rect",
        x0=x0,
        x1=x1,
        y0=y0,
        y1=y1,
        line={"color": "#4f46e5", "dash": "dash", "width": 2},
        fillcolor="rgba(79, 70, 229, 0.08)",
    )
    text, items = selection_view(project, ids, "in the box", unlabeled_only)
    return (figure, x0, x1, y0, y1, text, items, gr.update(choices=classes), ids)


# ---- outliers and warnings -------------------------------------------------------------------------

def outliers(session: CurateSession, project: Project | None, report: dict | None):
    """(warnings Markdown, outlier table, outlier gallery)."""
    if project is None or report is None:
        return (NOT_ANALYSED if project is not None else "", pd.DataFrame(), [])
    warnings = report.get("warnings", [])
    text = ("### Dataset warnings\n" + "\n".join(f"- {w}" for w in warnings)) if warnings else \
        "### Dataset warnings\nNone ✓"
    table = session.outliers(project, report)
    z = dict(zip(table["image"], table["z"]))
    items = _gallery(project, table["image"].tolist(),
                     lambda row: f"#{row.image_id} · z {z[row.image_id]:.1f}")
    return text, table, items
