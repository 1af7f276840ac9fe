"""Turning errors into readable messages: a user's mistake never shows as a stack trace."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from studio.errors import StudioError

log = logging.getLogger("studio.ui")
F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Run a callback; a StudioError becomes a gr.Error with its text, anything else a short generic one."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except StudioError as error:
            raise gr.Error(str(error), print_exception=False) from None
        except Exception as error:  # a bug, not the user's fault: log it, show one line
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Something went wrong ({type(error).__name__}: {error}). Details are in the server log.",
                           print_exception=False) from None

    return wrapper  # type: ignore[return-value]
