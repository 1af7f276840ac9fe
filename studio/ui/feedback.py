"""Turning errors into readable messages: a user's mistake never shows as a stack trace or a red page.

The one error policy of every tab, with two doors for the two kinds of caller:
- `user_errors` for the widgets' events: a mistake the user can fix (StudioError, or a gr.Error a tab
  raises for a missing selection) becomes a yellow notice (gr.Warning) and every output of the event keeps
  its value (Gradio skips all outputs when a callback returns one `gr.skip()`); raising gr.Error instead
  would replace each output with a red "Error" badge until the next action. A bug (any other exception)
  is logged with its traceback and shown as a red error notice, the outputs kept as well. A wrapped
  callback called from another one (a key handler calling "label and next") lets its errors go up to the
  outer one, which reports them once.
- `api_errors` for `gr.api` endpoints (gradio_client): the caller must see a failure, so errors stay
  errors (gr.Error with the StudioError's text; a bug logged with its traceback first).
Tab callbacks return `{component: value}` dicts (see docs/ARCHITECTURE.md); `by_component` builds one from a
helper's values in its components' order.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import gradio as gr
from gradio.helpers import log_message

from studio.errors import StudioError

log = logging.getLogger("studio.ui")
F = TypeVar("F", bound=Callable[..., Any])
ERRORS_ATTRIBUTE = "_studio_errors"  # "event" or "api": which door a callback's errors go through
_reporting = contextvars.ContextVar("studio_ui_reporting", default=False)  # an outer wrapper reports


def bug_message(error: Exception) -> str:
    return f"Something went wrong ({type(error).__name__}: {error}). Details are in the server log."


def _message(error: Exception) -> str:
    return error.message if isinstance(error, gr.Error) else str(error)


def _report(fn: Callable, error: Exception) -> None:
    """An event's error as a notice: a warning for a mistake the user can fix, an error (logged) for a bug."""
    if isinstance(error, (StudioError, gr.Error)):
        gr.Warning(_message(error))
        return
    log.exception("unexpected error in %s", fn.__name__, exc_info=error)
    # gr.Error is an exception (its outputs become error badges); the same red notice without raising.
    log_message(bug_message(error), title="Error", level="error")  # type: ignore[arg-type]


def user_errors(fn: F) -> F:
    """Run an event callback; on any error show a notice and leave the event's outputs as they were."""

    if inspect.isgeneratorfunction(fn):  # a streaming callback: what it yielded before the error stays

        @functools.wraps(fn)
        def streaming(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 (_report logs a bug with its traceback)
                _report(fn, error)
                yield gr.skip()

        setattr(streaming, ERRORS_ATTRIBUTE, "event")
        return streaming  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _reporting.get():  # called from another wrapped callback: that one reports
            return fn(*args, **kwargs)
        token = _reporting.set(True)
        try:
            return fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 (_report logs a bug with its traceback)
            _report(fn, error)
        finally:
            _reporting.reset(token)
        return gr.skip()  # one skip() stands for every output of the event

    setattr(wrapper, ERRORS_ATTRIBUTE, "event")
    return wrapper  # type: ignore[return-value]


def api_errors(fn: F) -> F:
    """Run an API endpoint; a StudioError becomes a gr.Error with its text, anything else a short one."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except StudioError as error:
            raise gr.Error(str(error), print_exception=False) from None
        except Exception as error:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(bug_message(error), print_exception=False) from None

    setattr(wrapper, ERRORS_ATTRIBUTE, "api")
    return wrapper  # type: ignore[return-value]


def by_component(components: Iterable[Any], values: Iterable[Any]) -> dict[Any, Any]:
    """`{component: value}` for a helper's values given in its components' order (a count that differs
    fails here, not as a shifted widget)."""
    return dict(zip(components, values, strict=True))
