"""Turning errors into readable messages: a user's mistake never shows as a stack trace or a red page.

Two wrappers, for the two kinds of caller:
- `user_errors` for the widgets' events: a mistake the user can fix (StudioError, or a gr.Error a tab
  raises for a missing selection) becomes a yellow notice (gr.Warning) and every output of the event keeps
  its value (Gradio skips all outputs when a callback returns one `gr.skip()`); raising gr.Error instead
  would replace each output with a red "Error" badge until the next action. A bug (any other exception)
  is logged with its traceback and shown as a short notice too.
- `api_errors` for `gr.api` endpoints (gradio_client): the caller must see a failure, so errors stay
  errors (gr.Error with the StudioError's text).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from studio.errors import StudioError

log = logging.getLogger("studio.ui")
F = TypeVar("F", bound=Callable[..., Any])


def bug_message(error: Exception) -> str:
    return f"Something went wrong ({type(error).__name__}: {error}). Details are in the server log."


def _message(error: Exception) -> str:
    return error.message if isinstance(error, gr.Error) else str(error)


def user_errors(fn: F) -> F:
    """Run an event callback; on any error show a notice and leave the event's outputs as they were."""

    if inspect.isgeneratorfunction(fn):  # a streaming callback: what it yielded before the error stays

        @functools.wraps(fn)
        def streaming(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except (StudioError, gr.Error) as error:
                gr.Warning(_message(error))
                yield gr.skip()
            except Exception as error:  # a bug, not the user's fault: log it, show one line
                log.exception("unexpected error in %s", fn.__name__)
                gr.Warning(bug_message(error))
                yield gr.skip()

        return streaming  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (StudioError, gr.Error) as error:
            gr.Warning(_message(error))
        except Exception as error:  # a bug, not the user's fault: log it, show one line
            log.exception("unexpected error in %s", fn.__name__)
            gr.Warning(bug_message(error))
        return gr.skip()  # one skip() stands for every output of the event

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

    return wrapper  # type: ignore[return-value]
