"""Export and demo commands: export-model, serve-model."""

from __future__ import annotations

import argparse

from studio.cli import run_argument
from studio.export import FORMATS

DEMO_MAX_UPLOAD_MB = 20  # one photo per prediction


def register(subparsers) -> None:
    """Add the export and demo subcommands to the `studio` parser."""
    parser = subparsers.add_parser(
        "export-model", help="export a run as an ONNX or TorchScript bundle (checked for parity)",
        description="Export a run's model with its class names, preprocessing, a model card and a standalone "
                    "predict.py into DEST; fails if the export does not predict like the studio.")
    parser.add_argument("run", help="run folder (project/runs/<run>), or a project (its newest finished run)")
    parser.add_argument("dest", help="bundle folder to create (new, empty, or an earlier bundle to replace)")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (last line of stdout)")
    parser.set_defaults(handler=_export, text=_export_text)

    parser = subparsers.add_parser(
        "serve-model", help="a predict-only demo page for one run or exported bundle",
        description="Serve a demo page (upload or webcam, top-k bars, TTA toggle) for one model. "
                    "Share links need --auth USER:PASS unless --no-auth is given.")
    parser.add_argument(
        "run", help="run folder, model.pt, exported bundle folder, or a project (its newest finished run)"
    )
    parser.add_argument("--share", action="store_true", help="also create a public gradio.live link")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--auth", metavar="USER:PASS", help="require this login")
    auth.add_argument("--no-auth", action="store_true", help="allow a share link without a login")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (0.0.0.0: the whole network)"
    )
    parser.add_argument("--port", type=int, help="port (default: the first free one from 7860)")
    parser.add_argument("--max-upload-mb", type=int, default=DEMO_MAX_UPLOAD_MB, metavar="MB",
                        help=f"largest upload accepted (default {DEMO_MAX_UPLOAD_MB})")
    parser.set_defaults(handler=_serve)


def _export(args: argparse.Namespace) -> dict:
    from studio.export import export_run

    return export_run(run_argument(args.run), args.dest, args.format)


def _export_text(result: dict) -> str:
    parity = result["parity"]
    return (
        f"Exported {result['format']} bundle to {result['dest']} ({', '.join(result['files'])}); "
        f"parity with the studio: max abs diff {parity['max_abs_diff']:.2e} over {parity['images']} images."
    )


def _serve(args: argparse.Namespace) -> None:
    from studio.serve.demo_app import launch_demo

    launch_demo(
        run_argument(args.run),
        share=args.share,
        auth=args.auth,
        no_auth=args.no_auth,
        host=args.host,
        port=args.port,
        block=True,
        max_upload_mb=args.max_upload_mb,
    )
