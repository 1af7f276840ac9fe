"""Run lists (the Train tab's table, the Evaluate tab's choices) name the backbone a run trained."""

from __future__ import annotations

from studio.service.runs import run_settings
from studio.ui.train_tab import runs_frame


def _run(record):
    return {"name": "20261202-auto", "status": "done", "config": record, "best_val_accuracy": 0.9,
            "val_accuracy": 0.9, "epochs": 3, "has_model": True, "run_dir": "/tmp/runs/20261202-auto"}


def test_the_backbone_auto_chose_is_the_one_listed():
    record = {"config": {"strategy": "auto", "backbone": "tf_efficientnet_lite0"},
              "backbone": "tf_efficientnet_lite2"}
    settings, backbone = run_settings(_run(record))
    assert settings["strategy"] == "auto" and backbone == "tf_efficientnet_lite2"
    assert runs_frame([_run(record)]).iloc[0]["backbone"] == "tf_efficientnet_lite2"


def test_a_record_without_its_own_backbone_or_any_record_still_lists():
    assert run_settings(_run({"config": {"backbone": "resnet50"}}))[1] == "resnet50"
    assert run_settings(_run(None)) == ({}, "")
    assert runs_frame([_run(None)]).iloc[0]["backbone"] == ""


def test_a_run_of_an_earlier_session_is_shown_with_what_its_curve_scores():
    from studio.ui.train_tab import curve_val_name, newest_run_html

    auto = _run({"config": {"strategy": "auto"}})
    html_text = newest_run_html(auto)
    assert "20261202-auto" in html_text and "val accuracy 90.0%" in html_text
    assert curve_val_name(run_settings(auto)[0]) == "held-out training images"  # auto never scores val
    assert curve_val_name(run_settings(_run({"config": {"strategy": "finetune"}}))[0]) == "validation"
    assert curve_val_name({}) == "held-out training images"  # a job's config without a strategy is auto
    assert "<b>x&lt;y</b>" in newest_run_html({**auto, "name": "x<y"})
