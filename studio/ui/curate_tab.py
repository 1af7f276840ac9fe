"""Curate tab: find and fix what hurts a small dataset before (and between) training runs.

"Analyse" runs the curation job in the trainer service (features are cached, so a rerun takes seconds);
its results persist in the project's cache, so the tab shows them again after a restart. Five panels
review them: near-duplicate groups (leakage first), the label-issue queue, active learning, the
embedding map with box selection and bulk labeling, and outliers with dataset warnings.
Widget-free logic lives in `studio.app.curation`; the keyboard listener is the `gr.HTML` below.
"""

from __future__ import annotations

import json

import gradio as gr

from studio.app.curation import CurateSession
from studio.errors import StudioError
from studio.models.registry import BACKBONES, DEFAULT_BACKBONE
from studio.sharing.quotas import outcome_or_cancel
from studio.ui import curate_views as views
from studio.ui.access import requires
from studio.ui.context import AppContext, ProjectBinding
from studio.ui.feedback import api_errors, by_component, user_errors

POLL_SECONDS = 1.0
HELP = (
    "**Analyse** looks at every image through a pretrained backbone and finds near-duplicates (and train/val "
    "leakage), likely label errors, outliers and dataset problems. Review each finding below: decisions are "
    "saved at once and never asked again; excluded images keep their file and label but are left out of "
    "training. Keys: **A** accept, **K** keep, **M** ambiguous, **E** exclude (label issues); "
    "**A**/**Enter** accept, **S** skip (active learning)."
)

# Events that redraw the review panels run one at a time, in the order they came: a full redraw computed
# before a label was saved must not land after that label's own update and show the labeled image again.
PANELS_QUEUE = "curate-panels"

# Keys for the review and active-learning panels: clicks their buttons while the panel is visible and no
# text field has the focus (the Label tab's listener in app.HEAD works the same way).
KEYS_JS = """
if (!window.__studioCurateKeys) {
  window.__studioCurateKeys = true;
  const panels = [
    ['curate-active-panel', {a: 'curate-active-accept', Enter: 'curate-active-accept',
                             s: 'curate-active-skip'}],
    ['curate-issue-panel', {a: 'curate-issue-accept', k: 'curate-issue-keep', m: 'curate-issue-ambiguous',
                            e: 'curate-issue-exclude'}],
  ];
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (target && (['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName)
                   || target.isContentEditable)) return;
    if (event.key === 'Enter' && target && target.tagName === 'BUTTON') return;  // the button clicks itself
    for (const [panelId, keys] of panels) {
      const panel = document.getElementById(panelId);
      if (!panel || panel.offsetParent === null) continue;
      const id = keys[event.key.length === 1 ? event.key.toLowerCase() : event.key];
      const element = id && document.getElementById(id);
      const button = element && (element.tagName === 'BUTTON' ? element : element.querySelector('button'));
      if (!button || button.disabled) return;
      event.preventDefault();
      button.click();
      return;
    }
  });
}
"""

# The embedding map's mouse bridge: plotly's lasso/box selection events (gr.Plot has no select event)
# write the selected image ids into the hidden #curate-map-selection textbox, whose change the server
# checks and turns into the selection; hovering a point shows its thumbnail (customdata[3]) beside it.
MAP_JS = """
if (!window.__studioMapBridge) {
  window.__studioMapBridge = true;
  const hover = document.createElement('img');
  hover.id = 'curate-map-hover';
  hover.style.cssText = 'position:fixed;display:none;pointer-events:none;z-index:1000;max-width:96px;' +
    'max-height:96px;border:2px solid #4f46e5;border-radius:4px;background:white';
  document.body.appendChild(hover);
  const send = (ids) => {
    const field = document.querySelector('#curate-map-selection textarea, #curate-map-selection input');
    if (!field) return;
    field.value = JSON.stringify(ids);
    field.dispatchEvent(new Event('input', {bubbles: true}));
  };
  const attach = () => {
    const plot = document.querySelector('#curate-map-plot .js-plotly-plot');
    if (!plot || plot.__studioBridge || typeof plot.on !== 'function') return;
    plot.__studioBridge = true;
    plot.on('plotly_selected', (event) => {
      const points = (event && event.points) || [];
      send([...new Set(points.filter(p => p.customdata).map(p => Number(p.customdata[0])))]);
    });
    plot.on('plotly_deselect', () => send([]));
    plot.on('plotly_hover', (event) => {
      const point = event.points[0];
      const url = point.customdata && point.customdata[3];
      if (!url) return;
      hover.src = url;
      hover.style.left = (event.event.clientX + 18) + 'px';
      hover.style.top = (event.event.clientY + 18) + 'px';
      hover.style.display = 'block';
    });
    plot.on('plotly_unhover', () => { hover.style.display = 'none'; });
  };
  new MutationObserver(attach).observe(document.body, {childList: true, subtree: true});
}
"""

# Small images (64 px scans) fill the review panels instead of sitting in a corner of them.
STYLE = """
<style>
#curate-issue-image img, #curate-active-image img {width: 100%; height: 100%; object-fit: contain;}
</style>
"""


def build(context: AppContext, binding: ProjectBinding) -> None:
    session = CurateSession(context)
    gr.Markdown(HELP, elem_classes="help-text")
    with gr.Row(elem_classes="align-end"):
        backbone = gr.Dropdown(choices=list(BACKBONES), value=DEFAULT_BACKBONE, allow_custom_value=True,
                               label="Feature backbone", scale=3)
        analyse = gr.Button("Analyse", variant="primary", scale=1, elem_id="curate-analyse")
        cancel = gr.Button("Cancel", scale=1, visible=False)
    status = gr.Markdown("Open a project in the Data tab.", elem_id="curate-status")
    job_id = gr.State("")
    finished = gr.Number(value=0, visible="hidden", label="analyses finished")
    timer = gr.Timer(POLL_SECONDS, active=False)

    with gr.Tabs(elem_id="curate-sections"):
        with gr.Tab("Duplicates & leakage", id="curate-duplicates"):
            group = gr.Dropdown(label="Duplicate group", choices=[], elem_id="curate-group", visible=False)
            group_text = gr.Markdown()
            group_gallery = gr.Gallery(columns=6, height=340, allow_preview=False, object_fit="contain",
                                       fit_columns=False, show_label=False, elem_id="curate-group-gallery",
                                       elem_classes=["wrap-captions"])
            with gr.Row(elem_classes="align-end"):
                keep = gr.Dropdown(label="Keep (click a thumbnail to choose it)", choices=[], scale=3,
                                   visible=False)
                resolve = gr.Button("Resolve group", variant="primary", scale=1, visible=False)
            group_ids = gr.State([])
        with gr.Tab("Label issues", id="curate-issues"):
            with gr.Row(elem_id="curate-issue-panel"):
                with gr.Column(scale=3):
                    issue_image = gr.Image(type="filepath", interactive=False, height=380, show_label=False,
                                           buttons=["fullscreen"], elem_id="curate-issue-image")
                with gr.Column(scale=2):
                    issue_text = gr.Markdown("Run Analyse first.")
                    issue_label = gr.Dropdown(label="Relabel as", choices=[], allow_custom_value=True)
                    accept = gr.Button(
                        "Accept suggestion (A)", variant="primary", elem_id="curate-issue-accept"
                    )
                    with gr.Row():
                        keep_label = gr.Button("Keep label (K)", elem_id="curate-issue-keep")
                        ambiguous = gr.Button("Ambiguous (M)", elem_id="curate-issue-ambiguous")
                        exclude = gr.Button("Exclude (E)", variant="stop", elem_id="curate-issue-exclude")
            issue_id = gr.State(None)
        with gr.Tab("Active learning", id="curate-active"):
            with gr.Row(elem_id="curate-active-panel"):
                with gr.Column(scale=3):
                    active_image = gr.Image(type="filepath", interactive=False, height=380, show_label=False,
                                            buttons=["fullscreen"], elem_id="curate-active-image")
                with gr.Column(scale=2):
                    active_text = gr.Markdown("Run Analyse first.")
                    active_label = gr.Dropdown(label="Class (the model's guess is pre-filled)", choices=[],
                                               allow_custom_value=True)
                    with gr.Row():
                        active_accept = gr.Button("Label (A / Enter)", variant="primary",
                                                  elem_id="curate-active-accept")
                        active_skip = gr.Button("Skip (S)", elem_id="curate-active-skip")
            active_id = gr.State(None)
            skipped = gr.State([])
        with gr.Tab("Embedding map", id="curate-map"):
            plot = gr.Plot(views.empty_figure(), show_label=False, elem_id="curate-map-plot")
            gr.Markdown(
                "**Drag on the map** to draw a lasso around images (the box tool and zoom are in the "
                "plot's toolbar; hover a point to see its image), or give a region's coordinates below; "
                "then label every selected image at once.",
                elem_classes="help-text",
            )
            # The page script (MAP_JS) writes the ids of a mouse selection here as JSON.
            map_selection = gr.Textbox(value="", visible="hidden", elem_id="curate-map-selection",
                                       label="map selection")
            selected_ids = gr.State([])
            with gr.Row(elem_classes="align-end"):
                x_min = gr.Number(label="x from", scale=1)
                x_max = gr.Number(label="x to", scale=1)
                y_min = gr.Number(label="y from", scale=1)
                y_max = gr.Number(label="y to", scale=1)
                only_unlabeled = gr.Checkbox(value=True, label="only unlabeled images", scale=1)
                show_box = gr.Button("Select box", scale=1)
            box_text = gr.Markdown()
            box_gallery = gr.Gallery(columns=10, height=200, allow_preview=False, object_fit="contain",
                                     fit_columns=False, show_label=False)
            with gr.Row(elem_classes="align-end"):
                box_class = gr.Dropdown(
                    label="Class for the selected images", choices=[], allow_custom_value=True, scale=3
                )
                box_apply = gr.Button("Label all selected", variant="primary", scale=1)
        with gr.Tab("Outliers & warnings", id="curate-outliers"):
            warnings = gr.Markdown()
            outlier_table = gr.Dataframe(
                interactive=False, label="Outliers (fit no class well; farthest first)", max_height=260
            )
            outlier_gallery = gr.Gallery(columns=8, height=200, allow_preview=False, object_fit="contain",
                                         fit_columns=False, show_label=False, elem_classes=["wrap-captions"])

    box = [x_min, x_max, y_min, y_max]
    dup_out = [group, group_text, group_gallery, keep, resolve, group_ids]
    issue_out = [issue_image, issue_text, issue_label, issue_id]
    active_out = [active_image, active_text, active_label, active_id]
    map_out = [plot, *box, box_text, box_gallery, box_class, selected_ids]
    rest_out = [warnings, outlier_table, outlier_gallery]
    everything = [status, *dup_out, *issue_out, *active_out, skipped, *map_out, *rest_out]

    @requires("viewer")
    @user_errors
    def reload(root) -> dict:
        """Every panel redrawn: each view's values matched to that panel's own components (a view that
        returns one value too many or too few fails here, not as a shifted widget)."""
        project = context.open_project(root) if root else None
        report = session.report(project) if project is not None else None

        def panel(components: list, values: tuple) -> dict:
            return dict(zip(components, values, strict=True))

        return {status: views.summary(session, project, report),
                **panel(dup_out, views.duplicates(session, project, report, None)),
                **panel(issue_out, views.issue(session, project, report)),
                **panel(active_out, views.active(session, root or "", [])), skipped: [],
                **panel(map_out, views.embedding(session, project, report, None)),
                **panel(rest_out, views.outliers(session, project, report))}

    # A redraw replaces contents already shown: no "processing" overlay over every panel (it flashed the
    # whole tab, the map included, after each bulk label).
    for trigger in (binding.root.change, binding.version.change, finished.change):
        trigger(reload, binding.root, everything, api_visibility="private", show_progress="hidden",
                concurrency_id=PANELS_QUEUE)
    if binding.tab is not None:  # labels may have changed in another tab meanwhile
        binding.tab.change(lambda r, t: reload(r) if t == "curate" else gr.skip(),
                           [binding.root, binding.tab], everything, api_visibility="private",
                           show_progress="hidden", concurrency_id=PANELS_QUEUE)

    # ---- the analysis job ----------------------------------------------------------------------
    @requires("owner")
    @user_errors
    def on_analyse(root, backbone_name) -> dict:
        job = session.start(root, backbone_name)
        return {job_id: job.id, status: views.job_text(session, job), timer: gr.Timer(active=True),
                cancel: gr.Button(visible=True)}

    @requires("viewer")
    @user_errors
    def on_tick(watched, done) -> dict:
        stopped = {timer: gr.Timer(active=False), cancel: gr.Button(visible=False)}
        if not watched:
            return stopped
        try:
            job = session.service().get(watched)
        except StudioError as error:  # forgotten by the service (long ago): stop watching it
            return {status: str(error), **stopped}
        if not job.is_finished:
            return {status: views.job_text(session, job), timer: gr.Timer(active=True)}
        if job.error or job.state.value != "done":
            return {status: views.job_text(session, job), **stopped}
        return {finished: (done or 0) + 1, **stopped}

    @requires("owner")
    @user_errors
    def on_cancel(watched):
        if watched:
            session.service().cancel(watched)
        return gr.Button(visible=False)

    @requires("viewer")
    @user_errors
    def reattach(root):
        """After a page reload: follow the project's analysis if one is still queued or running."""
        job = session.active_job(root)
        if job is None:
            return {job_id: "", timer: gr.Timer(active=False), cancel: gr.Button(visible=False)}
        return {job_id: job.id, timer: gr.Timer(active=True), cancel: gr.Button(visible=True)}

    analyse.click(
        on_analyse, [binding.root, backbone], [job_id, status, timer, cancel], api_visibility="private"
    )
    timer.tick(on_tick, [job_id, finished], [status, timer, finished, cancel], api_visibility="private",
               show_progress="hidden")
    cancel.click(on_cancel, job_id, cancel, api_visibility="private")
    binding.root.change(reattach, binding.root, [job_id, timer, cancel], api_visibility="private")

    # ---- duplicates ----------------------------------------------------------------------------
    @requires("viewer")
    @user_errors
    def on_group(root, key):
        project = context.open_project(root)
        return by_component(dup_out, views.duplicates(session, project, session.report(project), key))

    @requires("labeler")
    @user_errors
    def on_resolve(root, ids, keep_value):
        if not ids:
            raise gr.Error("There is no duplicate group to resolve.")
        if not keep_value:
            raise gr.Error("Choose which image to keep (or keep all).")
        result = session.resolve_duplicates(root, ids, keep_value)
        gr.Info(f"Kept {len(result['kept'])} image(s); excluded {len(result['excluded'])} from training.")
        project = context.open_project(root)
        return {**by_component(dup_out, views.duplicates(session, project, session.report(project), None)),
                status: views.summary(session, project, session.report(project))}

    @requires("viewer")
    @user_errors
    def on_thumbnail(ids, evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else None
        return str(ids[index]) if index is not None and index < len(ids) else gr.skip()

    group.input(on_group, [binding.root, group], dup_out, api_visibility="private")
    resolve.click(on_resolve, [binding.root, group_ids, keep], [*dup_out, status], api_visibility="private",
                  concurrency_id=PANELS_QUEUE)
    group_gallery.select(on_thumbnail, group_ids, keep, api_visibility="private")

    # ---- label issues --------------------------------------------------------------------------
    def reviewer(decision: str):
        @requires("labeler")
        @user_errors
        def handler(root, image_id, label):
            if image_id is None:
                raise gr.Error("No label issue is shown: the queue is empty (or Analyse has not run).")
            result = session.review_issue(root, image_id, decision, label)
            project = context.open_project(root)
            gr.Info(f"#{image_id}: {result['decision']} (label {result['label'] or 'none'}).")
            return {**by_component(issue_out, views.issue(session, project, session.report(project))),
                    status: views.summary(session, project, session.report(project))}

        return handler

    for button, decision in (
        (accept, "accept"),
        (keep_label, "keep"),
        (ambiguous, "ambiguous"),
        (exclude, "exclude"),
    ):
        button.click(reviewer(decision), [binding.root, issue_id, issue_label], [*issue_out, status],
                     api_visibility="private", concurrency_id=PANELS_QUEUE)

    # ---- active learning -----------------------------------------------------------------------
    @requires("labeler")
    @user_errors
    def on_active_label(root, image_id, label, skip_list):
        if image_id is None:
            raise gr.Error("No image is waiting: nothing unlabeled is left (or Analyse has not run).")
        session.label_active(root, image_id, label)
        return {**by_component(active_out, views.active(session, root, skip_list)), skipped: skip_list}

    @requires("viewer")
    @user_errors
    def on_skip(root, image_id, skip_list):
        skip_list = [*(skip_list or []), image_id] if image_id is not None else list(skip_list or [])
        return {**by_component(active_out, views.active(session, root, skip_list)), skipped: skip_list}

    active_accept.click(
        on_active_label,
        [binding.root, active_id, active_label, skipped],
        [*active_out, skipped],
        api_visibility="private",
        concurrency_id=PANELS_QUEUE,
    )
    active_skip.click(
        on_skip, [binding.root, active_id, skipped], [*active_out, skipped], api_visibility="private",
        concurrency_id=PANELS_QUEUE,
    )

    # ---- embedding map -------------------------------------------------------------------------
    @requires("viewer")
    @user_errors
    def on_box(root, x0, x1, y0, y1, unlabeled_only):
        project = context.open_project(root)
        return by_component(map_out, views.embedding(session, project, session.report(project),
                                                     (x0, x1, y0, y1), unlabeled_only))

    @requires("labeler")
    @user_errors
    def on_map_selection(root, text, unlabeled_only):
        if not root:
            return gr.skip()
        try:
            chosen = json.loads(text or "[]")
        except ValueError:
            raise StudioError("the map selection could not be read; select again") from None
        project = context.open_project(root)
        ids = session.selection_ids(project, chosen, unlabeled_only)
        shown = views.selection_view(project, ids, "selected on the map", unlabeled_only)
        return {**by_component([box_text, box_gallery], shown), selected_ids: ids}

    @requires("labeler")
    @user_errors
    def on_selection_label(root, ids, unlabeled_only, label, version):
        result = session.label_selection(root, ids, label, unlabeled_only)
        gr.Info(f"Labeled {result['labeled']} image(s) as {result['label']!r} ({result['changed']} changed).")
        return (version or 0) + 1  # every tab refreshes, this one included

    show_box.click(on_box, [binding.root, *box, only_unlabeled], map_out, api_visibility="private")
    for trigger in (map_selection.change, only_unlabeled.change):
        trigger(
            on_map_selection,
            [binding.root, map_selection, only_unlabeled],
            [box_text, box_gallery, selected_ids],
            api_visibility="private",
        )
    box_apply.click(
        on_selection_label,
        [binding.root, selected_ids, only_unlabeled, box_class, binding.version],
        binding.version,
        api_visibility="private",
    )

    # Last, so its (empty) block adds no gap above the controls; `head` carries the tab's own styles.
    gr.HTML("", js_on_load=KEYS_JS + MAP_JS, head=STYLE, elem_id="curate-keys")
    _register_api(session)


CURATE_WAIT_S = 3600  # /curate waits this long for its job, then cancels it


def _register_api(session: CurateSession) -> None:
    """Scriptable endpoints for `gradio_client`: the same calls as the buttons above."""

    @requires("owner")
    @api_errors
    def curate(project: str, backbone: str = "") -> dict:
        """Run the curation analysis (waits for the job); returns what it found, counted."""
        return outcome_or_cancel(session.service(), session.start(project, backbone or None), CURATE_WAIT_S)

    @requires("viewer")
    @api_errors
    def curate_report(project: str) -> dict:
        """The last analysis with the decisions made since applied: pending duplicates and label issues."""
        return session.overview(project)

    @requires("labeler")
    @api_errors
    def review_label_issue(project: str, image_id: int, decision: str, label: str = "") -> dict:
        """Answer a label issue: accept (relabel as `label`, default the suggestion), keep, ambiguous,
        exclude."""
        return session.review_issue(project, image_id, decision, label or None)

    @requires("labeler")
    @api_errors
    def resolve_duplicates(project: str, image_ids: list[int], keep: str) -> dict:
        """Resolve a duplicate group: keep one image id (the others are excluded from training) or "all"."""
        return session.resolve_duplicates(project, image_ids, keep)

    @requires("viewer")
    @api_errors
    def next_to_label(project: str) -> dict:
        """The most uncertain unlabeled image and the model's suggestion for it."""
        return session.next_to_label(project)

    @requires("labeler")
    @api_errors
    def label_suggested(project: str, image_id: int, label: str = "") -> dict:
        """Label an image from the active-learning queue ("" takes the model's suggestion)."""
        return session.label_active(project, image_id, label or None)

    @requires("labeler")
    @api_errors
    def label_box(project: str, x_min: float, x_max: float, y_min: float, y_max: float, label: str,
                  unlabeled_only: bool = True) -> dict:
        """Label every image whose embedding-map point lies in the box."""
        return session.label_box(project, (x_min, x_max, y_min, y_max), label, unlabeled_only)

    for fn in (curate, curate_report, review_label_issue, resolve_duplicates, next_to_label, label_suggested,
               label_box):
        gr.api(fn, api_name=fn.__name__)
