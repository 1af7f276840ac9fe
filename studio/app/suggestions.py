"""The latest model's guess for every image, computed in the background and kept on disk (no Gradio here).

Suggestions come from the newest run folder holding a `model.pt`. They are computed off the request
thread (through the trainer service when there is one, else a `Predictor`), saved per run under
`cache/suggestions/<run>.json` keyed by image hash, and only missing images are predicted again.
The run's stored snapshot (split.json, `studio.data.snapshot`) says which images it trained on: the
model's answer on those is its fit of the label it was shown, not a guess, so they get no suggestion
(and are never predicted); its validation images and every image added or labeled since get one.
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

from studio.data.snapshot import Snapshot
from studio.data.store import Project
from studio.durable import atomic_write_text
from studio.errors import StudioError
from studio.service.runs import latest_model_run

log = logging.getLogger("studio.app")
CHUNK = 128


@dataclass(frozen=True)
class Suggestion:
    label: str
    confidence: float


@dataclass(frozen=True)
class RunSource:
    """Where suggestions come from: a run, and the images its snapshot trained on (content hashes)."""

    run: Path
    trained: frozenset[str]
    label_hash: str | None  # the snapshot's hash; None when the run stored no readable snapshot

    def describe(self) -> str:
        if self.label_hash is None:
            return f"model {self.run.name}"
        snapshot = f"snapshot {self.label_hash[:8]}" if self.label_hash else "its snapshot"
        return (f"model {self.run.name} ({snapshot}: its {len(self.trained)} training images get none, "
                "the model learned their labels)")


def run_source(run: Path) -> RunSource:
    """The run and its snapshot's training images; a run without a readable split.json hides none."""
    try:
        snapshot = Snapshot.load(run)
    except (StudioError, KeyError, TypeError, ValueError) as error:  # an old or damaged run folder
        log.info("run %s has no usable snapshot (%s): every image gets a suggestion", run.name, error)
        return RunSource(run, frozenset(), None)
    return RunSource(run, frozenset(snapshot.train["hash"].astype(str)), snapshot.label_hash)


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
        self._sources: dict[Path, RunSource] = {}  # a run's snapshot never changes once written

    def _file(self, project: Project, run: Path) -> Path:
        return project.cache_dir / "suggestions" / f"{run.name}.json"

    def source(self, project: Project) -> RunSource | None:
        """The run suggestions come from now (the newest finished run with a model), or None."""
        run = latest_model_run(project.root)
        if run is None:
            return None
        with self._lock:
            known = self._sources.get(run)
        if known is None:
            known = run_source(run)
            with self._lock:
                self._sources[run] = known
        return known

    def suggestions(
        self, project: Project, hashes: list[str] | None = None, *, compute: bool = True
    ) -> tuple[Mapping[str, Suggestion], str]:
        """(hash -> Suggestion, read-only; status line). Starts a background job for images without a
        suggestion.

        The run's training images are left out: the model saw them with their labels."""
        source = self.source(project)
        if source is None:
            return {}, "No trained model yet: train one to get suggestions."
        run = source.run
        path = self._file(project, run)
        with self._lock:
            known = self._memory.get(path)
            if known is None:
                # Without the run's training images, filtered once: the same object until it changes.
                known = MappingProxyType({h: v for h, v in _read(path).items() if h not in source.trained})
                self._memory[path] = known
            busy = self._busy.get(path)
            unreadable = self._unreadable.get(path, set())
        trained = source.trained
        missing = [h for h in (hashes or []) if h not in known and h not in unreadable and h not in trained]
        if missing and compute and busy is None:
            self._start(project, source, path)
            busy = "computing"
        if busy == "computing":
            status = f"Model {run.name}: computing suggestions for {len(missing)} images…"
        elif busy:
            status = f"Model {run.name}: suggestions failed ({busy})."
        else:
            status = f"Suggestions from {source.describe()}."
        return known, status

    def _start(self, project: Project, source: RunSource, path: Path) -> None:
        with self._lock:
            self._busy[path] = "computing"
        thread = threading.Thread(target=self._compute, args=(project, source, path), daemon=True,
                                  name="studio-suggestions")
        thread.start()

    def _compute(self, project: Project, source: RunSource, path: Path) -> None:
        run = source.run
        try:
            data = project.dataset()
            with self._lock:
                known = dict(self._memory.get(path, {}))
            todo = data[~data["hash"].isin(known) & ~data["hash"].isin(source.trained)]
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
        source = self.source(project)
        if source is not None:
            with self._lock:
                path = self._file(project, source.run)
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
