"""The ASGI middleware of an app that others reach, in the order Gradio is given them.

Outermost first: the cross-site refusal (`same_origin`, always), then with sign-in the throttle on /login
(`login_guard`), the end of idle sessions (`sessions`), sign-in required on every route but the sign-in
page's (`signed_in_only`) and the per-user upload budget (`upload_budget`); innermost, always, the size
limit on request bodies outside uploads (`body_limit`).
No Gradio here: the list goes to `launch(app_kwargs={"middleware": ...})`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from studio.sharing.body_limit import BodyLimit
from studio.sharing.login_guard import LoginGuard, LoginThrottle
from studio.sharing.same_origin import SameOriginOnly
from studio.sharing.sessions import SessionExpiry
from studio.sharing.signed_in_only import SignedInOnly
from studio.sharing.upload_budget import UploadBudget


def sharing_middleware(guard: LoginGuard | None, *, role_of: Callable[[str | None], str | None] | None = None,
                       loopback_only: bool = False) -> list[Any]:
    """Middleware entries for `FastAPI(middleware=[...])`; `guard` is the app's sign-in (None: no accounts),
    `role_of` its accounts' role lookup (None: every signed-in user is an owner, as in a demo's password).
    `loopback_only`: answer only at loopback Host names (see `same_origin`)."""
    from starlette.middleware import Middleware

    entries = [Middleware(SameOriginOnly, loopback_only=loopback_only)]
    if guard is not None:
        entries += [Middleware(LoginThrottle, guard=guard), Middleware(SessionExpiry),
                    Middleware(SignedInOnly, role_of=role_of or _every_user_owns),
                    Middleware(UploadBudget)]
    return [*entries, Middleware(BodyLimit)]


def _every_user_owns(name: str | None) -> str | None:
    return "owner" if name else None
