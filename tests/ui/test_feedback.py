"""The one error wrapper of every tab, and callbacks that return {component: value} dicts."""

from __future__ import annotations

import asyncio
import logging

import gradio as gr
import pytest

from studio.errors import StudioError
from studio.ui import feedback
from studio.ui.feedback import ERRORS_ATTRIBUTE, api_errors, by_component, user_errors


@pytest.fixture
def notices(monkeypatch):
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(feedback.gr, "Warning", lambda message, **_: shown.append(("warning", message)))
    monkeypatch.setattr(feedback, "log_message",
                        lambda message, title, level: shown.append((level, message)))
    return shown


def test_a_mistake_is_a_warning_and_a_bug_an_error_with_its_traceback_logged(notices, caplog):
    @user_errors
    def mistake():
        raise StudioError("type a class name first")

    @user_errors
    def bug():
        raise KeyError("label")

    with caplog.at_level(logging.ERROR, logger="studio.ui"):
        assert mistake() == gr.skip() and bug() == gr.skip()  # every output keeps its value
    assert notices[0] == ("warning", "type a class name first")
    assert notices[1][0] == "error" and "KeyError" in notices[1][1]
    assert [r.exc_info[0] for r in caplog.records] == [KeyError]  # the bug only, with its traceback


def test_a_streaming_callback_keeps_what_it_yielded_and_reports_the_error(notices):
    @user_errors
    def stream():
        yield "first"
        raise StudioError("the job failed")

    assert list(stream()) == ["first", gr.skip()] and notices == [("warning", "the job failed")]


def test_a_wrapped_callback_called_from_another_reports_once_through_the_outer(notices):
    @user_errors
    def inner():
        raise StudioError("no image is shown")

    @user_errors
    def outer():
        return {**inner(), "more": 1}  # would fail on a skip(): the inner error must reach here instead

    assert outer() == gr.skip() and notices == [("warning", "no image is shown")]


def test_api_endpoints_keep_errors_errors(caplog):
    @api_errors
    def endpoint(kind):
        raise StudioError("bad project") if kind == "user" else ZeroDivisionError("x")

    with pytest.raises(gr.Error, match="bad project"):
        endpoint("user")
    with caplog.at_level(logging.ERROR, logger="studio.ui"), pytest.raises(gr.Error, match="went wrong"):
        endpoint("bug")
    assert caplog.records and caplog.records[0].exc_info[0] is ZeroDivisionError


def test_a_dict_return_updates_its_components_and_leaves_the_others(notices):
    with gr.Blocks() as app:
        first, second = gr.Textbox("a"), gr.Textbox("b")
        button = gr.Button()

        @user_errors
        def update(value):
            if value == "bad":
                raise StudioError("refused")
            return {first: value.upper()}

        button.click(update, first, [first, second])
    kept = {"__type__": "update"}
    assert asyncio.run(app.process_api(0, ["ok"], state=None))["data"] == ["OK", kept]
    assert asyncio.run(app.process_api(0, ["bad"], state=None))["data"] == [kept, kept]
    assert notices == [("warning", "refused")]
    with pytest.raises(ValueError):
        by_component([first, second], ["only one"])


def test_every_named_callback_of_every_tab_goes_through_the_one_wrapper(tmp_path):
    from studio.ui.app import build_app
    from studio.ui.context import AppContext

    app = build_app(AppContext(workspace=tmp_path))
    unwrapped = sorted({fn.fn.__name__ for fn in app.fns.values()
                        if fn.fn is not None and fn.fn.__name__ != "<lambda>"
                        and not hasattr(fn.fn, ERRORS_ATTRIBUTE)})
    assert unwrapped == []  # lambdas only forward to wrapped functions (or compute a value)
    apis = {fn.fn.__name__: getattr(fn.fn, ERRORS_ATTRIBUTE) for fn in app.fns.values()
            if fn.fn is not None
            and fn.api_name in ("set_label", "undo", "label_history", "predict", "train")}
    assert set(apis.values()) == {"api"}, apis  # gradio_client callers get errors as errors
