"""The learning-rate finder (fastai's `lr_find`, after Smith 2015): train a fresh copy of the fine-tune
for a few steps while the rate grows exponentially, record the smoothed loss, and suggest the rate
where the loss falls fastest. Nothing is saved: the sweep's weights are thrown away.

The rate swept is the head's (`--lr`); the backbone groups keep their usual ratio to it.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch
import torch.nn.functional as F

from studio.augment.project_settings import augment_from_setting
from studio.augment.transforms import build_train_transform
from studio.data.snapshot import take_snapshot
from studio.data.store import Project
from studio.errors import StudioError
from studio.models.registry import check_backbone
from studio.models.weights import create_backbone, data_config
from studio.predict.device import autocast, select_device, training_dtype
from studio.train.config import TrainConfig, resolve
from studio.train.data import AugmentedImages, DecodedImages
from studio.train.loop import _split_decay, make_adamw, set_train_mode, set_trainable
from studio.train.schedule import body_group_count, discriminative_groups

SMOOTHING = 0.98  # fastai's exponential moving average of the loss
DIVERGED = 4.0  # stop once the smoothed loss is this many times its best


def suggest_rate(rates: np.ndarray, losses: np.ndarray) -> float | None:
    """The rate of the steepest descent of the smoothed loss (in log rate), before its minimum."""
    if len(rates) < 3:
        return None
    stop = int(np.argmin(losses)) + 1
    if stop < 3:
        return None
    slopes = np.gradient(losses[:stop], np.log(rates[:stop]))
    return float(rates[int(np.argmin(slopes))])


def lr_find(
    project: Project,
    config: TrainConfig | None = None,
    *,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    steps: int = 40,
    cancel: threading.Event | None = None,
) -> dict:
    """{"rates", "losses" (smoothed), "raw_losses", "suggested_lr", "steps", "backbone"} for the project's
    training images with the config's backbone, image size, augmentation and frozen layers."""
    config = config or TrainConfig()
    config.validate()
    if not (0 < start_lr < end_lr) or steps < 5:
        raise StudioError("lr-find needs 0 < start rate < end rate and at least 5 steps.")
    device = select_device(config.device)
    snapshot = take_snapshot(project)
    model, _ = create_backbone(check_backbone(config.backbone), num_classes=len(snapshot.class_names),
                               weights=config.weights, pretrained=config.uses_pretrained)
    cfg = data_config(model)
    resolved = resolve(config, n_train=len(snapshot.train), class_counts=snapshot.class_counts,
                       device_type=device.type, default_image_size=cfg["image_size"])
    torch.manual_seed(config.seed)
    depth = body_group_count(model)
    frozen = min(resolved.frozen_groups, depth - 1)
    groups = discriminative_groups(model, resolved.lr, resolved.backbone_lr, config.layer_decay,
                                   top=depth - frozen if frozen > 0 else None)
    model = model.to(device, memory_format=torch.channels_last)
    set_trainable(model, groups)
    optimizer = make_adamw(_split_decay(groups, config.weight_decay), device)
    ratios = [group["lr"] / resolved.lr for group in optimizer.param_groups]  # backbone : head, kept
    set_train_mode(model, resolved.freeze_bn)
    transform = build_train_transform(
        augment_from_setting(config.augment),
        resolved.image_size,
        cfg["mean"],
        cfg["std"],
        interpolation=cfg.get("interpolation", "bicubic"),
        seed=config.seed,
    )
    images = DecodedImages(snapshot.train["path"].tolist(), round(resolved.image_size * 1.15))
    dataset = AugmentedImages(images, snapshot.train["target"].tolist(), transform)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=min(resolved.batch_size, len(dataset)),
        shuffle=True,
        generator=torch.Generator().manual_seed(config.seed),
        num_workers=0,
        drop_last=len(dataset) > resolved.batch_size,
    )
    dtype = training_dtype(device)
    rates, smoothed, raw = [], [], []
    average, best, batches = 0.0, math.inf, iter(())
    for step in range(steps):
        if cancel is not None and cancel.is_set():
            break
        rate = start_lr * (end_lr / start_lr) ** (step / (steps - 1))
        for group, ratio in zip(optimizer.param_groups, ratios):
            group["lr"] = rate * ratio
        try:
            batch, targets = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch, targets = next(batches)
        batch = batch.to(device).contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            logits = model(batch)
        loss = F.cross_entropy(logits.float(), targets.to(device), label_smoothing=resolved.label_smoothing)
        if not torch.isfinite(loss):
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        average = SMOOTHING * average + (1 - SMOOTHING) * loss.item()
        value = average / (1 - SMOOTHING ** (step + 1))
        rates.append(rate)
        raw.append(loss.item())
        smoothed.append(value)
        best = min(best, value)
        if value > DIVERGED * best:
            break
    suggested = suggest_rate(np.array(rates), np.array(smoothed))
    return {"rates": rates, "losses": smoothed, "raw_losses": raw, "suggested_lr": suggested,
            "steps": len(rates), "backbone": config.backbone, "current_lr": resolved.lr}


def sweep_chart(result: dict):
    """The loss-vs-rate sweep as a plotly figure (log rate axis) with the suggested rate marked."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=result["rates"], y=result["losses"], mode="lines", name="smoothed loss"))
    rate = result.get("suggested_lr")
    if rate:
        fig.add_vline(x=rate, line_dash="dash", line_color="#ea580c",
                      annotation_text=f"suggested {rate:.1e}", annotation_position="top")
    fig.update_layout(height=340, margin={"l": 50, "r": 20, "t": 40, "b": 50}, showlegend=False,
                      title={"text": "Learning-rate finder", "x": 0.5})
    fig.update_xaxes(type="log", title_text="learning rate (head)")
    fig.update_yaxes(title_text="training loss (smoothed)")
    return fig
