"""What every tab shares: the workspace, the trainer service, open projects, and the current project widget.

`AppContext` is built once per process by the launcher. `ProjectBinding` holds the Gradio components
all tabs listen to: `root` carries the absolute path of the open project ("" when none) and `version`
is bumped whenever a tab changes the data (import, class edits, labels) so other tabs can refresh.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from studio.data.store import DB_NAME, Project
from studio.errors import StudioError
from studio.sharing.confinement import PathPolicy

_PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")


def default_service() -> Any:
    """The process-wide trainer service, or None while `studio.service` is not available."""
    try:
        from studio.service import get_service
    except ImportError:
        return None
    return get_service()


@dataclass
class AppContext:
    """Shared by all tabs of one app. Projects open once and are reused (a `Project` is thread-safe)."""

    workspace: Path
    service: Any = None  # studio.service.TrainerService; typed loosely so the UI imports without torch jobs
    max_upload_mb: int = 200
    extra_projects: list[Path] = field(default_factory=list)  # --project folders outside the workspace
    import_roots: list[Path] = field(
        default_factory=list
    )  # --import-root folders (studio.sharing.confinement)
    remote: bool = False  # reachable beyond this machine (--share or a non-loopback --host)
    _projects: dict[Path, Project] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.workspace = Path(self.workspace).expanduser().resolve()
        self.extra_projects = [Path(p).expanduser().resolve() for p in self.extra_projects]
        self.paths = PathPolicy(
            self.workspace, [*self.extra_projects, *self.import_roots], remote=self.remote
        )

    def server_path(self, path: str | os.PathLike) -> Path:
        """A server path a request names, resolved, when the caller may name it (one refusal otherwise)."""
        from studio.sharing.caller import current_caller

        return self.paths.check(path, current_caller().role)

    # ---- which folders may be projects --------------------------------------------------------

    def check_project_root(self, root: str | os.PathLike) -> Path:
        """The resolved project folder, if it is one this app may open (inside the workspace or --project)."""
        if not str(root or "").strip():
            raise StudioError("no project is open: choose or create one in the Data tab")
        path = Path(root).expanduser().resolve()
        inside = path.parent == self.workspace or path in self.extra_projects
        if not inside:
            if self.remote:  # a shared link's caller learns nothing about the server's folders
                raise StudioError(f"{str(root)[:200]!r} is not a project of this studio: open one from the "
                                  "Data tab's project list")
            raise StudioError(
                f"{path} is not a project of this studio: projects live in {self.workspace} "
                "(start with --project DIR to open another folder)"
            )
        return path

    def open_project(self, root: str | os.PathLike) -> Project:
        """The open `Project` for `root` (opened once, then cached); StudioError when it is not a project."""
        path = self.check_project_root(root)
        with self._lock:
            project = self._projects.get(path)
            if project is None:
                project = Project.open(path)
                self._projects[path] = project
            return project

    def create_project(self, name: str) -> Project:
        """A new, empty project `workspace/<name>`."""
        name = (name or "").strip()
        if not _PROJECT_NAME.match(name) or name in (".", ".."):
            raise StudioError(
                f"project name {name!r} is not allowed: use letters, digits, spaces, '-', '_' or '.' "
                "(up to 64 characters, starting with a letter or digit)"
            )
        path = self.workspace / name
        if (path / DB_NAME).exists():
            raise StudioError(f"a project named {name!r} already exists; open it from the list")
        with self._lock:
            self.workspace.mkdir(parents=True, exist_ok=True)
            project = Project.create(path)
            self._projects[project.root] = project
            return project

    def list_projects(self) -> list[Path]:
        """Project folders: subfolders of the workspace holding project.db, plus any --project folders."""
        found = []
        if self.workspace.is_dir():
            found = sorted(p.resolve() for p in self.workspace.iterdir() if (p / DB_NAME).is_file())
        return found + [p for p in self.extra_projects if p not in found]

    def close(self) -> None:
        with self._lock:
            for project in self._projects.values():
                project.close()
            self._projects.clear()


@dataclass
class ProjectBinding:
    """The open project, shared by every tab: listen to `root.change` (and `version.change`) to refresh.

    `tab` holds the id of the tab the user last opened ("data", "label", ...): a tab whose numbers go
    stale while it is hidden can refresh on `tab.change` when it becomes its own id.
    """

    root: gr.Textbox
    version: gr.Number
    tab: gr.Textbox | None = None
