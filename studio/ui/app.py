"""The studio's Gradio app: a header, the shared project binding, and the six tabs in order.

Look (theme, CSS, keyboard script) is passed to `launch()` (Gradio 6 takes them there), see `launcher`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import gradio as gr

from studio.ui.access import requires
from studio.ui.context import AppContext, ProjectBinding

ASSETS = Path(__file__).resolve().parents[2] / "assets"
APP_TITLE = "Image Classifier Studio"

THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="sky", neutral_hue="slate")

CSS = """
#studio-header {align-items: center; gap: 12px; margin-bottom: 4px;}
#studio-header h1 {margin: 0; font-size: 1.5rem;}
#studio-project {text-align: right; color: var(--body-text-color-subdued);}
.help-text {color: var(--body-text-color-subdued); font-size: 0.92rem;}
#label-image img {object-fit: contain;}
.class-button {min-width: 120px;}
.selected-count {font-weight: 600;}
.align-end {align-items: flex-end !important;}
.align-end button {max-height: 46px;}
/* Thumbnail captions such as "dandelion→sunflower 61%": wrap instead of cutting the end off. */
.wrap-captions .caption-label {white-space: normal !important; max-width: 100% !important; opacity: 0.9 !important;}
"""

# Keyboard shortcuts of the Label tab: the listener clicks that tab's buttons (elem_ids below), and only
# while the tab is visible and no text field has the focus.
HEAD = """
<script>
document.addEventListener('keydown', (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (target && (['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName) || target.isContentEditable)) return;
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
def _header_text(root: str) -> str:
    return f"Project: **{Path(root).name}**" if root else "No project open"


def _tab_name(title: str):
    name = title.lower()
    return lambda: name


def build_app(context: AppContext, initial_project: str = "") -> gr.Blocks:
    """The whole studio. `initial_project` (a path) is opened in every new browser session."""
    with gr.Blocks(title=APP_TITLE) as app:
        with gr.Row(elem_id="studio-header"):
            gr.Markdown(f"# {APP_TITLE}\nLabel a few hundred images, train a classifier, check it, use it.")
            project_label = gr.Markdown(_header_text(""), elem_id="studio-project")
        # The shared project: starts empty in each session and is set on load, so `.change` fires for all tabs.
        binding = ProjectBinding(
            root=gr.Textbox(value="", visible="hidden", elem_id="project-root", label="project"),
            version=gr.Number(value=0, visible="hidden", elem_id="project-version", label="data version"),
            tab=gr.Textbox(value="data", visible="hidden", elem_id="current-tab", label="tab"),
        )
        with gr.Tabs(elem_id="studio-tabs"):
            for title, module_name in TABS:
                module = importlib.import_module(module_name)
                with gr.Tab(title, id=title.lower(), elem_id=f"tab-{title.lower()}") as tab:
                    module.build(context, binding)
                tab.select(_tab_name(title), None, binding.tab, api_visibility="private")
        binding.root.change(_header_text, binding.root, project_label, api_visibility="private")
        app.load(lambda: initial_project, None, binding.root, api_visibility="private")
    return app
