"""What a run trains on: a snapshot of the project's labeled splits, and images decoded once into memory.

Fine-tuning reads every training image many times; decoding a JPEG and resizing it each time costs as
much as a third of a CPU step. So images are decoded once (threaded, at reduced JPEG scale) to uint8
arrays whose shorter side is a little larger than the training size, and augmentation crops those.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np
import pandas as pd
import torch

from studio.data.imaging import load_rgb
from studio.data.integrity import damaged_files
from studio.data.store import Project
from studio.errors import StudioError
from studio.predict.device import cpu_count

# Decoded images above this many bytes in total are not kept in memory (decoded per step instead).
MEMORY_CACHE_BYTES = 3 * 1024**3


@dataclass
class Snapshot:
    """The labeled training and validation images of a project at the start of a run."""

    class_names: list[str]
    train: pd.DataFrame  # image_id, hash, path, label, target
    val: pd.DataFrame
    label_hash: str
    warnings: list[str] = field(default_factory=list)

    @property
    def class_counts(self) -> list[int]:
        counts = self.train["target"].value_counts()
        return [int(counts.get(i, 0)) for i in range(len(self.class_names))]

    def to_dict(self) -> dict:
        """The exact image lists (ids, hashes, labels) of the snapshot, for the run folder."""
        columns = ["image_id", "hash", "path", "label"]
        return {
            "classes": self.class_names,
            "label_hash": self.label_hash,
            "train": self.train[columns].to_dict(orient="records"),
            "val": self.val[columns].to_dict(orient="records"),
        }


def take_snapshot(project: Project) -> Snapshot:
    """Training and validation images with targets; StudioError when the project cannot train yet."""
    data = project.dataset(labeled_only=True)
    data = data[data["label"].notna()]
    # Images the expert excluded while curating (drop-duplicate, exclude) are never trained or validated on.
    from studio.curate.decisions import excluded_image_ids  # lazy: curation sits beside the engine

    excluded = excluded_image_ids(project)
    if excluded:
        data = data[~data["image_id"].isin(excluded)]
    warnings = []
    damaged = data[damaged_files(data["path"].tolist(), data["hash"].tolist(), project.cache_dir)]
    if len(damaged):
        data = data[~data["image_id"].isin(damaged["image_id"])]
        listed = ", ".join(f"#{r.image_id} {r.original_name} ({r.label})" for r in damaged.head(5).itertuples())
        more = f" and {len(damaged) - 5} more" if len(damaged) > 5 else ""
        warnings.append(f"{len(damaged)} image file(s) in the project changed or went missing since their import and "
                        f"are left out of this run (their labels are kept): {listed}{more}. Import the originals "
                        "again to train on them.")
    train = data[data["split"] == "train"]
    trained_classes = set(train["label"])
    class_names = [c for c in project.classes() if c in trained_classes]
    class_names += sorted(trained_classes - set(class_names))  # labels not (yet) in the class list
    if len(class_names) < 2:
        have = f"only '{class_names[0]}'" if class_names else "none"
        raise StudioError(
            f"Training needs at least two classes with labeled training images ({have} so far). "
            "Label images of another class, or assign splits so some labeled images are in 'train'."
        )
    val = data[data["split"] == "val"]
    unknown = val[~val["label"].isin(class_names)]
    if len(unknown):
        warnings.append(
            f"{len(unknown)} validation image(s) of classes without training images were left out "
            f"({', '.join(sorted(set(unknown['label'])))})."
        )
        val = val[val["label"].isin(class_names)]
    if val.empty:
        raise StudioError(
            "The validation split is empty: training needs labeled images in 'val' to pick the best model. "
            "Assign splits (e.g. `studio split PROJECT`) or move some labeled images to 'val'."
        )
    unsplit = int(data["split"].isna().sum())
    if unsplit:
        warnings.append(f"{unsplit} labeled image(s) have no split and are not used; assign splits to use them.")
    from studio.curate.balance import dataset_warnings  # the Curate tab's checks, said where training starts

    warnings += [f"Note: {w}." for w in dataset_warnings(data, class_names)]
    index = {name: i for i, name in enumerate(class_names)}

    def tidy(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values("image_id")[["image_id", "hash", "path", "label"]].reset_index(drop=True)
        frame["target"] = frame["label"].map(index).astype(int)
        return frame

    return Snapshot(class_names, tidy(train), tidy(val), project.label_hash(), warnings)


def class_weights(counts: list[int]) -> torch.Tensor:
    """Inverse-frequency loss weights, normalized to mean 1 over the classes."""
    counts_t = torch.tensor(counts, dtype=torch.float32).clamp(min=1)
    weights = counts_t.sum() / (len(counts) * counts_t)
    return weights / weights.mean()


def _decode_resized(path: str, short_side: int) -> np.ndarray:
    image = np.asarray(load_rgb(path, draft_size=short_side))
    height, width = image.shape[:2]
    scale = short_side / min(height, width)
    if scale < 1.0:  # only ever shrink: upscaling here would just cost memory
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


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
