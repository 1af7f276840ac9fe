"""Warm predictors: loaded once per checkpoint, reloaded when model.pt changes, used one thread at a time."""

from __future__ import annotations

import os
import threading

import pytest
from service_helpers import GUARD_S, Gate, fake_run_dir

from studio.errors import StudioError
from studio.service import JobState, TrainerService
from studio.service.predictors import PredictorCache


class FakePredictor:
    def __init__(self, run_dir, device):
        self.run_dir, self.device = run_dir, device
        self.version = (run_dir / "model.pt").read_bytes()
        self.in_use = 0
        self.max_in_use = 0
        self.lock = threading.Lock()

    def predict(self, images, *, tta=False, top_k=5, skip_unreadable=False):
        with self.lock:
            self.in_use += 1
            self.max_in_use = max(self.max_in_use, self.in_use)
        threading.Event().wait(0.005)  # room for an overlapping caller to show up
        with self.lock:
            self.in_use -= 1
        return [{"path": i, "top": [{"class": self.version.decode(), "probability": 1.0}][:top_k], "tta": tta}
                for i in images]


def bump_mtime(path):
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_cache_loads_once_and_reloads_a_new_checkpoint(tmp_path):
    run = fake_run_dir(tmp_path)
    cache = PredictorCache(2, loader=FakePredictor)
    with cache.use(run) as first:
        pass
    with cache.use(run) as again:
        assert again is first
    assert cache.loads == 1
    (run / "model.pt").write_bytes(b"retrained")
    bump_mtime(run / "model.pt")
    with cache.use(run) as newer:
        assert newer is not first and newer.version == b"retrained"
    assert cache.loads == 2 and len(cache) == 1  # the stale one was dropped


def test_cache_evicts_least_recently_used(tmp_path):
    runs = [fake_run_dir(tmp_path, f"run{i}") for i in range(3)]
    cache = PredictorCache(2, loader=FakePredictor)
    for run in (runs[0], runs[1], runs[0], runs[2]):
        with cache.use(run):
            pass
    assert cache.loads == 3
    with cache.use(runs[0]):  # still cached: it was used after run1
        pass
    assert cache.loads == 3
    with cache.use(runs[1]):
        pass
    assert cache.loads == 4


def test_missing_model_is_a_user_error(tmp_path):
    run = fake_run_dir(tmp_path, model=False)
    with pytest.raises(StudioError, match="No trained model"), PredictorCache(loader=FakePredictor).use(run):
        pass


def test_predict_reuses_the_predictor_and_serialises_its_use(tmp_path):
    run = fake_run_dir(tmp_path)
    svc = TrainerService("cpu", predictor_loader=FakePredictor)
    try:
        gate = Gate()
        svc.submit("train", gate)  # keeps the main lane busy: predictions go to the side lane
        assert gate.started.wait(GUARD_S)
        results: list = []
        lock = threading.Lock()

        def tab(n):
            for i in range(5):
                out = svc.predict(run, [f"img{n}-{i}.png"], top_k=1, timeout=GUARD_S)
                with lock:
                    results.append(out)

        tabs = [threading.Thread(target=tab, args=(n,)) for n in range(4)]
        for t in tabs:
            t.start()
        for t in tabs:
            t.join(GUARD_S)
        assert len(results) == 20 and all(r[0]["top"][0]["class"] == "weights" for r in results)
        assert svc.predictors.loads == 1
        with svc.predictors.use(run, svc.device) as predictor:
            assert predictor.max_in_use == 1
        assert svc.running_job().kind == "train"  # all served while training ran
        gate.release.set()
    finally:
        svc.shutdown(GUARD_S)


def test_predict_failure_is_a_clean_error(tmp_path):
    svc = TrainerService("cpu", predictor_loader=FakePredictor)
    try:
        with pytest.raises(StudioError, match="No trained model"):
            svc.predict(tmp_path / "nowhere", ["a.png"], timeout=GUARD_S)
        job = svc.list_jobs(kind="predict")[0]
        assert job.state is JobState.FAILED and job.interactive
    finally:
        svc.shutdown(GUARD_S)
