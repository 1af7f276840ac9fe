"""What a run trains on: images decoded once into memory (the images themselves: studio.data.snapshot).

Fine-tuning reads every training image many times; decoding a JPEG and resizing it each time costs as
much as a third of a CPU step. So images are decoded once (threaded, at reduced JPEG scale) to uint8
arrays whose shorter side is a little larger than the training size, and augmentation crops those.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from studio.data.imaging import load_rgb
from studio.predict.device import cpu_count

# Decoded images above this many bytes in total are not kept in memory (decoded per step instead).
MEMORY_CACHE_BYTES = 3 * 1024**3


def class_weights(counts: list[int]) -> torch.Tensor:
    """Inverse-frequency loss weights, normalized to mean 1 over the classes."""
    counts_t = torch.tensor(counts, dtype=torch.float32).clamp(min=1)
    weights = counts_t.sum() / (len(counts) * counts_t)
    return weights / weights.mean()


def _decode_resized(path: str, short_side: int) -> np.ndarray:
    image = load_rgb(path, draft_size=short_side)
    width, height = image.size
    scale = short_side / min(height, width)
    if scale < 1.0:  # only ever shrink: upscaling here would just cost memory
        # Pillow's antialiased bicubic, the eval crop's resampling (studio.export.standalone.eval_crop)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
    return np.ascontiguousarray(np.asarray(image))


class DecodedImages:
    """Images as uint8 arrays with the shorter side at most `short_side`, decoded once when they fit
    in memory (about 200 KB each at 256 px), otherwise on every access."""

    def __init__(self, paths: list[str], short_side: int, *, keep: bool | None = None) -> None:
        self.paths = list(paths)
        self.short_side = short_side
        estimate = len(self.paths) * short_side * short_side * 4  # ~4:3 photos, 3 channels
        self.keep = estimate <= MEMORY_CACHE_BYTES if keep is None else keep
        self._arrays: list[np.ndarray] | None = None
        if self.keep:
            with ThreadPoolExecutor(max_workers=max(1, min(4, cpu_count()))) as pool:
                self._arrays = list(pool.map(lambda p: _decode_resized(p, short_side), self.paths))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        if self._arrays is not None:
            return self._arrays[index]
        return _decode_resized(self.paths[index], self.short_side)


class AugmentedImages(torch.utils.data.Dataset):
    """(augmented CHW float tensor, target) pairs for a DataLoader."""

    def __init__(self, images: DecodedImages, targets: list[int], transform) -> None:
        self.images = images
        self.targets = list(targets)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return self.transform(self.images[index]), self.targets[index]
