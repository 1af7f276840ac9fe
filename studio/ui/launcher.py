"""Command-line flags of `launch.py`, and starting the app with safe server settings.

Safety rules enforced here:
- a share link (public URL) never opens without a password unless `--no-auth` is given explicitly;
- the server only serves files Gradio itself created (uploads and copies of the images the app shows):
  `allowed_paths` stays empty, so no path on disk (repo, home, workspace, /etc) is readable by URL;
- every event checks the caller's role (`studio.ui.access.install`), and Gradio's queue is bounded.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.errors import StudioError
from studio.sharing.accounts import Accounts, LiveAccounts, load_users
from studio.sharing.asgi import sharing_middleware
from studio.sharing.confinement import is_remote
from studio.sharing.login_guard import SIGN_IN_MESSAGE, LoginGuard
from studio.sharing.sessions import end_sessions

# Heavy imports (gradio, torch) wait until the flags are known to be good: a typo fails in a blink.
if TYPE_CHECKING:
    from studio.ui.context import AppContext

DEFAULT_MAX_UPLOAD_MB = 200
QUEUE_MAX_SIZE = 64  # events waiting in Gradio's queue; more get Gradio's "the queue is full" message


class _Parser(argparse.ArgumentParser):
    """Bad flags become one StudioError line (exit 2) instead of argparse's usage dump."""

    def error(self, message: str):  # argparse calls this for every bad flag
        raise StudioError(f"{message} (see `uv run launch.py --help`)")


@dataclass(frozen=True)
class LaunchOptions:
    workspace: Path
    project: Path | None
    host: str
    port: int | None
    share: bool
    auth: list[tuple[str, str]] | None
    max_upload_mb: int
    open_browser: bool
    users: Path | None = None  # --users FILE (accounts with roles)
    import_roots: tuple[
        Path, ...
    ] = ()  # --import-root DIR: folders a remote app may read besides the workspace
    confine: bool = False  # --confine: paths confined on loopback too

    @functools.cached_property
    def accounts(self) -> Accounts:
        """--auth users (owners) plus the --users file's accounts; empty: no sign-in."""
        accounts = Accounts.from_pairs(self.auth or [])
        # the users file is read again when it changes: users come and go without a restart
        return LiveAccounts(self.users, fixed=accounts) if self.users else accounts

    @property
    def remote(self) -> bool:
        return is_remote(self.host, self.share) or self.confine


def default_workspace() -> Path:
    """The per-user data folder: $XDG_DATA_HOME/studio (Linux), ~/Library/... (macOS), %APPDATA% (Windows)."""
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        base = Path(os.environ["APPDATA"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "studio"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="launch.py", description="Open the image-classifier studio in your browser.")
    parser.add_argument(
        "--workspace", metavar="DIR", help=f"folder holding your projects (default {default_workspace()})"
    )
    parser.add_argument("--project", metavar="DIR", help="open this project folder (created if new or empty)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, help="port to listen on (default: 7860 or the next free one)")
    parser.add_argument("--share", action="store_true", help="also open a public share link (needs --auth)")
    parser.add_argument(
        "--auth",
        metavar="USER:PASS|FILE",
        action="append",
        help="require a login as an owner: USER:PASS, or a file of USER:PASS lines (repeatable)",
    )
    parser.add_argument(
        "--users",
        metavar="FILE",
        help="accounts with roles (owner, labeler, viewer): a TOML or JSON file, see the README",
    )
    parser.add_argument(
        "--import-root",
        metavar="DIR",
        action="append",
        default=[],
        help="a folder a shared or network app may import from besides the workspace (repeatable)",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="allow --share without a password (anyone with the link gets in)",
    )
    parser.add_argument("--max-upload-mb", type=int, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                        help=f"largest upload accepted (default {DEFAULT_MAX_UPLOAD_MB})")
    parser.add_argument(
        "--confine",
        action="store_true",
        help="confine server paths to the workspace and --import-root folders even on this machine "
        "(always on with --share or a network --host)",
    )
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    return parser


def parse_auth(value: str) -> list[tuple[str, str]]:
    """`USER:PASS`, or the path of a file with one `USER:PASS` per line (blank lines and # comments
    skipped)."""
    path = Path(value).expanduser()
    if path.is_file():
        lines = [
            (number, line.strip())
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if line.strip() and not line.strip().startswith("#")
        ]
        if not lines:
            raise StudioError(f"--auth file {path} holds no USER:PASS lines")
        return [_user_pass(line, f"line {number} of {path}") for number, line in lines]
    return [_user_pass(value, "--auth")]


def _user_pass(text: str, where: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user.strip() or not password:
        raise StudioError(f"{where} must look like USER:PASS (or name a file of USER:PASS lines)")
    return user.strip(), password


def parse_args(argv: list[str] | None = None) -> LaunchOptions:
    args = build_parser().parse_args(argv)
    if (args.auth or args.users) and args.no_auth:
        raise StudioError("--auth/--users and --no-auth contradict each other; pass only one")
    auth = [pair for value in args.auth for pair in parse_auth(value)] if args.auth else None
    users = Path(args.users).expanduser() if args.users else None
    if users is not None:
        load_users(users)  # a bad users file fails now, with its line
    if args.share and auth is None and users is None and not args.no_auth:
        raise StudioError(
            "--share puts the studio on a public link: add --auth USER:PASS (or a file of USER:PASS lines), "
            "or pass --no-auth to share it without a password"
        )
    if args.port is not None and not 1 <= args.port <= 65535:
        raise StudioError(f"--port must be between 1 and 65535, got {args.port}")
    if args.max_upload_mb < 1:
        raise StudioError(f"--max-upload-mb must be at least 1, got {args.max_upload_mb}")
    workspace = Path(args.workspace).expanduser() if args.workspace else default_workspace()
    if workspace.exists() and not workspace.is_dir():
        raise StudioError(f"--workspace {workspace} is a file; give a folder")
    return LaunchOptions(
        workspace=workspace,
        project=Path(args.project).expanduser().resolve() if args.project else None,
        host=args.host,
        port=args.port,
        share=args.share,
        auth=auth,
        max_upload_mb=args.max_upload_mb,
        open_browser=not args.no_browser,
        users=users,
        import_roots=tuple(Path(p).expanduser().resolve() for p in args.import_root),
        confine=args.confine,
    )


def build_context(options: LaunchOptions, service: Any = None) -> tuple[AppContext, str]:
    """The app context and the project to open first ("" for none). --project is created if new or empty."""
    from studio.data.store import Project
    from studio.ui.context import AppContext, default_service

    try:
        options.workspace.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StudioError(
            f"Cannot create the workspace folder {options.workspace} ({error.strerror or error}); "
            "pass --workspace with a folder you can write to."
        ) from None
    extra = []
    initial = ""
    if options.project is not None:
        try:
            Project.open_or_create(options.project).close()
        except OSError as error:
            raise StudioError(
                f"Cannot create the project folder {options.project} ({error.strerror or error}); "
                "pass --project with a folder you can write to."
            ) from None
        extra.append(options.project)
        initial = str(options.project)
    context = AppContext(
        workspace=options.workspace,
        service=service if service is not None else default_service(),
        max_upload_mb=options.max_upload_mb,
        extra_projects=extra,
        import_roots=list(options.import_roots),
        remote=options.remote,
    )
    return context, initial


def launch_kwargs(options: LaunchOptions) -> dict[str, Any]:
    """Keyword arguments for `Blocks.launch` (server, auth, limits, look)."""
    from studio.ui.app import CSS, HEAD, THEME

    accounts = options.accounts
    guard = LoginGuard(accounts.authenticate) if accounts.enabled else None
    return {
        "server_name": options.host,
        "server_port": options.port,
        "share": options.share,
        "auth": guard.authenticate if guard else None,
        "auth_message": SIGN_IN_MESSAGE if guard else None,
        # Without accounts on loopback, only loopback Host names (a rebound domain has no sign-in to stop it).
        "app_kwargs": {"middleware": sharing_middleware(
            guard, role_of=accounts.role_of if guard else None,
            loopback_only=not (accounts.enabled or is_remote(options.host, options.share)))},
        "inbrowser": options.open_browser,
        "max_file_size": f"{options.max_upload_mb}mb",
        "allowed_paths": [],  # nothing on disk is served directly: see the module docstring
        "theme": THEME,
        "css": CSS,
        "head": HEAD,
        "footer_links": ["api", "gradio", "settings"],
        "run_history": False,  # labels and paths stay out of the browser's run log
    }


def start(
    context: AppContext,
    initial_project: str = "",
    *,
    options: LaunchOptions | None = None,
    block: bool = False,
):
    """Build and launch the app; returns (blocks, local_url). Used by launch.py and by tests (block=False)."""
    from studio.ui import access
    from studio.ui.app import build_app

    options = options or LaunchOptions(
        workspace=context.workspace, project=None, host="127.0.0.1", port=None, share=False, auth=None,
        max_upload_mb=context.max_upload_mb, open_browser=False,
    )
    app = build_app(context, initial_project=initial_project)
    access.install(app, options.accounts)
    # api_open=False: Gradio's direct `/run/<name>` route would otherwise run queued events beside the
    # queue, past its size, concurrency and per-user limits.
    app.queue(default_concurrency_limit=4, max_size=QUEUE_MAX_SIZE, api_open=False)
    if options.accounts.enabled:
        access.limit_queue_per_user(app)  # one account cannot fill the queue everyone shares
    if isinstance(options.accounts, LiveAccounts):  # a user removed from the file, or given a new password
        options.accounts.on_change = lambda names: end_sessions(app.server_app.tokens, names)
    _, local_url, _ = app.launch(prevent_thread_lock=not block, quiet=not block, **launch_kwargs(options))
    return app, local_url


def main(argv: list[str] | None = None) -> int:
    try:
        options = parse_args(argv)
        context, initial = build_context(options)
    except StudioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if is_remote(options.host, False) and not options.share and not options.accounts.enabled:
        print(
            f"warning: listening on {options.host} without --auth: "
            "anyone on your network can open the studio",
            file=sys.stderr,
        )
    start(context, initial, options=options, block=True)
    return 0
