"""The Predict tab's "not sure" and the Evaluate tab's reliability diagram (pure helpers, no server)."""

from __future__ import annotations

from studio.ui import charts, evaluate_tab, predict_tab


def test_unknown_predictions_read_not_sure_with_their_top_guess():
    sure = {"top": [{"class": "daisy", "probability": 0.97}], "unknown": False}
    unsure = {
        "top": [{"class": "tulip", "probability": 0.41}, {"class": "rose", "probability": 0.3}],
        "unknown": True,
    }
    rows = predict_tab.prediction_rows([sure, unsure], ["a.jpg", "b.jpg"])
    assert rows.iloc[0]["prediction"] == "daisy"
    assert rows.iloc[1]["prediction"] == "not sure (tulip?)" and rows.iloc[1]["probability"] == "41.0%"
    assert predict_tab.bars_title(sure, None) is None
    assert "Not sure" in predict_tab.bars_title(unsure, None) and predict_tab.bars_title(
        unsure, "b.jpg"
    ).startswith("b.jpg")



def test_the_answer_line_names_the_class_or_says_not_sure_and_how_it_was_predicted(tmp_path):
    import json

    run = tmp_path / "20261206-auto"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"status": "done", "result": {"tta": True}}))
    sure = {"top": [{"class": "daisy", "probability": 0.979}], "unknown": False}
    unlike = {"top": [{"class": "rose", "probability": 0.51}], "unknown": True, "unlike_training": True}
    line = predict_tab.answer_markdown(sure, run)
    assert line.startswith("**daisy** (97.9%)") and "with test-time augmentation" in line and run.name in line
    assert "without test-time augmentation" in predict_tab.answer_markdown(sure, run, tta=False)
    line = predict_tab.answer_markdown(unlike, name="x.png")
    assert line.startswith("x.png: **Not sure**: unlike the images it was trained on") and "**rose**" in line
    assert predict_tab.answer_markdown(None) == ""
    # "Correct class" starts at the guess only when the model is sure of it
    assert predict_tab.suggested_class(sure) == "daisy" and predict_tab.suggested_class(unlike) is None


def test_reliability_diagram_draws_both_curves_and_the_ece():
    bins = [{"low": 0.4, "high": 0.5, "n": 3, "confidence": 0.45, "accuracy": 0.33},
            {"low": 0.9, "high": 1.0, "n": 9, "confidence": 0.97, "accuracy": 0.89}]
    data = {"report": {"reliability": {"before": bins, "after": bins},
                       "calibration": {"temperature": 1.3, "ece_before": 0.08, "ece_after": 0.03}}}
    figure = charts.reliability_diagram(*evaluate_tab.reliability_of(data))
    assert len(figure.data) == 3 and "0.080" in figure.layout.title.text
    # A run that fitted no temperature (a manual fine-tune): its one curve, not "calibrated".
    plain = {"report": {"reliability": {"before": bins, "after": bins},
                        "calibration": {"temperature": 1.0, "ece_before": 0.08, "ece_after": 0.08,
                                        "fitted_on": None}}}
    figure = charts.reliability_diagram(*evaluate_tab.reliability_of(plain))
    assert [trace.name for trace in figure.data] == ["perfect calibration", "this run"]
    assert "fitted no temperature" in figure.layout.title.text
    empty = charts.reliability_diagram(*evaluate_tab.reliability_of(None))
    assert "Evaluate a run" in str(empty.layout)
