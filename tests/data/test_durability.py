"""Two processes writing one project lose nothing; kill -9 loses nothing that was acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from helpers_images import make_image

from studio.data.importers import import_source
from studio.data.store import Project

REPO = Path(__file__).resolve().parents[2]


def make_project(tmp_path: Path, n_images: int) -> tuple[Path, list[int]]:
    source = tmp_path / "flat"
    source.mkdir()
    for index in range(n_images):
        make_image(16, seed=index).save(source / f"{index:04d}.png")
    root = tmp_path / "project"
    with Project.create(root) as project:
        import_source(project, source, "flat")
        return root, project.dataset()["image_id"].tolist()


def spawn(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + str(REPO / "tests")}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


WRITER = """
import sys, time
from pathlib import Path
from helpers_images import make_image
from studio.data.store import Project
root, name, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
ids = [int(i) for i in sys.argv[4].split(",")]
project = Project.open(root)
while not go.exists():
    time.sleep(0.01)
for n, image_id in enumerate(ids):
    project.set_label(image_id, name, by=name)
    path = root.parent / f"{name}-{n}.png"
    make_image(16, seed=10_000 + sum(map(ord, name)) * 100 + n).save(path)
    project.add_image_file(path, label=name)
project.close()
print("done", flush=True)
"""


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    root, ids = make_project(tmp_path, 40)
    go = tmp_path / "go"
    writers = [
        spawn(WRITER, root, "alpha", go, ",".join(map(str, ids[:20]))),
        spawn(WRITER, root, "beta", go, ",".join(map(str, ids[20:]))),
    ]
    time.sleep(0.5)  # both are open and waiting; start them together
    go.touch()
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        assert out.strip() == "done"
    with Project.open(root) as project:
        table = project.dataset()
        assert len(table) == 80
        labels = table.set_index("image_id")["label"]
        assert (labels.loc[ids[:20]] == "alpha").all() and (labels.loc[ids[20:]] == "beta").all()
        assert (table["label"] == "alpha").sum() == 40 and (table["label"] == "beta").sum() == 40
        history = project.label_history(limit=1000)
        assert set(history["by"]) == {"alpha", "beta", "import"}
        assert (history["by"] != "import").sum() == 40


KILLED = """
import sys
from studio.data.store import Project
project = Project.open(sys.argv[1])
ids = [int(i) for i in sys.argv[2].split(",")]
for round_ in range(1, 100_000):  # far more than it gets to do before the kill
    for start in range(0, len(ids), 3):
        batch = ids[start:start + 3]
        project.set_labels([(i, f"r{round_}") for i in batch], by="batch")
        print("ack", round_, ",".join(map(str, batch)), flush=True)
"""


def test_kill_9_keeps_every_acknowledged_write(tmp_path):
    root, ids = make_project(tmp_path, 30)
    child = spawn(KILLED, root, ",".join(map(str, ids)))
    acked_round: dict[int, int] = {}
    for count, line in enumerate(child.stdout, start=1):
        word, round_, batch = line.split()
        assert word == "ack"
        for image_id in map(int, batch.split(",")):
            acked_round[image_id] = int(round_)
        if count == 25:  # mid-way through the third round of ten batches
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    with Project.open(root) as project:
        labels = project.dataset().set_index("image_id")["label"].to_dict()
        assert project.info()["images"] == 30
    # every acknowledged write is there (or a later, unacknowledged one that replaced it)
    for image_id, round_ in acked_round.items():
        assert int(labels[image_id][1:]) >= round_
    # a batch is one transaction: its three images always carry the same round
    for start in range(0, len(ids), 3):
        assert len({labels[i] for i in ids[start : start + 3]}) == 1
