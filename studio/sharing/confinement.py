"""Which server paths a request may name.

When the studio is reachable beyond this machine (`--share`, or a `--host` that is not a loopback address),
every path a request names must resolve (symlinks followed) inside the workspace or an `--import-root`.
On loopback the owner may name any path (their own photos); other roles are always confined. A refused
path gets one message whatever the reason, so a caller cannot learn which files exist.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from studio.errors import StudioError

REFUSED = ("that path is not available to this studio: name a file or folder inside the workspace or an "
           "--import-root folder the owner allowed")


def is_loopback(host: str) -> bool:
    host = (host or "").strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_remote(host: str, share: bool) -> bool:
    """True when people on other machines can reach the app."""
    return bool(share) or not is_loopback(host)


@dataclass
class PathPolicy:
    workspace: Path
    import_roots: list[Path] = field(default_factory=list)
    remote: bool = False

    def __post_init__(self) -> None:
        self.workspace = Path(self.workspace).expanduser().resolve()
        self.import_roots = [Path(p).expanduser().resolve() for p in self.import_roots]

    def allowed_roots(self) -> list[Path]:
        return [self.workspace, *self.import_roots]

    def confined(self, role: str) -> bool:
        return self.remote or role != "owner"

    def check(self, path: str | os.PathLike, role: str = "owner") -> Path:
        """The resolved path when `role` may name it here; StudioError(REFUSED) otherwise."""
        text = str(path or "").strip()
        if not text or "\x00" in text:
            raise StudioError(REFUSED)
        try:
            resolved = Path(text).expanduser().resolve()
        except (OSError, RuntimeError, ValueError):
            raise StudioError(REFUSED) from None
        if self.confined(role) and not any(resolved.is_relative_to(root) for root in self.allowed_roots()):
            raise StudioError(REFUSED)
        return resolved


def inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when `path` resolves (symlinks followed) inside `folder`."""
    try:
        return Path(path).resolve().is_relative_to(Path(folder).resolve())
    except (OSError, RuntimeError, ValueError):
        return False
