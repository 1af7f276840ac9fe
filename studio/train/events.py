"""The training events, one dataclass per kind: the one definition of their keys.

The engine (loop, linear probe, strategies) creates them; `Events` hands them to the caller's callback
as dataclasses; the service records their JSON form (`to_dict()`: the dataclass fields plus `"type"`),
which is what the Train tab, the charts, the CLI and metrics.csv read. That JSON form is the one older
runs and job histories already use, so they still read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class TrainEvent:
    TYPE: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class RunStarted(TrainEvent):
    """The engine created its run folder (always the first event of a run)."""

    TYPE: ClassVar[str] = "run_started"
    run_dir: str


@dataclass(frozen=True)
class Stage(TrainEvent):
    """A training stage began (linear-probe, finetune, head, body, evaluate, ...)."""

    TYPE: ClassVar[str] = "stage"
    name: str


@dataclass(frozen=True)
class Log(TrainEvent):
    TYPE: ClassVar[str] = "log"
    message: str


@dataclass(frozen=True)
class Step(TrainEvent):
    """Progress within an epoch (every `log_every` batches; for feature extraction, every batch)."""

    TYPE: ClassVar[str] = "step"
    stage: str
    epoch: int
    step: int
    loss: float | None
    lr: float | None
    images_per_s: float
    eta_s: float
    steps_per_epoch: int | None = None


@dataclass(frozen=True)
class Epoch(TrainEvent):
    """One finished epoch (a linear probe is one epoch): one row of metrics.csv."""

    TYPE: ClassVar[str] = "epoch"
    stage: str
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None  # None: nothing left to score (auto's epochs on every training image)
    val_accuracy: float | None
    lr: float | None
    images_per_s: float
    eta_s: float


# metrics.csv: the epoch fields, then seconds since the run started.
METRIC_COLUMNS = (*(f.name for f in dataclasses.fields(Epoch)), "elapsed_s")


_BY_TYPE = {cls.TYPE: cls for cls in (RunStarted, Stage, Log, Step, Epoch)}


def event_from_dict(data: dict[str, Any]) -> TrainEvent | dict[str, Any]:
    """The typed event back from its JSON form (another process's events); an unknown kind stays a dict."""
    cls = _BY_TYPE.get(data.get("type"))
    if cls is None:
        return data
    names = {field.name for field in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in data.items() if key in names})
