"""Accounts and roles: who may sign in, and what each may do.

Roles, from least to most: `viewer` (view and predict), `labeler` (also label, undo their own changes,
answer curation reviews), `owner` (everything: import, train, export, delete). Passwords are kept as a
salted scrypt hash and compared in constant time; a users file may hold plain passwords or such hashes.

Make a hash for a users file with `uv run python -m studio.sharing.accounts` (asks for the password).
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from studio.errors import StudioError

ROLES = ("viewer", "labeler", "owner")  # each role may do everything the ones before it may
LOCAL_USER = "user"  # the caller's name without accounts (one person, this machine): the store's default `by`
# Names the label history already uses for changes nobody signed in made (the local owner, imports): an
# account with one of them could undo those changes as its own.
RESERVED_NAMES = frozenset({LOCAL_USER, "import", "curation"})
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
USERS_FILE_CHECK_S = 1.0  # how often a running studio looks whether its users file changed


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$<salt hex>$<hash hex>`: what a users file's `password_hash` holds."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


@functools.cache
def _unknown_name_hash() -> str:
    """A hash that no password matches, made once: checking against it costs what a real check costs
    (hashing a fresh one on each attempt cost two scrypt runs and told names apart by time)."""
    return hash_password(secrets.token_hex(16))


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches a `hash_password` string (constant-time comparison)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        computed = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                                  p=int(p), maxmem=256 * 1024 * 1024)
        return hmac.compare_digest(computed, bytes.fromhex(digest))
    except (ValueError, TypeError):
        return False


def check_role(role: str) -> str:
    role = str(role or "").strip().lower()
    if role not in ROLES:
        raise StudioError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def role_allows(role: str, needed: str) -> bool:
    """True when `role` may do what `needed` may."""
    return ROLES.index(role) >= ROLES.index(needed)


# Tells whether a plain password in a users file changed between two reads without keeping it (each read
# hashes it with a new salt); never written anywhere.
_PROCESS_KEY = secrets.token_bytes(32)


def secret_id(password: str) -> str:
    return hmac.new(_PROCESS_KEY, password.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password_hash: str
    secret: str = ""  # what the password came from: its hash as given, or secret_id(plain password)


def check_user_name(name: str, where: str = "") -> str:
    """The name, stripped, when it may be an account's; else a StudioError (`where` names the entry)."""
    name, prefix = str(name or "").strip(), f"{where}: " if where else ""
    if not name:
        raise StudioError(f"{prefix}a user needs a name")
    if ":" in name:
        raise StudioError(f"{prefix}a user name cannot hold ':'")
    if name.lower() in RESERVED_NAMES:
        raise StudioError(f"{prefix}the user name {name!r} is reserved (the label history uses it for "
                          "changes made without an account); pick another name")
    return name


class Accounts:
    """The accounts of one app. Empty means no sign-in: the one local user is the owner."""

    def __init__(self, accounts: list[Account] | None = None) -> None:
        self._by_name: dict[str, Account] = {}
        for account in accounts or []:
            check_user_name(account.name)
            if account.name in self._by_name:
                raise StudioError(f"user {account.name!r} is listed twice; give each user one entry")
            self._by_name[account.name] = account

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]], role: str = "owner") -> Accounts:
        return cls([Account(name, role, hash_password(password), secret_id(password))
                    for name, password in pairs])

    def merged(self, other: Accounts) -> Accounts:
        return Accounts([*self._by_name.values(), *other._by_name.values()])

    @property
    def enabled(self) -> bool:
        return bool(self._by_name)

    def names(self) -> list[str]:
        return list(self._by_name)

    def all(self) -> list[Account]:
        return list(self._by_name.values())

    def authenticate(self, username: str, password: str) -> bool:
        """Gradio's `auth=` callable: True for a known user with the right password."""
        account = self._by_name.get(username)
        if account is None:
            verify_password(password, _unknown_name_hash())  # one scrypt, as for a known name: no timing hint
            return False
        return verify_password(password, account.password_hash)

    def role_of(self, username: str | None) -> str | None:
        """The role of a signed-in user; the owner without accounts; None for a name not in the accounts."""
        if not self.enabled:
            return "owner"
        account = self._by_name.get(username or "")
        return account.role if account else None


def load_users(path: str | os.PathLike) -> Accounts:
    """Read a users file: TOML (`[[user]]` tables) or JSON (a list, or `{"users": [...]}`), each entry with
    `name`, `role` and `password` or `password_hash` (from `hash_password`)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise StudioError(f"cannot read the users file {path} ({error.strerror or error})") from None
    return parse_users(text, path)


def parse_users(text: str, path: Path) -> Accounts:
    """The accounts a users file's `text` lists (`path` names the file and, by its suffix, the format)."""
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise StudioError(
            f"the users file {path} is not valid {path.suffix.lstrip('.') or 'TOML'} ({error})"
        ) from None
    entries = data if isinstance(data, list) else (data.get("user") or data.get("users") or [])
    if not isinstance(entries, list) or not entries:
        raise StudioError(f"the users file {path} lists no users (expected [[user]] entries or a JSON list)")
    accounts = []
    for number, entry in enumerate(entries, 1):
        where = f"user {number} of {path}"
        if not isinstance(entry, dict):
            raise StudioError(f"{where} is not a table of name, role and password")
        name = check_user_name(entry.get("name"), where)
        if "password_hash" in entry:
            stored = secret = str(entry["password_hash"])
            if not stored.startswith("scrypt$") or stored.count("$") != 5:
                raise StudioError(
                    f"{where}: password_hash must come from `python -m studio.sharing.accounts`"
                )
        elif entry.get("password"):
            stored, secret = hash_password(str(entry["password"])), secret_id(str(entry["password"]))
        else:
            raise StudioError(f"{where} needs a password or a password_hash")
        accounts.append(Account(name, check_role(entry.get("role", "viewer")), stored, secret))
    return Accounts(accounts)


class LiveAccounts(Accounts):
    """The `--auth` accounts plus a users file's, read again when the file changes, so that an owner adds,
    removes or changes a user without restarting the studio (which would stop a training in progress).

    The file is looked at (one stat) at most every `interval_s`. A removed user's next action is refused
    (every event asks `role_of`); a changed role applies from the next action. A file that does not read
    (half saved, a typo) keeps the accounts read before, and says so on stderr. `on_change(names)` hears the
    names whose earlier sign-ins should end (removed, or a new password): the launcher drops their sessions.
    """

    def __init__(self, users_file: str | os.PathLike, fixed: Accounts | None = None,
                 interval_s: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.users_file = Path(users_file).expanduser()
        self.fixed = fixed or Accounts()
        self.interval_s = USERS_FILE_CHECK_S if interval_s is None else interval_s
        self.clock = clock
        self.on_change: Callable[[set[str]], None] | None = None
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        super().__init__(self._read().all())
        self._checked = clock()

    def _read(self) -> Accounts:
        """The fixed accounts plus the users file's, as the file is now."""
        return self.fixed.merged(load_users(self.users_file))

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            info = self.users_file.stat()
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def refresh(self) -> None:
        """Read the users file again if it changed since the last read (at most every `interval_s`)."""
        if self.clock() - self._checked < self.interval_s:
            return
        with self._lock:
            self._checked = self.clock()
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                fresh = self._read()._by_name
            except StudioError as error:
                print(f"warning: {error}; the accounts read before stay in force until the file is fixed",
                      file=sys.stderr)
                return
            old, self._by_name = self._by_name, fresh  # one reference swap: readers see old or new
        ended = {name for name, account in old.items()
                 if name not in fresh or fresh[name].secret != account.secret}
        print(f"users file {self.users_file} read again: {len(fresh)} accounts"
              + (f"; sessions ended for {', '.join(sorted(ended))}" if ended else ""), file=sys.stderr)
        if ended and self.on_change is not None:
            self.on_change(ended)

    @property
    def enabled(self) -> bool:
        return True  # a users file lists at least one user (load_users), before and after any change

    def names(self) -> list[str]:
        self.refresh()
        return super().names()

    def authenticate(self, username: str, password: str) -> bool:
        self.refresh()
        return super().authenticate(username, password)

    def role_of(self, username: str | None) -> str | None:
        self.refresh()
        return super().role_of(username)


def main() -> int:
    """Print a password hash for a users file (the password is asked for, never passed on the command
    line)."""
    password = getpass.getpass("Password: ")
    if not password or password != getpass.getpass("Again: "):
        print("error: the two passwords differ (or are empty)", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
