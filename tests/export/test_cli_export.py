"""`studio export-model` and `studio serve-model` flags (through the command module's own parser)."""

from __future__ import annotations

import argparse
import json

import pytest

from studio.cli import _Parser
from studio.cli.export_commands import register
from studio.errors import StudioError


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(prog="studio")
    register(parser.add_subparsers(dest="command", parser_class=_Parser))
    return parser.parse_args(argv)


def test_export_model_command_writes_a_bundle_and_reports_parity(trained_run, tmp_path):
    args = _parse(
        ["export-model", str(trained_run), str(tmp_path / "b"), "--format", "torchscript", "--json"]
    )
    result = args.handler(args)
    assert json.loads(json.dumps(result, default=str))["format"] == "torchscript"
    assert (tmp_path / "b" / "model.torchscript.pt").is_file()
    assert "max abs diff" in args.text(result)


def test_serve_model_refuses_a_share_link_without_auth(trained_run):
    args = _parse(["serve-model", str(trained_run), "--share"])
    with pytest.raises(StudioError, match="--auth USER:PASS"):
        args.handler(args)  # refused before anything is built or launched


def test_serve_model_flag_errors_are_one_line_user_errors(trained_run):
    with pytest.raises(StudioError):
        _parse(["serve-model", str(trained_run), "--auth", "a:b", "--no-auth"])
    args = _parse(["serve-model", str(trained_run), "--share", "--auth", "nopassword"])
    with pytest.raises(StudioError, match="USER:PASS"):
        args.handler(args)
    with pytest.raises(StudioError):
        _parse(["export-model", str(trained_run), "out", "--format", "tflite"])
