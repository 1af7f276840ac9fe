"""Training engine: strategies, loops, schedules, features cache and run folders."""

from studio.train.config import HEADS, STRATEGIES, TrainConfig
from studio.train.engine import RunResult, train

__all__ = ["HEADS", "STRATEGIES", "RunResult", "TrainConfig", "train"]
