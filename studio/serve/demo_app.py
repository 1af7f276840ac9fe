"""A predict-only Gradio page for one model: upload or webcam, top-k bars, a TTA toggle. Nothing else:
no training and no access to the project's images, so it is safe to share as a public demo."""

from __future__ import annotations

import functools
import hmac
import os
from pathlib import Path

import gradio as gr
import numpy as np

from studio.data.imaging import load_rgb
from studio.errors import StudioError
from studio.serve.models import DemoModel, load_demo_model
from studio.sharing.asgi import sharing_middleware
from studio.sharing.login_guard import SIGN_IN_MESSAGE, LoginGuard

TOP_K = 5


def build_demo(run_or_bundle_path: str | os.PathLike, *, top_k: int = TOP_K) -> gr.Blocks:
    """The demo page; its prediction endpoint is `/predict(image, tta) -> ({class: probability}, note)`, the
    note "" or why the run is not sure ("Not sure: unlike the training images ...")."""
    model = load_demo_model(run_or_bundle_path)
    return build_demo_for(model, top_k=top_k)


def build_demo_for(model: DemoModel, *, top_k: int = TOP_K) -> gr.Blocks:
    k = max(1, min(top_k, len(model.class_names)))
    tta_help = "averages the crop and the whole frame, each also mirrored (the studio's TTA)"

    def predict(image: str | None, tta: bool) -> tuple[dict[str, float], str]:
        if image is None:
            raise gr.Error("Upload a photo or take one with the webcam first.")
        try:
            # The upload arrives as a path, undecoded: load_rgb checks its size in pixels first, so a
            # small file that unpacks to a gigapixel image is refused before it takes the memory.
            pixels = np.asarray(load_rgb(image))
            top, unsure = model.verdict(pixels, tta=bool(tta), top_k=k)
        except StudioError as error:
            raise gr.Error(str(error)) from error
        return top, f"**{unsure}**" if unsure else ""  # the run's own "not sure" rule, as the studio says it

    with gr.Blocks(title=f"Classifier demo: {model.title}", analytics_enabled=False) as demo:
        gr.Markdown(f"## Image classifier\n{model.description}")
        with gr.Row():
            with gr.Column():
                image = gr.Image(sources=["upload", "webcam"], type="filepath", image_mode=None,
                                 label="Photo")
                tta = gr.Checkbox(value=model.tta, label="Test-time augmentation",  # the run's choice
                                  info=tta_help)
                button = gr.Button("Classify", variant="primary")
            with gr.Column():
                result = gr.Label(num_top_classes=k, label=f"Top {k}")
                unsure = gr.Markdown()
        button.click(predict, [image, tta], [result, unsure], api_name="predict")
        image.change(predict_or_clear(predict), [image, tta], [result, unsure], api_visibility="private")
    return demo


def predict_or_clear(predict):
    """Predict on a new image; clear the bars when the image is removed (no error for that)."""

    def run(image: str | None, tta: bool) -> tuple[dict[str, float] | None, str]:
        return (None, "") if image is None else predict(image, tta)

    return run


def _matches(credentials: tuple[str, str], user: str, password: str) -> bool:
    """The demo's one account (no roles, no label history: any name goes), compared in constant time."""
    return hmac.compare_digest(user.encode(), credentials[0].encode()) & hmac.compare_digest(
        password.encode(), credentials[1].encode())


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """USER:PASS -> (user, password); StudioError for anything else."""
    if value is None:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise StudioError("--auth takes USER:PASS (both non-empty), e.g. --auth guest:s3cret.")
    return user, password


def check_share_auth(share: bool, auth: tuple[str, str] | None, no_auth: bool) -> None:
    """A share link is public on the internet: require a password unless the user opts out explicitly."""
    if share and auth is None and not no_auth:
        raise StudioError(
            "A share link makes the demo reachable by anyone on the internet: add --auth USER:PASS, "
            "or --no-auth to share it without a password on purpose."
        )
    if auth is not None and no_auth:
        raise StudioError("--auth and --no-auth contradict each other; pass one of them.")


def launch_demo(
    path: str | os.PathLike,
    *,
    share: bool = False,
    auth: str | None = None,
    no_auth: bool = False,
    host: str = "127.0.0.1",
    port: int | None = None,
    block: bool = True,
    max_upload_mb: int = 20,
) -> gr.Blocks:
    """Check the flags, build the page, launch it (blocking unless `block=False`)."""
    if max_upload_mb < 1:
        raise StudioError(f"--max-upload-mb must be at least 1, got {max_upload_mb}")
    credentials = parse_auth(auth)
    check_share_auth(share, credentials, no_auth)
    demo = build_demo(Path(path))
    demo.queue(default_concurrency_limit=2, max_size=32, api_open=False)  # no `/run/` beside the queue
    # The studio's sign-in guard: password checks off the event loop, failed sign-ins throttled.
    guard = LoginGuard(functools.partial(_matches, credentials)) if credentials else None
    demo.launch(
        share=share,
        auth=guard.authenticate if guard else None,
        auth_message=SIGN_IN_MESSAGE if guard else None,
        # With a password: no cross-site requests, a sign-in throttle, idle sessions end, an upload budget
        # (sharing.asgi); an open demo may be called from other pages, as Gradio's own clients do.
        app_kwargs={"middleware": sharing_middleware(guard)} if guard else None,
        server_name=host,
        server_port=port,
        max_file_size=f"{max_upload_mb}mb",
        prevent_thread_lock=not block,
        show_error=False,
        quiet=not block,
    )
    return demo
