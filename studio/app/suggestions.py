"""The latest model's guess for every image, computed in the background and kept on disk (no Gradio here).

Suggestions come from the newest run folder holding a `model.pt`. They are computed off the request
thread (through the trainer service when there is one, else a `Predictor`), saved per run under
`cache/suggestions/<run>.json` keyed by image hash, and only missing images are predicted again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from studio.data.store import Project
from studio.durable import atomic_write_text
from studio.service.runs import latest_model_run

log = logging.getLogger("studio.app")
CHUNK = 128


@dataclass(frozen=True)
class Suggestion:
    label: str
    confidence: float


class SuggestionStore:
    """Suggestions per (project, run): read from disk, completed in a background thread on request."""

    def __init__(self, service: Any = None) -> None:
        self.service = service
        self._lock = threading.Lock()
        # Read-only and replaced, never changed: while a run's suggestions stay the same, callers get the
        # same object (the Label tab keeps its per-row join until it changes).
        self._memory: dict[Path, Mapping[str, Suggestion]] = {}
        self._busy: dict[Path, str] = {}  # file -> state text while computing or after failing
        self._unreadable: dict[Path, set[str]] = {}  # file -> hashes the model could not read (not retried)

    def _file(self, project: Project, run: Path) -> Path:
        return project.cache_dir / "suggestions" / f"{run.name}.json"

    def suggestions(
        self, project: Project, hashes: list[str] | None = None, *, compute: bool = True
    ) -> tuple[Mapping[str, Suggestion], str]:
        """(hash -> Suggestion, read-only; status line). Starts a background job for images without a
        suggestion."""
        run = latest_model_run(project.root)
        if run is None:
            return {}, "No trained model yet: train one to get suggestions."
        path = self._file(project, run)
        with self._lock:
            known = self._memory.get(path)
            if known is None:
                known = MappingProxyType(_read(path))
                self._memory[path] = known
            busy = self._busy.get(path)
            unreadable = self._unreadable.get(path, set())
        missing = [h for h in (hashes or []) if h not in known and h not in unreadable]
        if missing and compute and busy is None:
            self._start(project, run, path)
            busy = "computing"
        if busy == "computing":
            status = f"Model {run.name}: computing suggestions for {len(missing)} images…"
        elif busy:
            status = f"Model {run.name}: suggestions failed ({busy})."
        else:
            status = f"Suggestions from model {run.name}."
        return known, status

    def _start(self, project: Project, run: Path, path: Path) -> None:
        with self._lock:
            self._busy[path] = "computing"
        thread = threading.Thread(target=self._compute, args=(project, run, path), daemon=True,
                                  name="studio-suggestions")
        thread.start()

    def _compute(self, project: Project, run: Path, path: Path) -> None:
        try:
            data = project.dataset()
            with self._lock:
                known = dict(self._memory.get(path, {}))
            todo = data[~data["hash"].isin(known)]
            for start in range(0, len(todo), CHUNK):
                chunk = todo.iloc[start:start + CHUNK]
                results = self._predict(run, chunk["path"].tolist())
                for digest, result in zip(chunk["hash"], results):
                    if result.get("error"):  # a file damaged since its import: no guess, the rest go on
                        with self._lock:
                            self._unreadable.setdefault(path, set()).add(digest)
                        continue
                    top = result["top"][0]
                    known[digest] = Suggestion(top["class"], float(top["probability"]))
                _write(path, known)
                with self._lock:
                    self._memory[path] = MappingProxyType(dict(known))
            with self._lock:
                self._busy.pop(path, None)
        except Exception as error:  # shown in the Label tab; the labeling itself keeps working
            if not threading.main_thread().is_alive():
                return  # the app is exiting mid-computation: nothing to report
            log.exception("computing suggestions failed")
            with self._lock:
                self._busy[path] = f"{type(error).__name__}: {error}"

    def _predict(self, run: Path, paths: list[str]) -> list[dict]:
        if self.service is not None and hasattr(self.service, "submit_predict"):
            return self.service.submit_predict(run, paths, top_k=1, interactive=False,
                                               skip_unreadable=True).outcome()
        from studio.predict import Predictor

        return Predictor.from_run(run).predict(paths, top_k=1, skip_unreadable=True)

    def retry(self, project: Project) -> None:
        """Forget a failure so the next request tries again."""
        run = latest_model_run(project.root)
        if run is not None:
            with self._lock:
                path = self._file(project, run)
                if self._busy.get(path) != "computing":
                    self._busy.pop(path, None)


def _read(path: Path) -> dict[str, Suggestion]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {digest: Suggestion(str(label), float(conf)) for digest, (label, conf) in raw.items()}
    except (OSError, ValueError, TypeError):
        return {}


def _write(path: Path, known: dict[str, Suggestion]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({h: [s.label, round(s.confidence, 5)] for h, s in known.items()}))
