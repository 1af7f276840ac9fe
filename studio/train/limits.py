"""Limits beyond which a training setting is a typo, not a choice: refused before anything starts.

`TrainConfig.validate` calls `check_limits`, so `studio train`, the /train API and the Train tab all
refuse the same values with the same message. The memory check is a rough upper estimate of what
backpropagation through the backbone keeps per image (activations for the backward pass, float32),
compared with the memory of the device the run would use (GPU memory on CUDA, RAM otherwise).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from studio.errors import StudioError

MAX_EPOCHS = 1000
MAX_BATCH_SIZE = 4096
MAX_LR = 1.0  # AdamW rates are ~1e-5..1e-2; 1 already diverges
MAX_TIME_BUDGET_S = 7 * 24 * 3600.0
MAX_WARMUP_EPOCHS = 100.0
# Bytes a training step keeps per input pixel per image for the backward pass. EfficientNet-B0-sized
# backbones keep ~100 MB per 224 px image in float32 (~2 kB per pixel); bigger ones scale with their
# width, taken here as the square root of the parameter count over Lite0's 4.7 M.
ACTIVATION_BYTES_PER_PIXEL = 2048
REFERENCE_PARAMS_M = 4.7
MEMORY_SHARE = 0.8  # the part of the device's memory a run may plan to use (the rest: OS, app, model)
DEFAULT_IMAGE_SIZE = 224  # when the backbone's own size is not known yet


def check_limits(config: Any) -> None:
    """StudioError naming the limit for settings far beyond sense (see the module docstring)."""
    if config.epochs is not None and config.epochs > MAX_EPOCHS:
        raise StudioError(f"Epochs (--epochs) {config.epochs} is far more than a transfer-learning run needs "
                          f"(the automatic choice is 8-20); the limit is {MAX_EPOCHS}.")
    if config.patience is not None and config.patience > MAX_EPOCHS:
        raise StudioError(f"Patience {config.patience} is more than the {MAX_EPOCHS} epochs a run may have.")
    if config.batch_size is not None and config.batch_size > MAX_BATCH_SIZE:
        raise StudioError(
            f"Batch size (--batch-size) {config.batch_size} is above the limit of {MAX_BATCH_SIZE} "
            "(leave --batch-size out, or 0 in the app, to pick one from the data and device)."
        )
    for name, flag in (
        ("lr", "Learning rate (--lr)"),
        ("backbone_lr", "Backbone learning rate (--backbone-lr)"),
    ):
        value = getattr(config, name)
        if value is not None and value > MAX_LR:
            raise StudioError(
                f"{flag} {value:g} would make training diverge at once: use a value at most "
                f"{MAX_LR:g} (typical: 1e-3 for the head, 1e-4 for the backbone; 0 = automatic)."
            )
    if config.time_budget_s is not None and config.time_budget_s > MAX_TIME_BUDGET_S:
        raise StudioError(
            f"Time budget {config.time_budget_s:g} s is more than a week ({MAX_TIME_BUDGET_S:g} s)."
        )
    if not 0 <= config.warmup_epochs <= MAX_WARMUP_EPOCHS:
        raise StudioError(
            f"warmup_epochs must be between 0 and {MAX_WARMUP_EPOCHS:g}, got {config.warmup_epochs!r}."
        )
    if not 0 <= config.weight_decay <= 1:
        raise StudioError(
            f"weight_decay must be between 0 and 1 (0.01 is typical), got {config.weight_decay!r}."
        )
    if config.log_every < 1:
        raise StudioError(f"log_every must be at least 1, got {config.log_every!r}.")
    if config.batch_size is not None and config.strategy != "linear":
        check_memory(
            config.batch_size, config.image_size or DEFAULT_IMAGE_SIZE, config.backbone, config.device
        )


def training_bytes(batch_size: int, image_size: int, backbone: str) -> float:
    """Rough upper estimate of the memory one training step of `batch_size` images needs."""
    from studio.models.registry import BACKBONES

    info = BACKBONES.get(backbone)
    width = max(1.0, ((info.params_m if info else REFERENCE_PARAMS_M) / REFERENCE_PARAMS_M) ** 0.5)
    return batch_size * image_size * image_size * ACTIVATION_BYTES_PER_PIXEL * width


def memory_at_hand(device: str) -> tuple[float, str]:
    """(bytes, what) of the memory a run on `device` trains in: GPU memory on CUDA, else the machine's RAM."""
    torch = sys.modules.get("torch")  # only asked when torch is loaded already (the engine, the app)
    if device in ("auto", "cuda") and torch is not None and torch.cuda.is_available():
        return float(torch.cuda.get_device_properties(0).total_memory), "GPU memory"
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")), "RAM"
    except (AttributeError, ValueError, OSError):  # not on this OS: no check
        return float("inf"), "memory"


def check_memory(batch_size: int, image_size: int, backbone: str, device: str) -> None:
    needed = training_bytes(batch_size, image_size, backbone)
    total, what = memory_at_hand(device)
    if needed <= MEMORY_SHARE * total:
        return
    fits = int(MEMORY_SHARE * total // max(1.0, training_bytes(1, image_size, backbone)))
    raise StudioError(
        f"Batch size {batch_size} at {image_size} px needs about {needed / 2**30:.0f} GiB to train "
        f"{backbone} (rough estimate), but this machine has {total / 2**30:.0f} GiB of {what}: use a batch "
        f"of at most {max(1, fits)}, a smaller image size, or 0 for automatic."
    )
