"""Learning-rate schedule and parameter groups (discriminative rates, layer-wise decay, unfreezing)."""

from __future__ import annotations

import math

import torch

from studio.models.groups import block_groups

MIN_LR_RATIO = 0.01  # cosine decays to 1% of the peak rate


class WarmupCosine:
    """Per-step rate factor: linear warmup from ~0 to 1, then cosine decay to MIN_LR_RATIO.

    `total_steps` may change while the warmup is still running (the cosine has not started, so the
    rate stays continuous): auto re-plans its epochs once the first epoch's real duration is known.
    """

    def __init__(self, total_steps: int, warmup_steps: int) -> None:
        self.total_steps = max(1, total_steps)
        self.warmup_steps = max(0, min(warmup_steps, self.total_steps // 3))

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from ~0 to each group's rate, then cosine decay to MIN_LR_RATIO of it (per step)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(total_steps, warmup_steps))


def still_warming_up(schedule: torch.optim.lr_scheduler.LambdaLR, step: int) -> bool:
    """True while `step` steps have not gone past the warmup (the cosine has not started)."""
    return step <= schedule.lr_lambdas[0].warmup_steps


def set_total_steps(schedule: torch.optim.lr_scheduler.LambdaLR, total_steps: int) -> None:
    """Stretch or shorten the cosine to `total_steps` (only continuous while still warming up)."""
    for factor in schedule.lr_lambdas:  # one shared WarmupCosine per parameter group
        factor.total_steps = max(1, total_steps)


def discriminative_groups(model: torch.nn.Module, head_lr: float, backbone_lr: float,
                          layer_decay: float | None = None, top: int | None = None) -> list[dict]:
    """AdamW groups: the head at `head_lr`, backbone block groups at `backbone_lr`.

    With `layer_decay`, each block group further from the head gets `layer_decay` times the rate of
    the one above it. With `top`, only the `top` block groups nearest the head train (the rest stay
    frozen): that is the unfreezing used by two-stage and gradual strategies.
    """
    groups = block_groups(model)
    head, body = groups[-1], groups[:-1]
    chosen = body if top is None else body[max(0, len(body) - top):]
    out = [{"params": head, "lr": head_lr, "name": "head"}]
    for depth, params in enumerate(reversed(chosen)):
        rate = backbone_lr * (layer_decay ** depth if layer_decay else 1.0)
        out.append({"params": params, "lr": rate, "name": f"block-{len(body) - 1 - depth}"})
    return list(reversed(out))  # stem first, head last (events report the head's rate)


def body_group_count(model: torch.nn.Module) -> int:
    """Number of block groups below the head."""
    return len(block_groups(model)) - 1
