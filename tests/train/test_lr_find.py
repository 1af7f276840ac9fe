"""The learning-rate finder on a tiny project: the sweep, its suggestion, the CLI and its chart."""

from __future__ import annotations

import json

import numpy as np
from train_helpers import TINY_BACKBONE, tiny_config

from studio.cli import main
from studio.train.lr_find import lr_find, suggest_rate, sweep_chart


def test_suggestion_is_the_steepest_descent_before_the_minimum():
    rates = np.logspace(-6, 0, 61)
    x = np.log10(rates)
    losses = 2.0 - np.tanh(2 * (x + 3)) + np.where(x > -1, 30 * (x + 1) ** 2, 0)  # falls fastest at 1e-3
    assert 5e-4 <= suggest_rate(rates, losses) <= 2e-3
    assert suggest_rate(rates[:2], losses[:2]) is None


def test_lr_find_sweeps_a_tiny_project(project):
    result = lr_find(project, tiny_config(epochs=None), steps=12, start_lr=1e-5, end_lr=10.0)
    rates, losses = np.array(result["rates"]), np.array(result["losses"])
    assert 5 <= result["steps"] == len(rates) == len(losses) <= 12
    assert np.all(np.diff(rates) > 0) and rates[0] == 1e-5 and np.all(np.isfinite(losses))
    assert result["suggested_lr"] is None or 1e-5 <= result["suggested_lr"] <= 10.0
    figure = sweep_chart(result)
    assert figure.layout.xaxis.type == "log" and len(figure.data) == 1


def test_lr_find_command_writes_json_and_a_chart(project, capsys, tmp_path):
    chart = tmp_path / "lr.html"
    args = [
        "lr-find",
        str(project.root),
        "--backbone",
        TINY_BACKBONE,
        "--no-pretrained",
        "--image-size",
        "64",
        "--batch-size",
        "4",
        "--steps",
        "8",
        "--device",
        "cpu",
        "--chart",
        str(chart),
        "--json",
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["steps"] >= 5 and "suggested_lr" in result and chart.is_file()
    assert main(["lr-find", str(project.root), "--steps", "2"]) == 2  # a bad flag is one line, exit 2
