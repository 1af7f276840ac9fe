"""The predict-only demo app, driven through gradio_client on 127.0.0.1 like a visitor would."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from conftest import CLASSES, val_paths
from gradio_client import Client, handle_file
from PIL import Image

from studio.errors import StudioError
from studio.predict.checkpoint import load_model
from studio.predict.inference import TTA_VIEWS
from studio.predict.predictor import Predictor
from studio.serve.demo_app import build_demo, launch_demo


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _confidences(result) -> dict[str, float]:
    return {item["label"]: item["confidence"] for item in result["confidences"]}


@pytest.fixture
def served():
    demos = []

    def serve(path):
        demo = build_demo(path)
        demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
        demos.append(demo)
        return Client(demo.local_url, verbose=False)

    yield serve
    for demo in demos:
        demo.close()


def test_demo_of_a_run_predicts_like_the_studio_with_and_without_tta(trained_run, served):
    client = served(trained_run)
    path = val_paths(trained_run)[0]
    predictor = Predictor(load_model(trained_run), "cpu")
    image = np.asarray(Image.open(path).convert("RGB"))
    for tta in (False, True):
        result, _note = client.predict(handle_file(path), tta, api_name="/predict")
        expected = predictor.probabilities([image], TTA_VIEWS if tta else TTA_VIEWS[:1]).mean(axis=1)[0]
        confidences = _confidences(result)
        assert set(confidences) == set(CLASSES)
        assert result["label"] == CLASSES[int(expected.argmax())]
        assert (
            max(abs(confidences[c] - float(expected[i])) for i, c in enumerate(CLASSES)) < 2e-2
        )  # bf16 CPUs


def test_demo_of_an_onnx_bundle_predicts_through_onnxruntime(trained_run, onnx_bundle, served):
    dest, _ = onnx_bundle
    client = served(dest)
    path = val_paths(trained_run)[1]
    from studio.export.standalone import BundleModel

    bundle = BundleModel(dest)
    image = np.asarray(Image.open(path).convert("RGB"))
    for tta in (False, True):
        result, _note = client.predict(handle_file(path), tta, api_name="/predict")
        confidences = _confidences(result)
        expected = bundle.probabilities([image], tta=tta)[0]
        assert max(abs(confidences[c] - float(expected[i])) for i, c in enumerate(CLASSES)) < 1e-4


def test_share_link_without_auth_is_refused_before_launch(trained_run):
    with pytest.raises(StudioError, match="--no-auth"):
        launch_demo(trained_run, share=True, block=False)
    with pytest.raises(StudioError, match="USER:PASS"):
        launch_demo(trained_run, share=True, auth="justaname", block=False)


def test_demo_needs_a_run_or_a_bundle(tmp_path):
    with pytest.raises(StudioError, match="neither a run folder"):
        build_demo(tmp_path)


def test_the_demo_says_why_it_is_not_sure():
    from studio.serve.models import DemoModel

    class Flagging:  # a classifier whose run flags every image, as unlike its training images or not
        class_names, tta = ["apple", "pear"], False

        def __init__(self, unlike: bool) -> None:
            self.unlike = unlike

        def verdict(self, image, tta):
            return np.array([0.55, 0.45]), True, self.unlike

    image = np.zeros((8, 8, 3), dtype=np.uint8)
    top, note = DemoModel(Flagging(True), "t", "d", "run").verdict(image)
    assert top == {"apple": 0.55, "pear": 0.45} and note.startswith("Not sure: unlike the training images")
    _, note = DemoModel(Flagging(False), "t", "d", "run").verdict(image)
    assert note.startswith("Not sure: none of the classes fits well")


def test_a_small_file_that_unpacks_huge_is_refused_before_it_is_decoded(trained_run, served, tmp_path):
    # 8000 x 8000 one-colour pixels: a few hundred KB on disk, 64 MP (192 MB as RGB) once decoded
    bomb = tmp_path / "bomb.png"
    Image.new("L", (8000, 8000)).save(bomb, optimize=True)
    client = served(trained_run)
    with pytest.raises(Exception, match="megapixels|pixels"):
        client.predict(handle_file(str(bomb)), False, api_name="/predict")


def test_demo_with_a_password_needs_it_refuses_other_sites_and_throttles_sign_in(trained_run):
    import httpx

    from studio.sharing.login_guard import PER_CLIENT_FAILURES

    port = _free_port()
    demo = launch_demo(trained_run, auth="guest:s3cret", host="127.0.0.1", port=port, block=False)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            # signed out: only the sign-in page answers (Gradio leaves /reset without a check of its own)
            assert http.post("/gradio_api/reset", json={"event_id": "x"}).status_code == 401
            assert http.get("/").status_code == 200
            assert http.post("/login", data={"username": "guest", "password": "s3cret"}).status_code == 200
            assert http.post("/gradio_api/reset", json={"event_id": "x"}).status_code != 401
            # the queue's limits cannot be skipped through Gradio's direct route
            direct = http.post("/gradio_api/run/predict",
                               json={"data": [], "fn_index": 0, "session_hash": "x"})
            assert direct.status_code == 404 and "join the queue" in direct.text
            # another site's page riding the visitor's sign-in (studio.sharing.same_origin)
            evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site",
                    "Sec-Fetch-Mode": "cors"}
            upload = http.post("/gradio_api/upload", headers=evil, files=[("files", ("a.png", b"\0"))])
            assert upload.status_code == 403
            codes = [http.post("/login", data={"username": "guest", "password": "wrong"}).status_code
                     for _ in range(PER_CLIENT_FAILURES + 1)]
        assert codes == [400] * PER_CLIENT_FAILURES + [429]
    finally:
        demo.close()
