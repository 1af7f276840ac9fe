"""Who is calling, and may they: the server-side role check of every callback and API name.

Gradio runs any event by its index for any signed-in user, so a hidden button is no permission. `install`
wraps the app's `process_api` (the one door every event, API call and queue job goes through): it maps
`request.username` to a role (`studio.sharing.accounts`) and refuses an event whose function asks for more.
Each callback says what it needs with `@requires("labeler")` / `@requires("owner")`; a function without it
is view-level (viewer: view and predict). The caller is also kept in a context variable for the call, so a
decorated function reached through a lambda or another callback checks it again, and the store can record
who made a change (`caller_name()`). Without accounts (one person on this machine) the caller is the owner.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from studio.sharing.accounts import Accounts, check_role, role_allows
from studio.sharing.caller import LOCAL as _LOCAL
from studio.sharing.caller import Caller, act_as, current_caller, release

F = TypeVar("F", bound=Callable[..., Any])
ROLE_ATTRIBUTE = "_studio_role"


def refusal(needed: str, caller: Caller) -> gr.Error:
    return gr.Error(f"this needs the {needed} role: you are signed in as {caller.name!r} ({caller.role}); "
                    "ask the studio's owner", print_exception=False)


def check(needed: str) -> Caller:
    """The current caller, or a gr.Error naming the role needed."""
    caller = current_caller()
    if not role_allows(caller.role, needed):
        raise refusal(needed, caller)
    return caller


def requires(role: str) -> Callable[[F], F]:
    """Mark a callback as needing `role` (checked by `install` before it runs, and again when it is
    called)."""
    role = check_role(role)

    def decorate(fn: F) -> F:
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                check(role)
                yield from fn(*args, **kwargs)
        else:
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                check(role)
                return fn(*args, **kwargs)
        setattr(wrapper, ROLE_ATTRIBUTE, role)
        return wrapper  # type: ignore[return-value]

    return decorate


def required_role(fn: Callable | None) -> str:
    return getattr(fn, ROLE_ATTRIBUTE, "viewer") if fn is not None else "viewer"


def _username(request: Any) -> str | None:
    if isinstance(request, list):  # batched events carry one request per item: same session
        request = request[0] if request else None
    return getattr(request, "username", None) if request is not None else None


def install(app: gr.Blocks, accounts: Accounts) -> None:
    """Check the caller's role on the server side of every event of `app`."""
    original = app.process_api

    @functools.wraps(original)
    async def process_api(block_fn: Any, inputs: list[Any], state: Any = None, request: Any = None,
                          *args: Any, **kwargs: Any) -> dict[str, Any]:
        fn = app.fns[block_fn] if isinstance(block_fn, int) else block_fn
        if accounts.enabled:
            name = _username(request)
            role = accounts.role_of(name)
            if role is None:
                raise gr.Error("sign in to use the studio", print_exception=False)
            caller = Caller(name or "", role)
        else:
            caller = _LOCAL
        needed = required_role(fn.fn)
        if not role_allows(caller.role, needed):
            raise refusal(needed, caller)
        token = act_as(caller)
        try:
            return await original(block_fn, inputs, state, request, *args, **kwargs)
        finally:
            release(token)

    app.process_api = process_api  # type: ignore[method-assign]


PER_USER_EVENTS = 16  # one account's events waiting or running in Gradio's queue at once


def limit_queue_per_user(app: gr.Blocks, per_user: int = PER_USER_EVENTS) -> None:
    """Give each signed-in user at most `per_user` events in Gradio's queue (waiting or running).

    The queue is one for everyone (`max_size` events): without this one account joining the same event
    in a loop fills it, and every other user gets "the queue is full". Gradio has no per-user share, so
    its `Queue.push` (the one door of `/queue/join`) is wrapped; a refusal takes Gradio's own queue-full
    path (503 with the message). Call after `app.queue()`.
    """
    queue = app._queue
    original = queue.push

    @functools.wraps(original)
    async def push(body: Any, request: Any, username: str | None) -> Any:
        if username is not None:
            waiting = sum(event.username == username
                          for events in list(queue.event_queue_per_concurrency_id.values())
                          for event in list(events.queue))
            running = sum(event.username == username
                          for job in list(queue.active_jobs) if job for event in job)
            if waiting + running >= per_user:
                message = (f"You have {waiting + running} requests waiting or running; wait for them to "
                           "finish before asking for more.")
                return False, message, "queue_full"
        return await original(body, request, username)

    queue.push = push  # type: ignore[method-assign]
