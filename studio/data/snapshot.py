"""What a run trains and validates on: the one definition of a run's images.

A `Snapshot` is the project's labeled train and val images at one moment, without the images a
curation review excluded and without damaged files (changed or missing since import), plus a hash that
names exactly that set. The database part is read in one transaction, so the images and the hash
describe the same state. The engine stores it in the run folder (split.json); evaluation reads it back
from there (`Snapshot.load`), so relabeling or excluding an image later does not change what a run
reports about itself. Training, evaluation on today's split (`current_validation`), curation and the
Label tab's suggestions all see the same image set through this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from studio.data.balance import dataset_warnings
from studio.data.integrity import damaged_files
from studio.data.store import Project
from studio.errors import StudioError

SNAPSHOT_COLUMNS = ["image_id", "hash", "path", "label"]
SPLIT_FILE = "split.json"  # the snapshot's file in a run folder


@dataclass
class Snapshot:
    """The labeled training and validation images of a project at the start of a run."""

    class_names: list[str]
    train: pd.DataFrame  # image_id, hash, path, label, target
    val: pd.DataFrame
    label_hash: str  # sha256 of the (hash, label, split) of exactly these images
    warnings: list[str] = field(default_factory=list)

    @property
    def class_counts(self) -> list[int]:
        counts = self.train["target"].value_counts()
        return [int(counts.get(i, 0)) for i in range(len(self.class_names))]

    def to_dict(self) -> dict:
        """The exact image lists (ids, hashes, labels) of the snapshot, for the run folder."""
        return {
            "classes": self.class_names,
            "label_hash": self.label_hash,
            "train": self.train[SNAPSHOT_COLUMNS].to_dict(orient="records"),
            "val": self.val[SNAPSHOT_COLUMNS].to_dict(orient="records"),
        }

    @classmethod
    def load(cls, run_dir: str | Path) -> Snapshot:
        """The snapshot a run stored in its folder (split.json)."""
        import json

        path = Path(run_dir) / SPLIT_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise StudioError(f"{run_dir} has no readable {SPLIT_FILE} ({error}): the images this run used "
                              "are unknown; evaluate it on the project's current split instead.") from None
        classes = list(data["classes"])
        index = {name: i for i, name in enumerate(classes)}
        # Images are stored by content (images/<hash><ext>): a run inside a project reads its own project's
        # files, wherever the project has been moved or copied since (the stored paths are absolute).
        project_images = Path(run_dir).resolve().parent.parent / "images"
        rebase = Path(run_dir).resolve().parent.name == "runs" and project_images.is_dir()

        def frame(rows: list[dict]) -> pd.DataFrame:
            table = pd.DataFrame(rows, columns=SNAPSHOT_COLUMNS)
            if rebase and len(table):
                table["path"] = [str(project_images / Path(p).name) for p in table["path"]]
            table["target"] = table["label"].map(index)
            return table

        return cls(classes, frame(data["train"]), frame(data["val"]), data.get("label_hash", ""))


def snapshot_hash(train: pd.DataFrame, val: pd.DataFrame) -> str:
    """sha256 over the sorted (content hash, label, split) rows of the images a snapshot holds."""
    rows = sorted([(h, label, "train") for h, label in zip(train["hash"], train["label"], strict=True)]
                  + [(h, label, "val") for h, label in zip(val["hash"], val["label"], strict=True)])
    digest = hashlib.sha256()
    for row in rows:
        digest.update("\t".join(row).encode("utf-8") + b"\n")
    return digest.hexdigest()


def usable_images(project: Project) -> tuple[pd.DataFrame, list[str], list[str]]:
    """(labeled images minus exclusions and damaged files, the project's classes, warnings).

    The database is read in one transaction; the file check (which may hash files) runs after it."""
    with project.reading():
        data = project.dataset(labeled_only=True)
        excluded = project.excluded_image_ids()
        classes = project.classes()
    data = data[data["label"].notna()]
    # Images the expert excluded while curating (drop-duplicate, exclude) are never trained or validated on.
    if excluded:
        data = data[~data["image_id"].isin(excluded)]
    warnings = []
    damaged = data[damaged_files(data["path"].tolist(), data["hash"].tolist(), project.cache_dir)]
    if len(damaged):
        data = data[~data["image_id"].isin(damaged["image_id"])]
        listed = ", ".join(f"#{r.image_id} {r.original_name} ({r.label})"
                           for r in damaged.head(5).itertuples())
        more = f" and {len(damaged) - 5} more" if len(damaged) > 5 else ""
        warnings.append(
            f"{len(damaged)} image file(s) in the project changed or went missing since their import "
            f"and are left out of this run (their labels are kept): {listed}{more}. Import the "
            "originals again to train on them."
        )
    return data, classes, warnings


def current_validation(project: Project) -> tuple[pd.DataFrame, list[str]]:
    """Today's validation images (image_id, hash, path, label), with the same exclusions as a snapshot."""
    data, _, warnings = usable_images(project)
    val = data[data["split"] == "val"].sort_values("image_id")[SNAPSHOT_COLUMNS].reset_index(drop=True)
    return val, warnings


def split_new_labels(project: Project) -> str | None:
    """Give labeled images that have no split a stratified train/val split, as an import does (20%, seed
    0; splits already there never move): images labeled after an unlabeled import would otherwise be left
    out of training. Returns a sentence for the run's log, or None when every labeled image had a split."""
    data = project.dataset(labeled_only=True)
    unsplit = data.loc[data["split"].isna(), "image_id"]
    if unsplit.empty:
        return None
    project.assign_splits()
    after = project.dataset(labeled_only=True).set_index("image_id")["split"]
    to_val = int((after.reindex(unsplit) == "val").sum())
    return (f"{len(unsplit)} labeled image(s) had no split: {len(unsplit) - to_val} went to train and "
            f"{to_val} to validation (stratified, as at import).")


def take_snapshot(project: Project) -> Snapshot:
    """Training and validation images with targets; StudioError when the project cannot train yet."""
    data, project_classes, warnings = usable_images(project)
    train = data[data["split"] == "train"]
    trained_classes = set(train["label"])
    class_names = [c for c in project_classes if c in trained_classes]
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
            "The validation split is empty: training needs labeled images in 'val' to measure the model on "
            "images it did not train on. Split them: the Data tab's Split images (tick 'Also re-split' when "
            "every image is in train), or `studio split PROJECT --resplit`."
        )
    unsplit = int(data["split"].isna().sum())
    if unsplit:
        warnings.append(f"{unsplit} labeled image(s) have no split and are not used; "
                        "assign splits to use them.")
    # The Curate tab's checks, said where training starts.
    warnings += [f"Note: {w}." for w in dataset_warnings(data, class_names)]
    index = {name: i for i, name in enumerate(class_names)}

    def tidy(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values("image_id")[SNAPSHOT_COLUMNS].reset_index(drop=True)
        frame["target"] = frame["label"].map(index).astype(int)
        return frame

    train, val = tidy(train), tidy(val)
    return Snapshot(class_names, train, val, snapshot_hash(train, val), warnings)
