"""`studio ...` console commands: the same calls as the UI, headless, with `--json` output.

Each command module exposes `register(subparsers)`; a handler takes the parsed args and returns a
result (a dict or list) printed as JSON with `--json`, or as text otherwise. Errors the user can fix
are raised as StudioError: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from studio.errors import StudioError


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as a StudioError (one line, exit 2) instead of usage spam."""

    def error(self, message: str):
        raise StudioError(f"{message} (see `{self.prog} --help`)")  # prog: "studio" or "studio train"


def add_command(subparsers, name: str, handler, help_text: str, text=None) -> argparse.ArgumentParser:
    """One subcommand with the `--json` flag every command takes; `text` formats the plain output."""
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--json", action="store_true", help="print the result as JSON (last line of stdout)")
    parser.set_defaults(handler=handler, text=text)
    return parser


def run_argument(given: str) -> str:
    """A RUN argument as given, or for a project folder its newest finished run with a model (the one the
    Label tab's suggestions use), said on stderr."""
    from pathlib import Path

    from studio.data.store import DB_NAME

    path = Path(given).expanduser()
    if not (path / DB_NAME).is_file():
        _note_unfinished(path)
        return given
    from studio.service.runs import latest_model_run

    run = latest_model_run(path)
    if run is None:
        raise StudioError(f"The project {given} has no finished run with a model yet: `studio train {given}` "
                          "trains one.")
    print(f"Using {run.name}, the project's newest finished run with a model.", file=sys.stderr)
    return str(run)


def _note_unfinished(run) -> None:
    """A run that did not finish still has the checkpoint it saved last: usable, but say so."""
    from studio.service.runs import run_status

    folder = run.parent if run.is_file() else run
    status = run_status(folder) if folder.is_dir() else None
    if status in (None, "done") or not (folder / "model.pt").is_file():  # no model: the error says why
        return
    state = "still training, or interrupted" if status == "running" else status
    print(f"note: the run {folder.name} did not finish ({state}); its model is the checkpoint it saved "
          "before that, which may predict worse than a finished run.", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from studio.cli import curate_commands, data_commands, export_commands, train_commands, user_commands

    parser = _Parser(prog="studio", description="Build image classifiers from a few labeled images.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in (data_commands, train_commands, export_commands, curate_commands, user_commands):
        module.register(sub)
    return parser


def _print_text(result) -> None:
    if isinstance(result, str):
        print(result)
    elif isinstance(result, dict):
        for key, value in result.items():
            print(f"{key}: {value if not isinstance(value, (dict, list)) else json.dumps(value)}")
    elif isinstance(result, list):
        for item in result:
            print(json.dumps(item) if not isinstance(item, str) else item)
    elif result is not None:
        print(result)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`studio info --json | head -c 100`): the work is done and saved, only its
        # printout is cut short. Exit quietly, as Unix tools do, instead of a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit would raise again
        return 141  # 128 + SIGPIPE, what a shell reports for a tool stopped by a closed pipe


def _main(argv: list[str] | None) -> int:
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra:  # say which command's help lists the right flags
            raise StudioError(
                f"unrecognized arguments: {' '.join(extra)} (see `studio {args.command} --help`)"
            )
        result = args.handler(args)
    except StudioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    if getattr(args, "json", False):
        print(json.dumps(result, default=str))
    elif getattr(args, "text", None) is not None:
        print(args.text(result))
    else:
        _print_text(result)
    return getattr(args, "exit_code", 0)  # a handler sets it when its result is not a full success
