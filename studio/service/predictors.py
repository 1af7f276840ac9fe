"""Loaded predictors kept warm for the UI, and the CPU thread limit of the side lane.

A predictor is keyed by (run folder, model.pt mtime, device): predicting again with the latest model
reuses the loaded one, and a retrained checkpoint in the same folder is picked up by its new mtime.
Each entry has its own lock because a predictor (its model, its autocast state) is not meant to be used
by two threads at once; different models may predict in parallel.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from studio.errors import StudioError

MODEL_FILE = "model.pt"
Loader = Callable[[Path, Any], Any]


def load_predictor(run_dir: Path, device: Any) -> Any:
    """The engine's predictor for a run (imported here so the service imports without it)."""
    from studio.predict import Predictor

    return Predictor.from_run(run_dir, device=device)


class PredictorCache:
    """A small LRU of loaded predictors, each with a lock serialising its use."""

    def __init__(self, capacity: int = 3, loader: Loader = load_predictor) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.loader = loader
        self._entries: OrderedDict[tuple, tuple[Any, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()  # guards _entries
        self._load_lock = threading.Lock()  # one load at a time: no duplicate loads of one model
        self.loads = 0

    @staticmethod
    def key(run_dir: str | Path, device: Any) -> tuple:
        run_dir = Path(run_dir).resolve()
        try:
            mtime = (run_dir / MODEL_FILE).stat().st_mtime_ns
        except OSError:
            raise StudioError(f"No trained model in {run_dir}: train a model first, or pick a run "
                              f"that finished with a checkpoint ({MODEL_FILE}).") from None
        return (str(run_dir), mtime, str(device))

    @contextmanager
    def use(self, run_dir: str | Path, device: Any = None) -> Iterator[Any]:
        """The loaded predictor for `run_dir`, held under its lock for the duration of the block."""
        key = self.key(run_dir, device)
        predictor, lock = self._get_or_load(key, Path(key[0]), device)
        with lock:
            yield predictor

    def _get_or_load(self, key: tuple, run_dir: Path, device: Any) -> tuple[Any, threading.Lock]:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        with self._load_lock:
            with self._lock:  # loaded by another thread while this one waited
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key]
            entry = (self.loader(run_dir, device), threading.Lock())
            self.loads += 1
            with self._lock:
                # A newer checkpoint replaces the older ones of the same run and device.
                for old in [k for k in self._entries if k[0] == key[0] and k[2] == key[2]]:
                    del self._entries[old]
                self._entries[key] = entry
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
            return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def limit_thread_cpu(threads: int) -> None:
    """Make the calling thread run torch CPU ops on at most `threads` threads.

    torch.set_num_threads writes a process-wide default and the calling thread's OpenMP setting; each
    thread copies the default once, on its first torch op. So this thread initialises itself first, then
    sets its own limit; the caller must restore the process-wide default afterwards from another thread
    (see `TrainerService`), which leaves this thread's limit in place and the training thread untouched.
    """
    import torch

    torch.get_num_threads()  # initialise this thread's setting before changing it
    torch.set_num_threads(max(1, threads))
