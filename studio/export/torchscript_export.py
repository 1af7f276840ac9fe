"""Write the pixels-to-probabilities graph as TorchScript, with class names and preprocessing inside."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from studio.errors import StudioError
from studio.export.graph import PixelsToProbabilities, example_input


def write_torchscript(module: PixelsToProbabilities, path: Path, *, class_names: list[str],
                      preprocessing: dict) -> Path:
    """Trace (timm models are static graphs) and save; classes.json and preprocessing.json ride along
    as extra files, readable with `torch.jit.load(path, _extra_files={"classes.json": ""})`."""
    extra = {"classes.json": json.dumps(class_names), "preprocessing.json": json.dumps(preprocessing)}
    with warnings.catch_warnings():
        # torch marks TorchScript deprecated; the format is still what many deployments load.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        try:
            with torch.no_grad():
                traced = torch.jit.trace(module, (example_input(preprocessing),), check_trace=False)
            torch.jit.save(traced, str(path), _extra_files=extra)
        except Exception as error:
            raise StudioError(
                f"This backbone could not be exported to TorchScript ({type(error).__name__}: {error}). "
                "Try --format onnx, or train with another backbone."
            ) from error
    return path
