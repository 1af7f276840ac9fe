"""The studio's Gradio app: a header, the shared project binding, and the six tabs in order.

Look (theme, CSS, keyboard script) is passed to `launch()` (Gradio 6 takes them there), see `launcher`.
"""

from __future__ import annotations

import importlib
import re
import secrets
from pathlib import Path

import gradio as gr

from studio.errors import StudioError
from studio.sharing.accounts import LOCAL_USER
from studio.sharing.caller import current_caller
from studio.ui.access import requires
from studio.ui.context import AppContext, ProjectBinding
from studio.ui.feedback import user_errors

ASSETS = Path(__file__).resolve().parents[2] / "assets"
APP_TITLE = "Image Classifier Studio"

THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="sky", neutral_hue="slate")

CSS = """
#studio-header {align-items: center; gap: 12px; margin-bottom: 4px;}
#studio-header h1 {margin: 0; font-size: 1.5rem;}
#studio-project {text-align: right; color: var(--body-text-color-subdued);}
#studio-account {text-align: right; color: var(--body-text-color-subdued); font-size: 0.9rem;}
.help-text {color: var(--body-text-color-subdued); font-size: 0.92rem;}
#label-image img {object-fit: contain;}
.class-button {min-width: 120px;}
.selected-count {font-weight: 600;}
.align-end {align-items: flex-end !important;}
.align-end button {max-height: 46px;}
/* Thumbnail captions such as "dandelion→sunflower 61%": wrap instead of cutting the end off. */
.wrap-captions .caption-label {white-space: normal !important; max-width: 100% !important;
  opacity: 0.9 !important;}
"""

# Keyboard shortcuts of the Label tab: the listener clicks that tab's buttons (elem_ids below), and only
# while the tab is visible and no text field has the focus.
HEAD = """
<script>
document.addEventListener('keydown', (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (target && (['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName)
                 || target.isContentEditable)) return;
  const panel = document.getElementById('label-panel');
  if (!panel || panel.offsetParent === null) return;
  let id = null;
  if (/^[1-9]$/.test(event.key)) id = 'label-key-' + event.key;
  else if (event.key === 'ArrowRight') id = 'label-next';
  else if (event.key === 'ArrowLeft') id = 'label-prev';
  else if (event.key === 'u' || event.key === 'U') id = 'label-undo';
  if (!id) return;
  const element = document.getElementById(id);
  if (!element) return;
  const button = element.tagName === 'BUTTON' ? element : element.querySelector('button');
  if (!button || button.disabled) return;
  event.preventDefault();
  button.click();
});
</script>
"""

# Tabs in contract order: (title, module).
TABS = [
    ("Data", "studio.ui.data_tab"),
    ("Label", "studio.ui.label_tab"),
    ("Curate", "studio.ui.curate_tab"),
    ("Augment", "studio.ui.augment_tab"),
    ("Train", "studio.ui.train_tab"),
    ("Evaluate", "studio.ui.evaluate_tab"),
    ("Predict", "studio.ui.predict_tab"),
]


@requires("viewer")
@user_errors
def _header_text(root: str) -> str:
    return f"Project: **{Path(root).name}**" if root else "No project open"


@requires("viewer")
@user_errors
def _account_view() -> tuple[dict, dict]:
    """Who is signed in, and a way to sign out (a shared computer): hidden without accounts (one person,
    this machine)."""
    caller = current_caller()
    if caller.name == LOCAL_USER:
        return gr.update(visible=False), gr.update()  # the column takes no room: the project name stays right
    name = re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~])", r"\\\1", caller.name)  # shown as typed, not as markdown
    return gr.update(visible=True), gr.update(value=f"Signed in as **{name}** ({caller.role})")


def _tab_name(title: str):
    name = title.lower()
    return lambda: name


# What a browser comes back to after a reload (or in a second tab): kept in its localStorage, encrypted.
VIEW_STORAGE_KEY = "studio-last-view"
BROWSER_KEY_FILE = ".studio-browser-key"


def _browser_secret(context: AppContext) -> str:
    """The key BrowserState encrypts with, kept in the workspace so a restart still reads what it wrote."""
    path = context.workspace / BROWSER_KEY_FILE
    try:
        if path.is_file():
            return path.read_text().strip()
        context.workspace.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(24)
        path.write_text(key)
        path.chmod(0o600)
        return key
    except OSError:  # a read-only workspace: remembered until the studio restarts
        return secrets.token_urlsafe(24)


def restored_view(context: AppContext, saved: dict | None, initial_project: str = "") -> tuple[str, str]:
    """(project root, tab id) a page opens on: the browser's last view when that project still opens
    (the server checks it like any other path), else `initial_project` on the Data tab."""
    saved = saved if isinstance(saved, dict) else {}
    project, tab = str(saved.get("project") or ""), str(saved.get("tab") or "data")
    if project:
        try:
            project = str(context.open_project(project).root)
        except StudioError:
            project = ""
    if tab not in {title.lower() for title, _ in TABS}:
        tab = "data"
    return (project, tab) if project else (initial_project, "data")


UPLOAD_CLEANUP = (30 * 60, 2 * 3600)  # Blocks(delete_cache=(every N s, files older than M s))


def build_app(context: AppContext, initial_project: str = "") -> gr.Blocks:
    """The whole studio. A page opens on the project and tab its browser showed last (a reload, a second
    tab), else on `initial_project` (a path)."""
    # Uploads and display copies older than 2 hours are removed every 30 minutes (and all at shutdown):
    # Gradio keeps every upload otherwise, so a shared link's users would fill the disk. The studio makes
    # its display copies again when asked (studio.ui.media); imports copy files into the project at once.
    with gr.Blocks(title=APP_TITLE, delete_cache=UPLOAD_CLEANUP) as app:
        with gr.Row(elem_id="studio-header"):
            gr.Markdown(f"# {APP_TITLE}\nLabel a few hundred images, train a classifier, check it, use it.")
            project_label = gr.Markdown(_header_text(""), elem_id="studio-project")
            with gr.Column(scale=0, min_width=260, elem_id="studio-account", visible=False) as account_box:
                account_label = gr.Markdown()
                # Gradio's /logout ends every session of this user on the server and clears the cookie
                gr.Button("Sign out", link="logout", size="sm", variant="secondary")
        # The shared project: starts empty in each session and is set on load, so `.change` fires for all
        # tabs.
        binding = ProjectBinding(
            root=gr.Textbox(value="", visible="hidden", elem_id="project-root", label="project"),
            version=gr.Number(value=0, visible="hidden", elem_id="project-version", label="data version"),
            tab=gr.Textbox(value="data", visible="hidden", elem_id="current-tab", label="tab"),
        )
        saved_view = gr.BrowserState({"project": "", "tab": "data"}, storage_key=VIEW_STORAGE_KEY,
                                     secret=_browser_secret(context))
        with gr.Tabs(elem_id="studio-tabs") as tabs:
            for title, module_name in TABS:
                module = importlib.import_module(module_name)
                with gr.Tab(title, id=title.lower(), elem_id=f"tab-{title.lower()}") as tab:
                    module.build(context, binding)
                tab.select(_tab_name(title), None, binding.tab, api_visibility="private")
        binding.root.change(_header_text, binding.root, project_label, api_visibility="private")

        @requires("viewer")
        @user_errors
        def restore(saved: dict | None) -> dict:
            project, tab = restored_view(context, saved, initial_project)
            return {binding.root: project, binding.tab: tab, tabs: gr.Tabs(selected=tab)}

        @requires("viewer")
        @user_errors
        def remember(root: str, tab: str) -> dict:
            return {"project": root or "", "tab": tab or "data"}

        app.load(restore, saved_view, [binding.root, binding.tab, tabs], api_visibility="private")
        # Read again at each tab switch: an owner may change a role in the users file while the page is open.
        for trigger in (app.load, binding.tab.change):
            trigger(_account_view, None, [account_box, account_label], api_visibility="private")
        for trigger in (binding.root.change, binding.tab.change):
            trigger(remember, [binding.root, binding.tab], saved_view, api_visibility="private")
    return app
