"""The Train tab's GPUs setting: shown only where more than one CUDA GPU is visible, bounded by their
number, and checked on the server like `--nproc` (GPUs counted by a stand-in for torch.cuda here)."""

from __future__ import annotations

import gradio as gr
import pytest

from studio.errors import StudioError
from studio.train import distributed
from studio.ui import train_tab
from studio.ui.context import AppContext, ProjectBinding


@pytest.fixture
def gpus(monkeypatch):
    """Set how many CUDA GPUs torch reports."""

    def visible(count: int) -> None:
        monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: count)

    return visible


def _gpus_control(tmp_path) -> gr.Number:
    context = AppContext(workspace=tmp_path / "workspace")
    try:
        with gr.Blocks() as blocks:
            train_tab.build(context, ProjectBinding(gr.Textbox(), gr.Number()))
    finally:
        context.close()
    found = [b for b in blocks.blocks.values() if isinstance(b, gr.Number) and b.label == "GPUs"]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("count", [0, 1])
def test_one_device_or_none_shows_no_gpus_setting(tmp_path, gpus, count):
    gpus(count)
    control = _gpus_control(tmp_path)
    assert control.visible is False and control.value == 1 and control.maximum == 1


def test_several_gpus_show_the_setting_up_to_their_number(tmp_path, gpus):
    gpus(4)
    control = _gpus_control(tmp_path)
    assert control.visible is True and control.value == 1 and control.maximum == 4
    assert "4 visible" in control.info and "torchrun" in control.info


def test_the_servers_check_bounds_the_setting_by_the_visible_gpus(gpus):
    gpus(2)
    distributed.check_nproc(2, "finetune", "cuda")
    with pytest.raises(StudioError, match="more GPUs than the 2 visible"):
        distributed.check_nproc(3, "finetune", "cuda")  # a caller skipping the widget's maximum
    with pytest.raises(StudioError, match="cannot train on several processes"):
        distributed.check_nproc(2, "linear", "cuda")
