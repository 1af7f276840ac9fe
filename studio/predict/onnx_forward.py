"""float32 CPU inference through onnxruntime: the same graph the exported bundles run.

On CPU, onnxruntime runs EfficientNet-Lite about twice as fast as float32 torch eager (bench/engine.py),
and it is the runtime of the exported bundle, so the studio and its exports compute the same numbers.
A model is exported once (in memory) when a runner first uses it; models the exporter cannot handle
run in float32 torch instead (same numbers, slower).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch

from studio.export.standalone import cpu_session_options
from studio.predict.device import cpu_count

OPSET = 17


class OnnxForward:
    """A frozen copy of `model` (N x 3 x H x W float32 in, its outputs out) in an onnxruntime session."""

    def __init__(self, model: torch.nn.Module, image_size: int) -> None:
        import onnxruntime

        buffer = io.BytesIO()
        example = torch.zeros(2, 3, image_size, image_size)
        was_training = model.training
        model.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=OPSET,
                              input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        model.train(was_training)
        self.session = onnxruntime.InferenceSession(
            buffer.getvalue(), cpu_session_options(cpu_count()), providers=["CPUExecutionProvider"]
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().float().contiguous().cpu().numpy())
        return torch.from_numpy(self.session.run(None, {"x": array})[0])


def try_onnx_forward(model: torch.nn.Module, image_size: int) -> OnnxForward | None:
    """The onnxruntime session for `model`, or None when it cannot be exported (then torch runs it)."""
    try:
        return OnnxForward(model, image_size)
    except Exception:  # noqa: BLE001 - the exporter raises many types for unsupported operators
        return None
