"""Who the current request acts for, without Gradio: the UI's access check sets it for the length of a call,
and the application layer reads it to record who made a change (`caller_name()`). Outside a request (tests,
scripts, the CLI) the caller is the local owner."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from studio.sharing.accounts import LOCAL_USER, role_allows


@dataclass(frozen=True)
class Caller:
    name: str
    role: str


LOCAL = Caller(LOCAL_USER, "owner")
_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("studio_caller", default=None)


def current_caller() -> Caller:
    """The user of the event being run (the local owner outside of a request, as in tests and scripts)."""
    return _caller.get() or LOCAL


def caller_name() -> str:
    return current_caller().name


def act_as(caller: Caller) -> contextvars.Token:
    """Make `caller` the current caller; give the token back to `release` when the call ends."""
    return _caller.set(caller)


def release(token: contextvars.Token) -> None:
    _caller.reset(token)


def label_write_args() -> dict:
    """The store's `by` and `new_classes` for a label write by the current caller: their name (their Undo
    reaches it) and whether they may create a class by naming a new one (owners: classes are the project's
    structure; a labeler labels with the classes there are). Every label write of the app passes these."""
    return {"by": caller_name(), "new_classes": role_allows(current_caller().role, "owner")}
