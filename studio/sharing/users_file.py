"""Edit a TOML users file: add a user, remove one, change a role or a password (`studio users ...`).

A running studio reads the file again when it changes (`accounts.LiveAccounts`), so an edit here applies
within a second. Edits keep the rest of the file as written (comments, other users): a new user is appended,
and only the named user's `[[user]]` block is rewritten or removed. Each edit is checked by reading the new
text as the studio will before it is written (atomically): it never leaves a file without users, or without
an owner when it had one. Passwords are stored as scrypt hashes, never as given.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from studio.durable import atomic_write_text
from studio.errors import StudioError
from studio.sharing.accounts import Accounts, check_role, check_user_name, hash_password, parse_users

# a user's table header (TOML allows [[ user ]]); blank lines before it stay with the block above
USER_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*user[ \t]*\]\][ \t]*(#.*)?$", re.MULTILINE)
OTHER_USER_TABLES = re.compile(r"^[ \t]*\[\[[ \t]*users[ \t]*\]\]", re.MULTILINE)


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def user_block(name: str, role: str, password_hash: str) -> str:
    return (f"[[user]]\nname = {_toml_string(name)}\npassword_hash = {_toml_string(password_hash)}\n"
            f"role = {_toml_string(role)}\n")


def _toml_path(path: Path) -> Path:
    path = Path(path).expanduser()
    if path.suffix.lower() == ".json":
        raise StudioError(f"{path} is a JSON users file: edit it by hand, or keep users in a TOML file "
                          "(users.toml), which `studio users` edits")
    return path


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except OSError as error:
        raise StudioError(f"cannot read the users file {path} ({error.strerror or error})") from None


def _blocks(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(text before the first user, [(user name, that user's block text)]) of a users file."""
    if OTHER_USER_TABLES.search(text):  # the studio also reads [[users]]; an edit here would hide those
        raise StudioError("this users file lists its accounts as [[users]] tables; `studio users` edits "
                          "files with [[user]] tables: rename them (or edit the file by hand)")
    starts = [m.start() for m in USER_HEADER.finditer(text)]
    blocks = []
    for start, end in zip(starts, [*starts[1:], len(text)]):
        block = text[start:end]
        try:
            entries = tomllib.loads(block).get("user") or [{}]
        except tomllib.TOMLDecodeError as error:
            raise StudioError(f"the users file does not read as TOML ({error}); fix it by hand first") \
                from None
        blocks.append((str(entries[0].get("name") or "").strip(), block))
    return text[:starts[0]] if starts else text, blocks


def _write_checked(path: Path, old: str, new: str) -> Accounts:
    """Write `new` over the users file after reading it as the studio will."""
    accounts = parse_users(new, path)  # a bad edit raises here, before anything is written
    had_owner = bool(old.strip()) and any(a.role == "owner" for a in parse_users(old, path).all())
    if had_owner and not any(a.role == "owner" for a in accounts.all()):
        raise StudioError("that would leave the users file without an owner, and nobody could import, train "
                          "or manage classes any more; make another user an owner first")
    atomic_write_text(path, new)
    try:
        path.chmod(0o600)  # password hashes: readable by their owner only
    except OSError:
        pass
    return accounts


def _find(path: Path, text: str, name: str) -> tuple[str, list[tuple[str, str]], int]:
    head, blocks = _blocks(text)
    found = [i for i, (n, _) in enumerate(blocks) if n == name]
    if not found:
        names = ", ".join(n for n, _ in blocks) or "none"
        raise StudioError(f"no user {name!r} in {path} (users: {names})")
    return head, blocks, found[0]


def check_new_user(path: str | Path, name: str) -> None:
    """Refuse a name `add_user` would refuse, before anyone types a password for it."""
    path, name = _toml_path(Path(path)), check_user_name(name)
    if any(n == name for n, _ in _blocks(_read(path))[1]):
        raise StudioError(f"{path} already has a user {name!r}: `studio users password` or "
                          "`studio users role` change theirs")


def add_user(path: str | Path, name: str, role: str, password: str) -> Accounts:
    check_new_user(path, name)
    path = _toml_path(Path(path))
    name, role = name.strip(), check_role(role)
    if not password:
        raise StudioError("the password is empty; give the new user a password")
    old = _read(path)
    separator = "" if not old or old.endswith("\n\n") else ("\n" if old.endswith("\n") else "\n\n")
    return _write_checked(path, old, old + separator + user_block(name, role, hash_password(password)))


def _tail(block: str) -> str:
    """The blank and comment lines that end a user's block: often a note about the next user, so they stay
    when this user is rewritten or removed."""
    lines = block.splitlines(keepends=True)
    keep = len(lines)
    while keep > 1 and (not lines[keep - 1].strip() or lines[keep - 1].lstrip().startswith("#")):
        keep -= 1
    return "".join(lines[keep:])


def remove_user(path: str | Path, name: str) -> Accounts:
    path = _toml_path(Path(path))
    old = _read(path)
    head, blocks, index = _find(path, old, name)
    blocks[index] = (name, _tail(blocks[index][1]).lstrip("\n"))
    return _write_checked(path, old, head + "".join(b for _, b in blocks))


def _rewrite(path: Path, name: str, role: str | None = None, password: str | None = None) -> Accounts:
    old = _read(path)
    head, blocks, index = _find(path, old, name)
    old_block = blocks[index][1]
    extra = set(tomllib.loads(old_block)["user"][0]) - {"name", "role", "password", "password_hash"}
    if extra:  # keys the studio does not know: say so rather than drop them silently
        raise StudioError(f"user {name!r} has entries the studio does not use ({', '.join(sorted(extra))}); "
                          "edit that user by hand")
    account = parse_users(old_block, path).all()[0]
    stored = hash_password(password) if password else account.password_hash
    blocks[index] = (name, user_block(name, check_role(role) if role else account.role, stored)
                     + _tail(old_block))
    return _write_checked(path, old, head + "".join(b for _, b in blocks))


def set_role(path: str | Path, name: str, role: str) -> Accounts:
    return _rewrite(_toml_path(Path(path)), name, role=role)


def set_password(path: str | Path, name: str, password: str) -> Accounts:
    if not password:
        raise StudioError("the password is empty")
    return _rewrite(_toml_path(Path(path)), name, password=password)


def list_users(path: str | Path) -> list[dict]:
    """Names and roles (never the password hashes)."""
    path = Path(path).expanduser()
    return [{"name": a.name, "role": a.role} for a in parse_users(_read(path), path).all()]
