"""What a training run does: one serializable dataclass, plus defaults resolved from the data.

Fields left as None are filled by `resolve` from the data, the backbone and the device, and the
resolved values are what `config.json` records, so a run can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from studio.augment.project_settings import augment_from_setting
from studio.errors import StudioError
from studio.models.registry import DEFAULT_BACKBONE, check_backbone
from studio.train.limits import check_limits

# Auto's default time budget. On CPU the whole auto run on ~750 images stays under 5 minutes (flowers on
# 2 cores: bench/engine.py).
CPU_TIME_BUDGET_S = 270.0
GPU_TIME_BUDGET_S = 600.0

STRATEGIES = ("auto", "linear", "finetune", "two-stage", "gradual", "scratch")
HEADS = ("logreg", "svm", "knn", "torch")
BALANCE_MODES = ("auto", "weights", "sampler", "none")
DEVICES = ("auto", "cpu", "cuda", "mps")
PROBE_FIRST = ("two-stage", "gradual")  # strategies whose fine-tuning starts from a linear probe head
AUTO_STEPS = 250
# On few images a full-size batch leaves too few optimizer steps per epoch: halve it (down to
# MIN_BATCH) until an epoch has MIN_STEPS_PER_EPOCH. On MRI (164 images) batch 16 instead of 32
# took auto's fine-tune from 95.1% to 97.6% on 3 of 3 seeds (bench/engine.py).
MIN_STEPS_PER_EPOCH = 10
MIN_BATCH = 8
AUTO_EMA_DECAY = 0.998  # auto's weight average: with warmup it follows ~1 epoch early on, ~2-3 later
# Auto keeps the stem and the two lowest block groups (generic edges and textures) frozen: on
# EfficientNet-Lite0 that halves a CPU training step, and on flowers it scored higher (bench/engine.py).
AUTO_FROZEN_GROUPS = 3


@dataclass
class TrainConfig:
    """Settings of one training run. None means "choose from the data" (see `resolve`).

    strategy: auto (linear probe, then fine-tune from it when time allows; keeps the best),
        linear (features + a classifier head), finetune (all layers, discriminative rates),
        two-stage (head, then the top `unfreeze_groups` block groups), gradual (one more block group
        per stage, top down), scratch (random weights; a baseline only).
    head: the linear strategy's classifier: logreg, svm, knn or torch (a linear layer).
    lr: the head's learning rate; backbone_lr: the backbone's (AdamW); layer_decay: optional
        layer-wise decay of the backbone rate per block group from the top (e.g. 0.7).
    balance: class balancing: weights (loss weights), sampler (balanced sampling), none, or auto
        (loss weights when the largest class is over 1.5x the smallest).
    augment: a preset name (none, light, medium, heavy, randaugment) or a dict of strengths
        (`studio.augment.AugmentConfig` fields, e.g. the Augment tab's custom settings); cutmix / mixup,
        when above 0, override the augmentation's own CutMix / MixUp strengths.
    freeze_bn: keep BatchNorm statistics fixed while fine-tuning (faster on CPU, steadier on small data).
    label_smoothing: default 0.1 when the head starts random, 0 when it starts from a fitted probe
        (auto, two-stage, gradual): smoothing would first pull a calibrated head's logits apart.
    time_budget_s: for auto, the wall-clock budget the fine-tuning stage must fit in.
    candidates: for auto, backbones to compare with `backbone` (studio.train.backbone_choice). None: the
        bundled ones when `backbone` is bundled (Lite0, Lite1, Lite2 offline), else `backbone` alone.
    ema_decay: keep an exponential moving average of the weights (timm's ModelEmaV3, warmed up) and
        validate/checkpoint it; 0 turns it off. None: on for auto's fine-tuning, off otherwise.
    frozen_groups: how many block groups, from the stem up, stay frozen while auto or finetune train
        (at least one group above them always trains). None: 3 for auto (the stem and the two lowest
        block groups), 0 for finetune (all layers).
    ensemble: for auto, a kept fine-tune is averaged with the linear probe (refit on all training images)
        unless the average is clearly worse on the held-out training images; False keeps the fine-tune
        alone (one network: half the inference time).
    patience: for the manual strategies (finetune, two-stage, gradual, scratch). None (the default): the
        run trains its whole schedule and keeps the last epoch's weights; validation is scored every
        epoch for the charts only, so the reported number is not chosen on it. N: early stopping after N
        epochs without a better validation result, and the best epoch on validation is kept: the epoch
        is then chosen on the split the run reports, so that number is optimistic (the run says so).
    """

    strategy: str = "auto"
    backbone: str = DEFAULT_BACKBONE
    weights: str | None = None
    pretrained: bool = True
    head: str = "logreg"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    backbone_lr: float | None = None
    layer_decay: float | None = None
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    label_smoothing: float | None = None
    balance: str = "auto"
    image_size: int | None = None
    augment: str | dict[str, Any] = "light"
    cutmix: float = 0.0
    mixup: float = 0.0
    patience: int | None = None
    freeze_bn: bool | None = None
    unfreeze_groups: int = 2
    flip_features: bool = True
    ema_decay: float | None = None
    frozen_groups: int | None = None
    time_budget_s: float | None = None
    candidates: tuple[str, ...] | None = None
    ensemble: bool = True
    seed: int = 0
    device: str = "auto"
    log_every: int = 5

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """StudioError for any setting a user could get wrong, naming the allowed values."""
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("head", self.head, HEADS)
        _choice("balance", self.balance, BALANCE_MODES)
        _choice("device", self.device, DEVICES)
        augment_from_setting(self.augment)  # a preset name or a dict of strengths; StudioError otherwise
        if self.strategy == "scratch" and self.weights:
            raise StudioError(
                "Strategy 'scratch' trains from random weights; drop --weights or pick another strategy."
            )
        for name in ("epochs", "batch_size", "image_size", "patience"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise StudioError(f"{_setting(name)} must be a whole number of at least 1, got {value!r}.")
        if self.image_size is not None and not 32 <= self.image_size <= 1024:
            raise StudioError(f"Image size must be between 32 and 1024 pixels, got {self.image_size}.")
        if self.frozen_groups is not None and (
            isinstance(self.frozen_groups, bool)
            or not isinstance(self.frozen_groups, int)
            or self.frozen_groups < 0
        ):
            raise StudioError(
                f"frozen_groups must be a whole number of at least 0, got {self.frozen_groups!r}."
            )
        if self.frozen_groups and not self.uses_pretrained:
            raise StudioError("Random weights (scratch, --no-pretrained) must all learn: drop frozen_groups.")
        if self.frozen_groups and self.strategy not in ("auto", "finetune"):
            raise StudioError(f"frozen_groups applies to the auto and finetune strategies; {self.strategy!r} "
                              "chooses its own frozen layers (two-stage: unfreeze_groups).")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise StudioError(f"ema_decay must be at least 0 (off) and below 1, got {self.ema_decay!r}.")
        for name in ("lr", "backbone_lr", "time_budget_s"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, (int, float)) and math.isfinite(value) and value > 0
            ):
                raise StudioError(f"{_setting(name)} must be a positive number, got {value!r}.")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise StudioError(f"layer_decay must be in (0, 1] (e.g. 0.7), got {self.layer_decay!r}.")
        if self.label_smoothing is not None and not 0 <= self.label_smoothing < 1:
            raise StudioError(
                f"label_smoothing must be in [0, 1) (0.1 is typical), got {self.label_smoothing!r}."
            )
        for name in ("cutmix", "mixup"):
            if not 0 <= getattr(self, name) <= 4:
                raise StudioError(
                    f"{name} must be a Beta alpha between 0 (off) and 4, got {getattr(self, name)!r}."
                )
        if self.candidates is not None:
            if isinstance(self.candidates, str) or not all(isinstance(n, str) for n in self.candidates):
                raise StudioError(f"candidates must be a list of backbone names, got {self.candidates!r}.")
            if self.strategy != "auto":
                raise StudioError("candidates (backbones to compare) applies to the auto strategy only.")
            self.candidates = tuple(check_backbone(n) for n in self.candidates)
        if not isinstance(self.ensemble, bool):
            raise StudioError(f"ensemble must be true or false, got {self.ensemble!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise StudioError(f"The seed (--seed) must be a whole number from 0 to {2**32 - 1}, "
                              f"got {self.seed!r}.")
        if self.unfreeze_groups < 1:
            raise StudioError(f"unfreeze_groups must be at least 1, got {self.unfreeze_groups}.")
        check_limits(self)  # values far beyond sense (epochs, batch for the memory at hand, rates)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise StudioError(
                f"Unknown training setting(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}."
            )
        return cls(**data)

    @property
    def uses_pretrained(self) -> bool:
        return self.pretrained and self.strategy != "scratch"


# What a setting is called in words, and the `studio train` flag that sets it (the field name otherwise).
_SETTING_NAMES = {
    "epochs": "Epochs (--epochs)",
    "batch_size": "Batch size (--batch-size)",
    "image_size": "Image size (--image-size)",
    "patience": "Patience (--patience)",
    "lr": "Learning rate (--lr)",
    "backbone_lr": "Backbone learning rate (--backbone-lr)",
    "time_budget_s": "Time budget in seconds (--time-budget)",
}


def _setting(name: str) -> str:
    return _SETTING_NAMES.get(name, f"'{name}'")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise StudioError(f"Unknown {name} {value!r}. Choose one of: {', '.join(allowed)}.")


@dataclass
class Resolved:
    """The hyperparameters a run actually uses (config.json records them)."""

    epochs: int
    batch_size: int
    lr: float
    backbone_lr: float
    patience: int
    freeze_bn: bool
    image_size: int
    balance: str
    time_budget_s: float
    label_smoothing: float
    ema_decay: float
    frozen_groups: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_batch_size(n_train: int, device_type: str) -> int:
    """The device's usual batch (64 on CUDA, 32 elsewhere), halved while an epoch would be too short."""
    batch = 64 if device_type == "cuda" else 32
    while batch > MIN_BATCH and n_train / batch < MIN_STEPS_PER_EPOCH:
        batch //= 2
    return batch


def resolve(config: TrainConfig, *, n_train: int, class_counts: list[int], device_type: str,
            default_image_size: int) -> Resolved:
    """Fill the None settings from the data size, class balance, backbone and device."""
    scratch = config.strategy == "scratch" or not config.pretrained
    batch = config.batch_size or default_batch_size(n_train, device_type)
    batch = max(1, min(batch, n_train))
    auto = config.strategy == "auto" and not scratch
    # Auto on few images: enough epochs for ~AUTO_STEPS optimizer steps (its time budget still caps them).
    auto_epochs = min(20, max(8, math.ceil(AUTO_STEPS / max(1, n_train // batch))))
    epochs = config.epochs or (20 if scratch else auto_epochs if auto else 8)
    from_probe = config.strategy in PROBE_FIRST and not scratch
    lr = config.lr or (1e-3 if not scratch else 2e-3)
    # Starting from a fitted probe head, low rates keep the pretrained features (LP-FT); measured on
    # flowers/mri (bench/engine.py): 5e-5 beat 3e-5 and 1e-4. Auto fine-tunes a fresh head with the
    # backbone at a fifth of its rate: on flowers/mri that beat LP-FT (92.0% vs 91.3%, 100% vs 95.1%).
    backbone_lr = config.backbone_lr or (
        lr if scratch else 5e-5 if from_probe else lr / 5 if auto else lr / 10
    )
    patience = config.patience or 0  # 0: no early stopping, the last epoch kept
    # Frozen BN statistics: faster and steadier for pretrained backbones; random ones must learn them.
    freeze_bn = (not scratch) if config.freeze_bn is None else config.freeze_bn
    balance = config.balance
    if balance == "auto":
        ratio = max(class_counts) / max(1, min(class_counts))
        balance = "weights" if ratio > 1.5 else "none"
    budget = config.time_budget_s or (CPU_TIME_BUDGET_S if device_type == "cpu" else GPU_TIME_BUDGET_S)
    return Resolved(
        epochs=epochs,
        batch_size=batch,
        lr=float(lr),
        backbone_lr=float(backbone_lr),
        patience=patience,
        freeze_bn=freeze_bn,
        image_size=config.image_size or default_image_size,
        balance=balance,
        time_budget_s=float(budget),
        label_smoothing=config.label_smoothing
        if config.label_smoothing is not None
        else (0.0 if from_probe else 0.1),
        ema_decay=float(
            config.ema_decay if config.ema_decay is not None else AUTO_EMA_DECAY if auto else 0.0
        ),
        frozen_groups=0
        if scratch
        else config.frozen_groups
        if config.frozen_groups is not None
        else AUTO_FROZEN_GROUPS
        if auto
        else 0,
    )
