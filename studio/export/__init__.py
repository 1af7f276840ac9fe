"""Export a trained run as an ONNX or TorchScript bundle that predicts exactly like the studio."""

from studio._lazy import lazy_exports
from studio.export.standalone import MODEL_FILES

FORMATS = tuple(MODEL_FILES)

_EXPORTS = {name: "studio.export.bundle" for name in ("export_run", "export_zip", "is_bundle")}
__all__ = ["FORMATS", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
