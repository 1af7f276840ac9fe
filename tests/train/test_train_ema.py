"""Weight averaging (EMA) and the settings auto resolves for its fine-tune."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import resolved, tiny_config

from studio.errors import StudioError
from studio.predict.checkpoint import load_model
from studio.train import TrainConfig, train
from studio.train.config import AUTO_EMA_DECAY


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in load_model(run_dir).model.state_dict().items() if v.is_floating_point()}


def test_ema_checkpoint_holds_the_averaged_weights(project):
    """Same seed, same data: the EMA run keeps different (averaged) weights and records its decay."""
    plain = train(project, tiny_config(epochs=2, ema_decay=0.0))
    averaged = train(project, tiny_config(epochs=2, ema_decay=0.9))
    config = json.loads((averaged.run_dir / "config.json").read_text())
    assert config["resolved"]["ema_decay"] == pytest.approx(0.9)
    a, b = _weights(plain.run_dir), _weights(averaged.run_dir)
    assert a.keys() == b.keys()
    assert any(not torch.allclose(a[k], b[k]) for k in a)
    # The averaged model is a complete, working classifier.
    assert 0.0 <= averaged.val_accuracy <= 1.0


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_bad_ema_decay_is_refused(decay):
    with pytest.raises(StudioError, match="ema_decay"):
        TrainConfig(ema_decay=decay)


def test_auto_resolves_a_fresh_head_fine_tune():
    """Auto: backbone at a fifth of the head's rate, label smoothing, EMA, more epochs on few images."""
    few = resolved(160, class_counts=[60, 100])
    assert few.backbone_lr == pytest.approx(few.lr / 5)
    assert few.label_smoothing == pytest.approx(0.1)
    assert few.ema_decay == pytest.approx(AUTO_EMA_DECAY)
    assert few.epochs == 20  # 5 steps per epoch: capped at 20 epochs
    many = resolved(6000)
    assert many.epochs == 8
    # Other strategies keep their own defaults: no EMA unless asked, probe-first ones start gently.
    finetune = resolved(strategy="finetune")
    assert finetune.ema_decay == 0.0 and finetune.epochs == 8
    two_stage = resolved(strategy="two-stage")
    assert two_stage.backbone_lr == pytest.approx(5e-5) and two_stage.label_smoothing == 0.0
    asked = resolved(ema_decay=0.0)
    assert asked.ema_decay == 0.0
