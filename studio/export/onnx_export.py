"""Write the pixels-to-probabilities graph (and novelty score) as ONNX, with class names and preprocessing
in its metadata."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import onnx
import torch

from studio.errors import StudioError
from studio.export.graph import INPUT_NAME, PixelsToProbabilities, example_input

OPSET = 17


def write_onnx(
    module: PixelsToProbabilities, path: Path, *, class_names: list[str], preprocessing: dict
) -> Path:
    """Export with the TorchScript-based exporter (`dynamo=False`): the dynamo path needs onnxscript,
    which the studio does not install. The batch dimension is dynamic."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        try:
            torch.onnx.export(
                module, (example_input(preprocessing),), str(path), dynamo=False, opset_version=OPSET,
                input_names=[INPUT_NAME], output_names=module.output_names,
                dynamic_axes={name: {0: "batch"} for name in [INPUT_NAME, *module.output_names]},
            )
        except Exception as error:  # the exporter raises many types for unsupported operators
            raise StudioError(
                f"This backbone could not be exported to ONNX ({type(error).__name__}: {error}). "
                "Try --format torchscript, or train with another backbone."
            ) from error
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    metadata = {"class_names": json.dumps(class_names), "preprocessing": json.dumps(preprocessing),
                "producer": "studio"}
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path
