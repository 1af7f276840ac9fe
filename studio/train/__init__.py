"""Training engine: strategies, loops, schedules, features cache and run folders."""

from studio._lazy import lazy_exports

_EXPORTS = {
    "HEADS": "studio.train.config",
    "STRATEGIES": "studio.train.config",
    "TrainConfig": "studio.train.config",
    "RunResult": "studio.train.engine",
    "train": "studio.train.engine",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
