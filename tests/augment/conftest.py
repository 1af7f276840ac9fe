"""Small generated images for the augmentation tests."""

import numpy as np
import pytest


def make_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth, structured RGB uint8 image (gradients and waves) with a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = [np.sin(x * 9 + y * 3), np.cos(y * 7 - x * 2), np.sin((x + y) * 5)]
    image = np.stack(channels, axis=-1) * 90 + 128 + rng.normal(0, 4, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture
def image() -> np.ndarray:
    return make_image(90, 120)


@pytest.fixture
def other_image() -> np.ndarray:
    return make_image(100, 80, seed=1)[:, ::-1].copy()
