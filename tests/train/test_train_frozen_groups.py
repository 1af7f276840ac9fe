"""Frozen low layer groups (auto keeps the stem and the lowest block groups fixed) and the default batch
size."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from train_helpers import TINY_BACKBONE, resolved, tiny_config

from studio.errors import StudioError
from studio.predict.checkpoint import load_model
from studio.train import TrainConfig, train
from studio.train.config import AUTO_FROZEN_GROUPS


@pytest.fixture
def weights_file(tmp_path):
    """A 'pretrained' weights file for the tiny backbone (random, but fixed and known)."""
    torch.manual_seed(1)
    path = tmp_path / "tiny.pth"
    torch.save(timm.create_model(TINY_BACKBONE, num_classes=0).state_dict(), path)
    return path


def _changed(run_dir, start: dict[str, torch.Tensor]) -> dict[str, bool]:
    trained = load_model(run_dir).model.state_dict()
    return {name: not torch.equal(trained[name], value) for name, value in start.items()
            if name.endswith("weight") and "bn" not in name}


def test_frozen_groups_stay_at_their_pretrained_values(project, weights_file):
    start = torch.load(weights_file)
    result = train(
        project, tiny_config(pretrained=True, weights=str(weights_file), epochs=2, frozen_groups=3)
    )
    changed = _changed(result.run_dir, start)
    # test_efficientnet's groups: stem, blocks.0, blocks.1 (frozen); blocks.2 and up train.
    assert not any(changed[n] for n in changed if n.startswith(("conv_stem", "blocks.0.", "blocks.1.")))
    assert all(changed[n] for n in changed if n.startswith(("blocks.3.", "blocks.4.", "conv_head")))
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["resolved"]["frozen_groups"] == 3
    assert "top 3 of 6 layer groups" in result.reason


def test_finetune_trains_every_layer_by_default(project, weights_file):
    start = torch.load(weights_file)
    result = train(project, tiny_config(pretrained=True, weights=str(weights_file), epochs=2))
    assert all(_changed(result.run_dir, start).values())
    assert "all layers" in result.reason


def test_at_least_one_group_above_the_frozen_ones_trains(project, weights_file):
    start = torch.load(weights_file)
    result = train(project, tiny_config(pretrained=True, weights=str(weights_file), frozen_groups=50))
    changed = _changed(result.run_dir, start)
    assert any(changed[n] for n in changed if n.startswith(("blocks.4.", "conv_head")))
    assert not any(changed[n] for n in changed if n.startswith(("conv_stem", "blocks.0.", "blocks.3.")))
    assert "50 frozen were asked for, but one group always trains" in result.reason  # said, not silent


def test_resolved_frozen_groups_per_strategy():
    def frozen(**settings) -> int:
        return resolved(**settings).frozen_groups

    assert frozen() == AUTO_FROZEN_GROUPS
    assert frozen(strategy="finetune") == 0
    assert frozen(strategy="finetune", frozen_groups=2) == 2
    assert frozen(frozen_groups=0) == 0
    assert frozen(strategy="auto", pretrained=False) == 0  # random weights must all learn


@pytest.mark.parametrize("settings, message", [
    ({"frozen_groups": -1}, "at least 0"),
    ({"frozen_groups": True}, "whole number"),
    ({"strategy": "scratch", "frozen_groups": 2}, "must all learn"),
    ({"strategy": "finetune", "pretrained": False, "frozen_groups": 2}, "must all learn"),
    ({"strategy": "two-stage", "frozen_groups": 2}, "unfreeze_groups"),
])
def test_bad_frozen_groups_are_refused(settings, message):
    with pytest.raises(StudioError, match=message):
        TrainConfig(**settings)


def test_default_batch_leaves_enough_steps_per_epoch():
    """Few images: the batch halves (down to 8) until an epoch has 10 optimizer steps."""
    def batch(n_train: int, device: str, **settings) -> int:
        return resolved(n_train, device, **settings).batch_size

    assert batch(6000, "cpu") == 32 and batch(6000, "cuda") == 64
    assert batch(600, "cpu") == 32 and batch(600, "cuda") == 32
    assert batch(164, "cpu") == 16
    assert batch(40, "cpu") == 8
    assert batch(164, "cpu", batch_size=32) == 32  # asked for: kept
