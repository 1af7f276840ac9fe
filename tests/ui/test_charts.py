"""The plotly figure builders: traces, axes and the empty states, without Gradio."""

from __future__ import annotations

import math

import plotly.graph_objects as go

from studio.ui import charts


def _history() -> list[dict]:
    rows = []
    for epoch in range(1, 4):
        for quarter in (0.25, 0.5, 0.75):
            rows.append({"epoch": epoch - 1 + quarter, "loss": 2.0 / epoch, "lr": 1e-3 * quarter})
        rows.append({"epoch": epoch, "train_loss": 1.5 / epoch, "train_accuracy": 0.5 + 0.1 * epoch,
                     "val_loss": 1.8 / epoch, "val_accuracy": 0.4 + 0.15 * epoch, "lr": 1e-3})
    return rows


def _traces(fig: go.Figure) -> dict[str, list[go.Scatter]]:
    by_name: dict[str, list] = {}
    for trace in fig.data:
        by_name.setdefault(trace.name, []).append(trace)
    return by_name


def test_normalize_point_maps_aliases_and_drops_unusable_values() -> None:
    point = charts.normalize_point(
        {"epoch": "2", "val_accuracy": 0.9, "loss": float("nan"), "learning_rate": 0.01}
    )
    assert point == {"epoch": 2.0, "val_acc": 0.9, "lr": 0.01}
    assert charts.normalize_point({"epoch": 1}) is None  # no metric at all
    assert charts.normalize_point({"val_acc": 0.5}) is None  # no position
    assert charts.normalize_point({"epoch": None, "loss": 1.0}) is None


def test_normalize_history_sorts_by_epoch() -> None:
    points = charts.normalize_history([{"epoch": 2, "loss": 1}, {"epoch": 0.5, "loss": 2}, {"junk": 1}])
    assert [p["epoch"] for p in points] == [0.5, 2.0]


def test_training_curves_has_train_and_validation_in_loss_and_accuracy_panels() -> None:
    fig = charts.training_curves(_history(), title="run 1")
    traces = _traces(fig)
    assert set(traces) == {"train loss (batches)", "train", "validation", "learning rate"}
    # train and validation each appear in the loss (x) and accuracy (x2) panels, legend entry once.
    assert sorted(t.xaxis for t in traces["validation"]) == ["x", "x2"]
    assert sum(bool(t.showlegend) for t in traces["validation"]) == 1
    batches = traces["train loss (batches)"][0]
    assert list(batches.x) == [0.25, 0.5, 0.75, 1.25, 1.5, 1.75, 2.25, 2.5, 2.75]
    # Epoch train loss only uses whole-epoch points; accuracy is shown in percent.
    train_loss = next(t for t in traces["train"] if t.xaxis == "x")
    assert list(train_loss.x) == [1.0, 2.0, 3.0]
    val_acc = next(t for t in traces["validation"] if t.xaxis == "x2")
    assert [round(v, 6) for v in val_acc.y] == [55.0, 70.0, 85.0]
    assert traces["learning rate"][0].xaxis == "x3"
    assert fig.layout.title.text == "run 1"
    # auto's curve scores held-out training images, and its legend says so
    held_out = _traces(charts.training_curves(_history(), val_name="held-out training images"))
    assert "validation" not in held_out and len(held_out["held-out training images"]) == 2


def test_training_curves_respects_explicit_epoch_end_flag() -> None:
    rows = [
        {"epoch": 0.5, "loss": 1.0, "epoch_end": False},
        {"epoch": 0.5, "train_loss": 0.9, "epoch_end": True},
    ]
    traces = _traces(charts.training_curves(rows))
    assert list(traces["train loss (batches)"][0].y) == [1.0]
    assert list(traces["train"][0].y) == [0.9]


def test_training_curves_empty_history_explains_itself() -> None:
    fig = charts.training_curves([])
    assert not fig.data
    assert "No curves yet" in fig.layout.annotations[0].text


def test_compare_runs_one_color_per_run_and_skips_empty_runs() -> None:
    fig = charts.compare_runs({"run a": _history(), "run b": _history()[4:], "empty": []})
    traces = _traces(fig)
    assert set(traces) == {"run a", "run b"}
    colors = {name: {t.line.color for t in ts} for name, ts in traces.items()}
    assert len(colors["run a"]) == 1 and colors["run a"] != colors["run b"]
    assert {t.xaxis for t in traces["run a"]} == {"x", "x2"}
    assert "Pick two or more" in charts.compare_runs({}).layout.annotations[0].text


def test_confusion_heatmap_colors_by_row_share_and_labels_counts() -> None:
    fig = charts.confusion_heatmap([[8, 2], [0, 0]], ["cat", "dog"])
    heat = fig.data[0]
    assert list(heat.x) == ["cat", "dog"] and list(heat.y) == ["cat", "dog"]
    assert [list(r) for r in heat.z] == [[0.8, 0.2], [0.0, 0.0]]  # an empty row does not divide by zero
    assert [list(r) for r in heat.text] == [[8, 2], [0, 0]]
    assert fig.layout.yaxis.autorange == "reversed"
    assert not charts.confusion_heatmap([], []).data


def test_topk_bars_most_likely_on_top_in_percent() -> None:
    fig = charts.topk_bars([{"class": "rose", "probability": 0.7}, {"class": "tulip", "probability": 0.2},
                            {"class": "daisy", "probability": 0.1}])
    bar = fig.data[0]
    assert list(bar.y) == ["daisy", "tulip", "rose"]  # plotly draws the first category at the bottom
    assert list(bar.text) == ["10.0%", "20.0%", "70.0%"]
    assert tuple(fig.layout.xaxis.range) == (0, 1)
    assert math.isclose(sum(bar.x), 1.0)
    assert not charts.topk_bars([]).data


def test_history_from_events_places_steps_inside_epochs_and_stages_end_to_end() -> None:
    events = [{"type": "state", "state": "running"}, {"type": "stage", "name": "head"}]
    for epoch in (1, 2):  # stage "head": 4 steps per epoch, logged every 2
        for step in (2, 4):
            events.append({"type": "step", "stage": "head", "epoch": epoch, "step": (epoch - 1) * 4 + step,
                           "loss": 1.0, "lr": 0.01})
        events.append(
            {"type": "epoch", "stage": "head", "epoch": epoch, "train_loss": 0.9, "val_accuracy": 0.5}
        )
    events.append({"type": "step", "stage": "top", "epoch": 1, "step": 2, "loss": 0.5, "lr": 0.001})
    events.append({"type": "epoch", "stage": "top", "epoch": 1, "val_accuracy": 0.8})
    events.append({"type": "log", "message": "done"})
    points = charts.history_from_events(events)
    positions = [(p["type"], p["epoch"]) for p in points]
    assert positions == [("step", 0.5), ("step", 1.0), ("epoch", 1.0), ("step", 1.5), ("step", 2.0),
                         ("epoch", 2.0), ("step", 3.0), ("epoch", 3.0)]
    fig = charts.training_curves(points)
    val = next(t for t in fig.data if t.name == "validation")
    assert list(val.x) == [1.0, 2.0, 3.0]
    batches = next(t for t in fig.data if t.name == "train loss (batches)")
    assert len(batches.x) == 5  # every step point, none mistaken for an epoch end


def test_history_from_events_spreads_a_running_first_epoch_and_reads_csv_rows() -> None:
    running = [{"type": "step", "stage": "finetune", "epoch": 1, "step": s, "loss": 1.0} for s in (5, 10, 15)]
    xs = [p["epoch"] for p in charts.history_from_events(running)]
    assert xs == sorted(xs) and 0 < xs[0] and xs[-1] < 1
    csv_rows = [{"stage": "finetune", "epoch": "1", "val_accuracy": "0.5"},
                {"stage": "finetune", "epoch": "2", "val_accuracy": ""}]
    points = charts.normalize_history(charts.history_from_events(csv_rows))
    assert [p["epoch"] for p in points] == [1.0]  # the row without a metric is dropped


def test_steps_are_placed_by_the_engines_steps_per_epoch() -> None:
    """19 steps per epoch logged every 5: the last logged step (15) must not be taken for the epoch's end."""
    events = []
    for epoch in (1, 2):
        for step in range((epoch - 1) * 19 + 1, epoch * 19 + 1):
            if step % 5 == 0:
                events.append({"type": "step", "stage": "finetune", "epoch": epoch, "step": step,
                               "steps_per_epoch": 19, "lr": 0.001})
        events.append({"type": "epoch", "stage": "finetune", "epoch": epoch, "val_accuracy": 0.5})
    steps = [p for p in charts.history_from_events(events) if p["type"] == "step"]
    assert [round(p["epoch"], 3) for p in steps] == [round(s / 19, 3) for s in (5, 10, 15, 20, 25, 30, 35)]


def test_validation_lines_break_over_epochs_without_a_validation_score() -> None:
    # Auto: a fine-tune scored for two epochs, then two epochs on every training image (no score), then a
    # second fine-tune scored again: no line may join epoch 2's score to epoch 5's across the gap.
    rows = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": 0.9,
             **({"val_loss": 0.5, "val_accuracy": 0.8} if e in (1, 2, 5) else {})} for e in range(1, 6)]
    val = next(t for t in charts.training_curves(rows).data if t.name == "validation" and t.xaxis == "x2")
    assert list(val.x) == [1, 2, 3, 5] and list(val.y) == [80.0, 80.0, None, 80.0]
    assert not val.connectgaps
    compared = charts.compare_runs({"auto": rows, "plain": _history()})
    auto_acc = next(t for t in compared.data if t.name == "auto" and t.xaxis == "x")
    assert list(auto_acc.y) == [80.0, 80.0, None, 80.0]
    plain_acc = next(t for t in compared.data if t.name == "plain" and t.xaxis == "x")
    assert None not in list(plain_acc.y)  # a run scored every epoch has no gap
