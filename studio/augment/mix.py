"""CutMix and MixUp on batches, with soft targets.

Follows timm's `Mixup` in batch mode (one lambda per batch, CutMix or MixUp chosen with equal odds when
both are on, CutMix lambda corrected to the pasted area, label smoothing on the targets), but draws its
randomness from a torch.Generator so runs are reproducible, and pairs each image with its neighbour
(`roll`) so odd batch sizes work; a batch of one is left unmixed.
"""

from __future__ import annotations

import numpy as np
import torch

from studio.errors import StudioError

_MAX_ALPHA = 4.0


def soft_targets(targets: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """One-hot float targets with label smoothing (timm's convention: off = smoothing / num_classes)."""
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    out = torch.full((targets.shape[0], num_classes), off, dtype=torch.float32, device=targets.device)
    return out.scatter_(1, targets.long().view(-1, 1), on)


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a box covering about (1 - lam) of the image, centred at random."""
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    top, bottom = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    left, right = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    return int(top), int(bottom), int(left), int(right)


def _check(
    images: torch.Tensor,
    targets: torch.Tensor,
    num_classes: int,
    alphas: tuple[float, float],
    prob: float,
    smoothing: float,
) -> None:
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float NCHW tensor, got {images.dtype} {tuple(images.shape)}")
    if targets.ndim != 1 or targets.shape[0] != images.shape[0]:
        raise ValueError(f"targets must be N class indices, got shape {tuple(targets.shape)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    for name, alpha in zip(("cutmix", "mixup"), alphas):
        if not 0.0 <= alpha <= _MAX_ALPHA:
            raise StudioError(f"{name} alpha must be between 0 (off) and {_MAX_ALPHA:g}, got {alpha!r}.")
    if not 0.0 <= prob <= 1.0:
        raise StudioError(f"Mix probability must be between 0 and 1, got {prob!r}.")
    if not 0.0 <= smoothing < 1.0:
        raise StudioError(f"Label smoothing must be between 0 and 1 (0.1 is typical), got {smoothing!r}.")


def mix_batch(
    images: torch.Tensor,
    targets: torch.Tensor,
    num_classes: int,
    cutmix_alpha: float = 0.0,
    mixup_alpha: float = 0.0,
    prob: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix a batch with CutMix or MixUp; returns (new images, soft targets of shape N x num_classes).

    Inputs are not modified. With probability 1 - prob, both alphas 0, or fewer than 2 images, the
    images come back unchanged (a copy) with smoothed one-hot targets.
    """
    _check(images, targets, num_classes, (cutmix_alpha, mixup_alpha), prob, smoothing)
    hard = soft_targets(targets, num_classes, smoothing)
    mixed = images.clone()
    if images.shape[0] < 2 or (cutmix_alpha <= 0 and mixup_alpha <= 0):
        return mixed, hard

    # One draw from the torch generator seeds everything numpy-side (Beta sampling lives there).
    device = generator.device if generator is not None else "cpu"
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=device).item())
    rng = np.random.default_rng(seed)
    if rng.random() >= prob:
        return mixed, hard

    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < 0.5)
    partner = images.roll(1, dims=0)
    if use_cutmix:
        lam = float(rng.beta(cutmix_alpha, cutmix_alpha))
        top, bottom, left, right = cutmix_box(images.shape[2], images.shape[3], lam, rng)
        mixed[:, :, top:bottom, left:right] = partner[:, :, top:bottom, left:right]
        # The box is clipped at the borders, so the real pasted fraction sets the label weights.
        lam = 1.0 - (bottom - top) * (right - left) / (images.shape[2] * images.shape[3])
    else:
        lam = float(rng.beta(mixup_alpha, mixup_alpha))
        mixed.mul_(lam).add_(partner, alpha=1.0 - lam)
    return mixed, lam * hard + (1.0 - lam) * hard.roll(1, dims=0)
