"""`studio users ...`: manage the accounts of a users file (`launch.py --users FILE`) without editing it by
hand. A running studio picks the change up within a second."""

from __future__ import annotations

import getpass
import sys

from studio.cli import add_command
from studio.errors import StudioError
from studio.sharing import users_file
from studio.sharing.accounts import ROLES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "users", help="add, remove or change the accounts of a users file (--users FILE)",
        description="Manage a TOML users file; a running studio applies the change within a second.")
    sub = parser.add_subparsers(dest="users_command", metavar="ACTION", parser_class=type(parser))
    sub.required = True
    add = add_command(sub, "add", _add, "add a user (the password is asked for twice)", text=_done)
    add.add_argument("file")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="viewer")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    remove = add_command(sub, "remove", _remove, "remove a user (signed out at their next request)",
                         text=_done)
    remove.add_argument("file")
    remove.add_argument("name")
    role = add_command(sub, "role", _role, "change a user's role", text=_done)
    role.add_argument("file")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    password = add_command(sub, "password", _password, "set a new password (ends the user's sign-ins)",
                           text=_done)
    password.add_argument("file")
    password.add_argument("name")
    password.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    listing = add_command(sub, "list", _list, "list the users and their roles", text=_list_text)
    listing.add_argument("file")


def _read_password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise StudioError("no terminal to ask the password on: pass --password-stdin and give it on stdin")
    password = getpass.getpass(f"Password for {args.name}: ")
    if password != getpass.getpass("Again: "):
        raise StudioError("the two passwords differ; nothing was changed")
    return password


def _summary(accounts, args, what: str) -> dict:
    return {"file": args.file, "changed": args.name, "what": what,
            "users": [{"name": a.name, "role": a.role} for a in accounts.all()]}


def _add(args) -> dict:
    users_file.check_new_user(args.file, args.name)  # before a password is typed for nothing
    accounts = users_file.add_user(args.file, args.name, args.role, _read_password(args))
    return _summary(accounts, args, f"added as {args.role}")


def _remove(args) -> dict:
    return _summary(users_file.remove_user(args.file, args.name), args, "removed")


def _role(args) -> dict:
    return _summary(users_file.set_role(args.file, args.name, args.role), args, f"now {args.role}")


def _password(args) -> dict:
    return _summary(users_file.set_password(args.file, args.name, _read_password(args)), args,
                    "has a new password")


def _list(args) -> list[dict]:
    return users_file.list_users(args.file)


def _done(result: dict) -> str:
    return (f"{result['changed']} {result['what']} in {result['file']} ({len(result['users'])} users); "
            "a running studio applies it within a second.")


def _list_text(users: list[dict]) -> str:
    return "\n".join(f"{u['name']}\t{u['role']}" for u in users)
