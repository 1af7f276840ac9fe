"""Augment tab: pick a preset or set each operation's strength, see augmented samples, keep the config.

The saved config is the project's current augmentation (`studio.augment.load_project_augment`), which the
Train tab uses for the next run.
"""

from __future__ import annotations

import random

import gradio as gr
import numpy as np
from PIL import Image

from studio.augment import (
    PRESET_NAMES,
    PRESETS,
    AugmentConfig,
    describe,
    load_project_augment,
    preview,
    save_project_augment,
)
from studio.data.imaging import load_rgb
from studio.data.store import Project
from studio.errors import StudioError
from studio.ui.access import requires
from studio.ui.context import AppContext, ProjectBinding
from studio.ui.feedback import by_component, user_errors

SAMPLES = 12
PREVIEW_SOURCE_PX = 448  # decode the source image at about this size: previews stay fast for big photos
PREVIEW_SIZE = 224
CUSTOM = "custom"

# (field, label, minimum, maximum, step, help)
SLIDERS = [
    ("hflip", "Horizontal flip", 0.0, 1.0, 0.05, "probability"),
    ("vflip", "Vertical flip", 0.0, 1.0, 0.05, "probability (for images without an up)"),
    ("rotate", "Rotation", 0.0, 180.0, 1.0, "max degrees either way"),
    ("scale", "Scale / crop", 0.05, 1.0, 0.05, "smallest crop area kept (1 = no random crop)"),
    ("color_jitter", "Color jitter", 0.0, 0.5, 0.01, "brightness/contrast/saturation ±"),
    ("blur", "Blur", 0.0, 1.0, 0.05, "probability of a mild blur"),
    ("randaugment_n", "RandAugment operations", 0, 6, 1,
     "random edits per image (contrast, rotation, shear, ...); 0 turns it off"),
    ("randaugment_m", "RandAugment magnitude", 0.0, 30.0, 0.5, "how strong each edit is; 9 is typical"),
    ("cutmix", "CutMix", 0.0, 4.0, 0.1,
     "pastes a patch of one training image into another, labels mixed by area; 1 is typical, 0 = off"),
    ("mixup", "MixUp", 0.0, 4.0, 0.1,
     "blends two training images and their labels; 0.2 is typical, 0 = off"),
    ("mix_prob", "Mix probability", 0.0, 1.0, 0.05, "share of training batches CutMix or MixUp mixes"),
]
FIELDS = [name for name, *_ in SLIDERS]
HELP = (
    "Augmentation shows the model varied copies of your training images. Start from a preset, adjust the "
    "strengths, and check the samples: if a sample no longer looks like its class, it is too strong. "
    "**Use for training** saves the exact settings below; the next run in the Train tab uses them. "
    "CutMix/MixUp mix two training images and show here when a second image is available."
)


def config_from(preset_name: str, values: list[float]) -> AugmentConfig:
    """The config for the sliders: named after the preset while the values still match it."""
    strengths = dict(zip(FIELDS, values))
    strengths["randaugment_n"] = round(strengths["randaugment_n"] or 0)
    base = PRESETS.get(preset_name)
    same = base is not None and all(abs(float(base[k]) - float(v)) < 1e-9 for k, v in strengths.items())
    return AugmentConfig(preset=preset_name if same else CUSTOM, **strengths)


def _source_image(project: Project, image_id: int) -> np.ndarray:
    image = load_rgb(project.image_path(int(image_id)), draft_size=PREVIEW_SOURCE_PX)
    image.thumbnail((PREVIEW_SOURCE_PX, PREVIEW_SOURCE_PX), Image.Resampling.BILINEAR)
    return np.asarray(image)


def _partner(project: Project, image_id: int, seed: int) -> np.ndarray | None:
    """Another image (another class when there is one) to show CutMix/MixUp with."""
    data = project.dataset()
    if len(data) < 2:
        return None
    own = data.loc[data["image_id"] == image_id, "label"]
    others = data[(data["image_id"] != image_id) & (data["label"] != (own.iloc[0] if len(own) else None))]
    others = others if len(others) else data[data["image_id"] != image_id]
    pick = others.iloc[random.Random(seed).randrange(len(others))]
    return _source_image(project, int(pick["image_id"]))


def build(context: AppContext, binding: ProjectBinding) -> None:
    gr.Markdown(HELP, elem_classes="help-text")
    with gr.Row():
        with gr.Column(scale=1):
            preset_name = gr.Dropdown([*PRESET_NAMES, CUSTOM], value="light", label="Preset",
                                      info="changing a strength below makes it custom")
            sliders = []
            for first in range(0, len(SLIDERS), 2):  # two per row keeps all eleven in view
                with gr.Row():
                    for _, label, low, high, step, info in SLIDERS[first:first + 2]:
                        sliders.append(gr.Slider(low, high, step=step, label=label, info=info, min_width=160))
        with gr.Column(scale=1):
            with gr.Row(elem_classes="align-end"):
                image_id = gr.Number(label="Image id", precision=0, minimum=1, scale=2)
                seed = gr.Number(label="Seed", value=0, precision=0, scale=1)
                random_image = gr.Button("Another image", scale=1)
                redraw = gr.Button("Draw again", variant="primary", scale=1)
            samples = gr.Gallery(columns=4, height=520, show_label=False, object_fit="contain",
                                 allow_preview=True, elem_id="augment-samples")
            summary = gr.Markdown()
            with gr.Row(elem_classes="align-end"):
                use = gr.Button("Use for training", variant="primary")
                saved = gr.Markdown()
            config_json = gr.JSON(label="Exact configuration shown (\"Use for training\" saves it)")

    def saved_text(project: Project, config: AugmentConfig) -> str:
        current = load_project_augment(project.root)
        if current == config:
            return "✓ The next run trains with these settings."
        return f"Not saved yet. The next run uses: _{describe(current)}_ ({current.preset})."

    @requires("viewer")
    @user_errors
    def draw(root: str, picked, seed_value, preset_value, *values) -> dict:
        config = config_from(preset_value, list(values))
        if not root:
            return {samples: [], summary: describe(config), config_json: config.to_dict(),
                    saved: "Open a project to preview and save."}
        project = context.open_project(root)
        if picked is None:
            data = project.dataset()
            if data.empty:
                return {samples: [], summary: describe(config), config_json: config.to_dict(),
                        saved: saved_text(project, config)}
            picked = int(data["image_id"].iloc[0])
        seed_number = int(seed_value or 0)
        source = _source_image(project, picked)
        partner = _partner(project, int(picked), seed_number) if config.mixing else None
        images = preview(source, config, n=SAMPLES, seed=seed_number, image_size=PREVIEW_SIZE, other=partner)
        return {samples: images, summary: f"**{config.preset}**: {describe(config)}",
                config_json: config.to_dict(), saved: saved_text(project, config), image_id: int(picked)}

    draw_in = [binding.root, image_id, seed, preset_name, *sliders]
    draw_out = [samples, summary, config_json, saved, image_id]

    @requires("viewer")
    @user_errors
    def load_project(root: str) -> dict:
        """Show the project's saved config and a first image."""
        config = load_project_augment(context.open_project(root).root) if root else AugmentConfig()
        return {preset_name: config.preset, **by_component(sliders, [getattr(config, f) for f in FIELDS]),
                image_id: None}

    for trigger in (binding.root.change, binding.version.change):
        trigger(load_project, binding.root, [preset_name, *sliders, image_id],
                api_visibility="private").then(draw, draw_in, draw_out, api_visibility="private")

    @requires("viewer")
    @user_errors
    def apply_preset(name: str) -> dict:
        if name == CUSTOM:
            return gr.skip()
        return by_component(sliders, [PRESETS[name][field] for field in FIELDS])

    preset_name.input(apply_preset, preset_name, sliders, api_visibility="private").then(
        draw, draw_in, draw_out, api_visibility="private")
    for slider in sliders:
        slider.release(lambda p, *v: config_from(p, list(v)).preset, [preset_name, *sliders], preset_name,
                       api_visibility="private").then(draw, draw_in, draw_out, api_visibility="private")
    redraw.click(lambda s: random.randrange(1_000_000), seed, seed, api_visibility="private").then(
        draw, draw_in, draw_out, api_visibility="private")
    image_id.submit(draw, draw_in, draw_out, api_visibility="private")
    seed.submit(draw, draw_in, draw_out, api_visibility="private")

    @requires("viewer")
    @user_errors
    def another_image(root: str, picked):
        data = context.open_project(root).dataset()
        if data.empty:
            raise StudioError("this project has no images yet: import some in the Data tab")
        choices = [int(i) for i in data["image_id"] if i != picked] or [int(data["image_id"].iloc[0])]
        return random.choice(choices)

    random_image.click(another_image, [binding.root, image_id], image_id, api_visibility="private").then(
        draw, draw_in, draw_out, api_visibility="private")

    @requires("owner")
    @user_errors
    def use_for_training(root: str, preset_value, *values):
        project = context.open_project(root)
        config = config_from(preset_value, list(values))
        path = save_project_augment(project.root, config)
        gr.Info(f"Saved to {path.name}: the next run trains with {describe(config)}.")
        return saved_text(project, config)

    use.click(use_for_training, [binding.root, preset_name, *sliders], saved, api_visibility="private")
