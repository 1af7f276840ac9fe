"""Exporting a run's model for download (the Evaluate tab's "Export the model"): the bundle `studio
export-model` writes, zipped, with what its parity check measured. No Gradio here."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from studio.errors import StudioError

FORMATS = {"onnx": "ONNX (runs with onnxruntime)", "torchscript": "TorchScript (runs with torch)"}


def export_job(run_dir: Path, fmt: str, folder: Path):
    """A service job function: export `run_dir` as `fmt` into a zip in `folder`; returns {"zip", "format",
    "parity"} (the bundle's parity.json: how closely it predicts like the studio)."""
    if fmt not in FORMATS:
        raise StudioError(f"Unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}.")

    def run(_ctx: Any) -> dict[str, Any]:
        from studio.export import export_zip

        folder.mkdir(parents=True, exist_ok=True)
        archive = export_zip(run_dir, fmt, cache_dir=folder)
        with zipfile.ZipFile(archive) as opened:
            parity_name = next(n for n in opened.namelist() if n.endswith("/parity.json"))
            parity = json.loads(opened.read(parity_name))
        return {"zip": str(archive), "format": fmt, "parity": parity}

    return run


def export_summary(result: dict[str, Any], run_name: str) -> str:
    """What the tab says after an export: where the numbers were checked and how to use the bundle."""
    parity = result["parity"]
    checked = (f"{parity.get('validation_images', 0)} validation and {parity.get('generated_images', 0)} "
               "generated images")
    differ = (f"{parity['max_abs_diff']:.1e} ({parity['tta_max_abs_diff']:.1e} with TTA; the limit is "
              f"{parity['tolerance']:.0e})")
    return (f"Exported run **{run_name}** as {FORMATS[result['format']]}. Checked against the studio on "
            f"{checked}: probabilities differ by at most {differ}, the same top class on "
            f"{parity['same_top1']} of {parity['images']}. Unzip it and run `python predict.py photo.jpg "
            "--json`; its model_card.md says what the model was trained on and how it decides \"not sure\".")
