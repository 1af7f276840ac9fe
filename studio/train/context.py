"""Everything one run shares between its stages: data, device, model factory, kept checkpoint, events."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from studio.data.snapshot import Snapshot
from studio.data.store import Project
from studio.models.weights import WeightsSource, create_backbone
from studio.predict.checkpoint import make_checkpoint, save_checkpoint
from studio.predict.inference import IDENTITY, Cropper, iter_batches
from studio.train.config import Resolved, TrainConfig
from studio.train.data import DecodedImages
from studio.train.distributed import SINGLE, World
from studio.train.runs import Events, RunStore

# Training images are kept at this multiple of the training size (room for random resized crops).
TRAIN_CACHE_SCALE = 1.15


@dataclass
class Best:
    """The validation result of the checkpoint a run keeps: the best so far across its stages (`offer`),
    or the latest (`keep`: a manual fine-tune without early stopping)."""

    accuracy: float = -1.0
    loss: float = float("inf")
    stage: str | None = None
    epoch: int | None = None
    strategy: str | None = None

    def improves(self, accuracy: float, loss: float) -> bool:
        # Accuracy first; on a tie the lower loss (better calibrated, usually more robust) wins.
        return accuracy > self.accuracy + 1e-9 or (abs(accuracy - self.accuracy) <= 1e-9 and loss < self.loss)


@dataclass
class RunContext:
    project: Project
    config: TrainConfig
    resolved: Resolved
    snapshot: Snapshot
    device: torch.device
    events: Events
    folder: RunStore
    backbone: str
    weights_source: WeightsSource
    preprocessing: dict
    inference_dtype: torch.dtype | None
    training_dtype: torch.dtype | None
    best: Best = field(default_factory=Best)
    notes: dict = field(default_factory=dict)
    world: World = SINGLE  # several processes (DDP): every rank keeps `best`, rank 0 alone saves

    @property
    def num_classes(self) -> int:
        return len(self.snapshot.class_names)

    def new_model(self, num_classes: int | None = None) -> torch.nn.Module:
        """A fresh backbone with the run's weights (the same source every time)."""
        model, _ = create_backbone(
            self.backbone,
            num_classes=self.num_classes if num_classes is None else num_classes,
            weights=self.config.weights,
            pretrained=self.config.uses_pretrained,
        )
        return model

    def checkpoint(self, model: torch.nn.Module, strategy: str, *, head: str = "linear",
                   sklearn_head=None, extra: dict | None = None) -> dict:
        return make_checkpoint(
            model, backbone=self.backbone, class_names=self.snapshot.class_names,
            preprocessing=self.preprocessing, strategy=strategy, head=head, sklearn_head=sklearn_head,
            weights_source=self.weights_source.to_dict(), extra=extra,
        )

    def offer(self, accuracy: float, loss: float, make: callable, *, stage: str, epoch: int | None,
              strategy: str) -> bool:
        """Save the checkpoint `make()` builds if this result beats the best so far."""
        if not self.best.improves(accuracy, loss):
            return False
        self.keep(accuracy, loss, make, stage=stage, epoch=epoch, strategy=strategy)
        return True

    def keep(self, accuracy: float, loss: float, make: callable, *, stage: str, epoch: int | None,
             strategy: str) -> None:
        """Save the checkpoint `make()` builds, whatever its result: the run keeps its latest weights
        (`best` then records the kept checkpoint's validation result)."""
        if self.world.is_main:
            save_checkpoint(make(), self.folder.checkpoint_path)
        self.best = Best(accuracy, loss, stage, epoch, strategy)

    @cached_property
    def val_crops(self) -> np.ndarray:
        """Validation images with the eval crop (N x H x W x 3 uint8), made once per run."""
        cropper = Cropper(self.preprocessing, [IDENTITY.zoom])
        paths = self.snapshot.val["path"].tolist()
        return np.concatenate([c[:, 0] for _, c in iter_batches(paths, cropper, 64)])

    @cached_property
    def train_images(self) -> DecodedImages:
        short_side = round(self.resolved.image_size * TRAIN_CACHE_SCALE)
        return DecodedImages(self.snapshot.train["path"].tolist(), short_side)
