"""Export a trained run as an ONNX or TorchScript bundle that predicts exactly like the studio."""

from studio.export.bundle import FORMATS, export_run, export_zip, is_bundle

__all__ = ["FORMATS", "export_run", "export_zip", "is_bundle"]
