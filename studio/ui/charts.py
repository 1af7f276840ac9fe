"""Plotly figure builders for the Train, Evaluate and Predict tabs.

Pure functions from plain data (lists of dicts, lists of lists) to `plotly.graph_objects.Figure`, so they
can be tested without Gradio. A training history is a list of "points": dicts with an `epoch` (float;
fractional for points inside an epoch) and any of `train_loss`, `train_acc`, `val_loss`, `val_acc`, `lr`.
`normalize_point` accepts the other spellings the engine and metrics.csv use.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")

# Other names for the same quantity (engine events, metrics.csv columns, older runs).
_ALIASES: dict[str, tuple[str, ...]] = {
    "train_loss": ("train_loss", "loss"),
    "train_acc": ("train_acc", "train_accuracy", "accuracy", "acc"),
    "val_loss": ("val_loss", "valid_loss", "validation_loss"),
    "val_acc": ("val_acc", "val_accuracy", "valid_accuracy", "validation_accuracy"),
    "lr": ("lr", "learning_rate"),
}

TRAIN_COLOR = "#2563eb"
VAL_COLOR = "#ea580c"
LR_COLOR = "#059669"
# A qualitative palette with enough contrast for several runs on one chart.
RUN_COLORS = ("#2563eb", "#ea580c", "#059669", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#4b5563")

_LAYOUT = {
    "template": "plotly_white",
    "margin": {"l": 50, "r": 20, "t": 50, "b": 45},
    "font": {"size": 12},
    "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.08, "xanchor": "left", "x": 0},
}


def _number(value: Any) -> float | None:
    """A finite float, or None for missing / blank / NaN values."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def normalize_point(raw: Mapping[str, Any]) -> dict[str, float] | None:
    """One history point with canonical keys, or None when it has no epoch position or no metric."""
    epoch = _number(raw.get("epoch"))
    if epoch is None:
        return None
    point: dict[str, float] = {"epoch": epoch}
    for key, names in _ALIASES.items():
        for name in names:
            value = _number(raw.get(name))
            if value is not None:
                point[key] = value
                break
    if len(point) == 1:
        return None
    if "epoch_end" in raw:  # explicit flag from the event translator; else whole epochs mean epoch ends
        point["epoch_end"] = 1.0 if raw["epoch_end"] else 0.0
    return point


def normalize_history(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, float]]:
    """Canonical points sorted by epoch (stable: points logged at the same position keep their order)."""
    points = [p for p in (normalize_point(r) for r in rows) if p is not None]
    return sorted(points, key=lambda p: p["epoch"])


def history_from_events(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chart points from a training job's events (or metrics.csv rows, which are epoch rows).

    The engine numbers epochs from 1 within each stage (two-stage, gradual and auto run several), so
    stages are laid end to end: a stage's epoch k is drawn at (epochs of earlier stages) + k. Step events
    carry a step count cumulative within the stage; they are placed inside their epoch by the engine's
    `steps_per_epoch` (events without it: the steps per epoch seen so far; before the first epoch ends,
    spread over the steps already seen).
    """
    points: list[dict[str, Any]] = []
    stage: Any = object()
    offset = 0.0  # epochs completed by earlier stages
    stage_epochs = 0  # epochs completed in the current stage
    steps_per_epoch: float | None = None
    pending: list[dict[str, Any]] = []  # step points of the current epoch 1, placed once its length is known

    for event in events:
        kind = event.get("type", "epoch")
        if kind not in ("step", "epoch"):
            continue
        if event.get("stage") != stage:
            stage, offset, stage_epochs, steps_per_epoch = event.get("stage"), offset + stage_epochs, 0, None
            pending = []
        epoch = _number(event.get("epoch"))
        if epoch is None:
            continue
        if kind == "epoch":
            step_count = max((p["_step"] for p in pending), default=None)
            if steps_per_epoch is None and step_count:
                steps_per_epoch = step_count / epoch
                for p in pending:
                    p["epoch"] = offset + min(p["_step"] / steps_per_epoch, epoch)
            pending = []
            stage_epochs = max(stage_epochs, int(epoch))
            points.append({**event, "epoch": offset + epoch, "epoch_end": True})
            continue
        step = _number(event.get("step"))
        if step is None:
            continue
        point = {**event, "epoch": offset + epoch - 0.5, "epoch_end": False, "_step": step}
        per_epoch = _number(event.get("steps_per_epoch")) or steps_per_epoch
        if per_epoch:
            point["epoch"] = offset + min(max(step / per_epoch, epoch - 1), epoch)
        else:
            pending.append(point)
        points.append(point)
    if pending:  # the stage's first epoch is still running: spread its steps over it by step count
        last = max(p["_step"] for p in pending)
        for p in pending:
            p["epoch"] = offset + p["_step"] / (last + 1)
    for p in points:
        p.pop("_step", None)
    return points


def _series(points: Sequence[Mapping[str, float]], key: str, *, whole_epochs: bool | None = None,
            gaps: bool = False):
    """(x, y) of the points that have `key`; whole_epochs keeps only (True) or drops (False) epoch ends.
    With `gaps`, an epoch end without `key` after one with it is a None (plotly breaks the line there):
    auto's epochs on every training image have no validation score, and a line drawn across them to a
    later stage's scores would invent a curve."""
    xs, ys = [], []
    for p in points:
        is_whole = bool(p.get("epoch_end", float(p["epoch"]).is_integer()))
        if key not in p:
            if gaps and is_whole and ys and ys[-1] is not None:
                xs.append(p["epoch"])
                ys.append(None)
            continue
        if whole_epochs is not None and is_whole != whole_epochs:
            continue
        xs.append(p["epoch"])
        ys.append(p[key])
    return xs, ys


def _as_percent(values: list[float | None]) -> list[float | None]:
    # Accuracies arrive as fractions (0..1); charts read better in percent.
    return [v * 100 if v is not None and v <= 1.0 else v for v in values]


def empty_figure(message: str, height: int = 320) -> go.Figure:
    """A blank figure that says why there is nothing to show."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font={"size": 14, "color": "#6b7280"},
                       xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(**{**_LAYOUT, "height": height})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def training_curves(rows: Iterable[Mapping[str, Any]], title: str | None = None,
                    val_name: str = "validation") -> go.Figure:
    """Loss, accuracy (train and validation) and learning rate of one run, side by side, against epochs.
    `val_name` names what the validation points score (auto scores held-out training images)."""
    points = normalize_history(rows)
    if not points:
        return empty_figure("No curves yet: start a training run or pick a job.")
    fig = make_subplots(rows=1, cols=3, subplot_titles=("Loss", "Accuracy (%)", "Learning rate"),
                        horizontal_spacing=0.07)
    # Loss inside an epoch is noisy: a thin line; epoch averages (whole epochs) as markers on top.
    x, y = _series(points, "train_loss", whole_epochs=False)
    if x:
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="train loss (batches)",
                                 line={"color": TRAIN_COLOR, "width": 1}, opacity=0.45), 1, 1)
    specs = [
        ("train_loss", "train", TRAIN_COLOR, 1, False),
        ("val_loss", val_name, VAL_COLOR, 1, False),
        ("train_acc", "train", TRAIN_COLOR, 2, True),
        ("val_acc", val_name, VAL_COLOR, 2, True),
    ]
    shown: set[str] = set()
    for key, name, color, col, percent in specs:
        x, y = _series(points, key, whole_epochs=True if key == "train_loss" else None,
                       gaps=key.startswith("val_"))
        if not x:
            continue
        fig.add_trace(go.Scatter(
            x=x, y=_as_percent(y) if percent else y, mode="lines+markers", name=name, legendgroup=name,
            showlegend=name not in shown, line={"color": color, "width": 2}, marker={"size": 6},
        ), 1, col)
        shown.add(name)
    x, y = _series(points, "lr")
    if x:
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="learning rate",
                                 line={"color": LR_COLOR, "width": 2}), 1, 3)
        fig.update_yaxes(exponentformat="e", row=1, col=3)
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_layout(**{**_LAYOUT, "height": 340, "title": {"text": title or "", "x": 0.5, "y": 0.98}})
    return fig


def compare_runs(curves: Mapping[str, Iterable[Mapping[str, Any]]]) -> go.Figure:
    """Validation accuracy and loss of several runs on shared axes, one color per run."""
    histories = {name: normalize_history(rows) for name, rows in curves.items()}
    histories = {name: pts for name, pts in histories.items() if pts}
    if not histories:
        return empty_figure("Pick two or more runs with recorded curves to compare them.")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Validation accuracy (%)", "Validation loss"),
                        horizontal_spacing=0.08)
    for index, (name, points) in enumerate(histories.items()):
        color = RUN_COLORS[index % len(RUN_COLORS)]
        for col, key in ((1, "val_acc"), (2, "val_loss")):
            x, y = _series(points, key, gaps=True)
            if not x:
                continue
            fig.add_trace(go.Scatter(
                x=x, y=_as_percent(y) if key == "val_acc" else y, mode="lines+markers", name=name,
                legendgroup=name, showlegend=col == 1 or not _series(points, "val_acc")[0],
                line={"color": color, "width": 2}, marker={"size": 5},
            ), 1, col)
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    fig.update_layout(**{**_LAYOUT, "height": 360})
    return fig


def confusion_heatmap(matrix: Sequence[Sequence[float]], class_names: Sequence[str]) -> go.Figure:
    """Confusion matrix: rows are true classes, columns predicted; color is the row fraction, text the
    count."""
    if not class_names or not matrix:
        return empty_figure("No evaluation yet: pick a run and press Evaluate.")
    counts = [[int(v) for v in row] for row in matrix]
    fractions = []
    for row in counts:
        total = sum(row)
        fractions.append([v / total if total else 0.0 for v in row])
    labels = [str(c) for c in class_names]
    fig = go.Figure(go.Heatmap(
        z=fractions, x=labels, y=labels, text=counts, texttemplate="%{text}", colorscale="Blues",
        zmin=0, zmax=1, colorbar={"title": "share of<br>true class", "tickformat": ".0%"},
        hovertemplate="true %{y}<br>predicted %{x}<br>%{text} images (%{z:.0%})<extra></extra>",
        xgap=1, ygap=1,
    ))
    side = max(320, min(720, 120 + 48 * len(labels)))
    fig.update_layout(**{**_LAYOUT, "height": side, "showlegend": False})
    fig.update_xaxes(title_text="predicted", side="bottom", type="category")
    # First class at the top, like a printed table.
    fig.update_yaxes(title_text="true", autorange="reversed", type="category")
    return fig


def topk_bars(top: Sequence[Mapping[str, Any]], title: str | None = None) -> go.Figure:
    """Horizontal bars of the top-k classes of one prediction, most likely on top."""
    if not top:
        return empty_figure("No prediction yet: upload an image.", height=260)
    names = [str(t["class"]) for t in top][::-1]
    probs = [float(t["probability"]) for t in top][::-1]
    colors = [RUN_COLORS[0] if i == len(probs) - 1 else "#93c5fd" for i in range(len(probs))]
    fig = go.Figure(go.Bar(
        x=probs, y=names, orientation="h", marker_color=colors,
        text=[f"{p:.1%}" for p in probs], textposition="auto",
        hovertemplate="%{y}: %{x:.1%}<extra></extra>",
    ))
    fig.update_layout(**{**_LAYOUT, "height": max(200, 80 + 36 * len(names)), "showlegend": False,
                         "title": {"text": title or "", "x": 0.5}})
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title_text="probability")
    fig.update_yaxes(type="category")
    return fig


def reliability_diagram(
    reliability: Mapping[str, Any] | None, calibration: Mapping[str, Any] | None = None
) -> go.Figure:
    """Accuracy against confidence per confidence bin, before and after the run's temperature scaling;
    the diagonal is perfect calibration. `reliability` is evaluate()'s {"before": bins, "after": bins}."""
    if not reliability or not (reliability.get("after") or reliability.get("before")):
        return empty_figure("Evaluate a run to see how well its confidence matches its accuracy.", height=320)
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                               line={"dash": "dot", "color": "#9ca3af"}, hoverinfo="skip"))
    # A run that fitted no temperature (a manual fine-tune, an SVM or k-NN probe): one curve, its own.
    calibrated = (not calibration or bool(calibration.get("fitted_on"))
                  or calibration.get("temperature", 1.0) != 1.0)
    curves = ((("before", "before calibration", "#93c5fd"), ("after", "calibrated", RUN_COLORS[0]))
              if calibrated else (("after", "this run", RUN_COLORS[0]),))
    for key, label, color in curves:
        bins = reliability.get(key) or []
        if not bins:
            continue
        fig.add_trace(
            go.Scatter(
                x=[b["confidence"] for b in bins],
                y=[b["accuracy"] for b in bins],
                mode="lines+markers",
                name=label,
                marker={"size": [6 + min(14, b["n"]) for b in bins], "color": color},
                line={"color": color},
                customdata=[[b["n"], b["low"], b["high"]] for b in bins],
                hovertemplate="confidence %{customdata[1]:.0%}-%{customdata[2]:.0%}: "
                "%{customdata[0]} images, accuracy %{y:.0%}<extra>" + label + "</extra>",
            )
        )
    title = "Reliability (validation)"
    if not calibrated:
        title += f": ECE {calibration['ece_after']:.3f} (this run fitted no temperature)"
    elif calibration:
        title += (f": ECE {calibration['ece_before']:.3f} → {calibration['ece_after']:.3f}, "
                  f"temperature {calibration['temperature']:.2f}")
    fig.update_layout(**{**_LAYOUT, "height": 340, "title": {"text": title, "x": 0.5},
                         "legend": {"orientation": "h", "y": -0.25}})
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title_text="confidence (top probability)")
    fig.update_yaxes(range=[0, 1], tickformat=".0%", title_text="accuracy")
    return fig
