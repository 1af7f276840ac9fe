"""Accounts and roles: who may sign in, and what each may do.

Roles, from least to most: `viewer` (view and predict), `labeler` (also label, undo their own changes,
answer curation reviews), `owner` (everything: import, train, export, delete). Passwords are kept as a
salted scrypt hash and compared in constant time; a users file may hold plain passwords or such hashes.

Make a hash for a users file with `uv run python -m studio.sharing.accounts` (asks for the password).
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import secrets
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from studio.errors import StudioError

ROLES = ("viewer", "labeler", "owner")  # each role may do everything the ones before it may
LOCAL_USER = "user"  # the caller's name without accounts (one person, this machine): the store's default `by`
# Names the label history already uses for changes nobody signed in made (the local owner, imports): an
# account with one of them could undo those changes as its own.
RESERVED_NAMES = frozenset({LOCAL_USER, "import", "curation"})
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$<salt hex>$<hash hex>`: what a users file's `password_hash` holds."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


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


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password_hash: str


class Accounts:
    """The accounts of one app. Empty means no sign-in: the one local user is the owner."""

    def __init__(self, accounts: list[Account] | None = None) -> None:
        self._by_name: dict[str, Account] = {}
        for account in accounts or []:
            if account.name.lower() in RESERVED_NAMES:
                raise StudioError(f"the user name {account.name!r} is reserved (the label history uses it "
                                  "for changes made without an account); pick another name")
            if account.name in self._by_name:
                raise StudioError(f"user {account.name!r} is listed twice; give each user one entry")
            self._by_name[account.name] = account

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]], role: str = "owner") -> Accounts:
        return cls([Account(name, role, hash_password(password)) for name, password in pairs])

    def merged(self, other: Accounts) -> Accounts:
        return Accounts([*self._by_name.values(), *other._by_name.values()])

    @property
    def enabled(self) -> bool:
        return bool(self._by_name)

    def names(self) -> list[str]:
        return list(self._by_name)

    def authenticate(self, username: str, password: str) -> bool:
        """Gradio's `auth=` callable: True for a known user with the right password."""
        account = self._by_name.get(username)
        if account is None:
            verify_password(password, hash_password("")) # same work for an unknown name: no timing hint
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
        if not isinstance(entry, dict) or not str(entry.get("name") or "").strip():
            raise StudioError(f"{where} needs a name")
        if ":" in str(entry["name"]):
            raise StudioError(f"{where}: a user name cannot hold ':'")
        if "password_hash" in entry:
            stored = str(entry["password_hash"])
            if not stored.startswith("scrypt$") or stored.count("$") != 5:
                raise StudioError(
                    f"{where}: password_hash must come from `python -m studio.sharing.accounts`"
                )
        elif entry.get("password"):
            stored = hash_password(str(entry["password"]))
        else:
            raise StudioError(f"{where} needs a password or a password_hash")
        accounts.append(Account(str(entry["name"]).strip(), check_role(entry.get("role", "viewer")), stored))
    return Accounts(accounts)


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
