"""Each finding of the sharing review, attempted over HTTP as a browser would: every attack is refused and
leaves nothing written or read outside the workspace."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import pytest
import torch
from browser import fn_index
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from helpers_images import jpeg_bytes
from PIL import Image

from studio.data.store import Project
from studio.sharing.confinement import REFUSED


def client(studio, name: str, password: str) -> Client:
    return Client(studio["url"], auth=(name, password), verbose=False)


@pytest.fixture(scope="module")
def owner(studio):
    return client(studio, "olga", "owner-pass")


@pytest.fixture(scope="module")
def labeler(studio):
    return client(studio, "lena", "labeler-pass")


def error_text(call) -> str:
    with pytest.raises(Exception) as caught:
        call()
    return str(caught.value)


def image_count(studio) -> int:
    with Project.open(studio["project"]) as project:
        return len(project.dataset())


# ---- path traversal and server file reads ---------------------------------------------------------------

def test_upload_label_cannot_name_a_folder_elsewhere(studio, browsers, outside, tmp_path):
    picture = tmp_path / "a.jpg"
    picture.write_bytes(jpeg_bytes(32, seed=7))
    uploaded = browsers["owner"].upload(picture)
    index = fn_index(studio["app"], "import_from_uploads")
    before = image_count(studio)
    for label in (str(outside / "planted"), "../../../planted", ".."):
        ok, message = browsers["owner"].call(index, [studio["project"], uploaded, label, 0.2, 0, 0])
        assert not ok and "class name" in message
    assert not (outside / "planted").exists() and image_count(studio) == before


def test_folder_import_and_import_path_stay_inside_the_workspace(studio, browsers, owner, outside):
    before = image_count(studio)
    missing = error_text(lambda: owner.predict(studio["project"], str(outside / "nothing-here"), "auto",
                                               api_name="/import_path"))
    present = error_text(lambda: owner.predict(studio["project"], str(outside / "photos"), "auto",
                                               api_name="/import_path"))
    assert REFUSED in missing and REFUSED in present  # one message: existence is not revealed
    ok, message = browsers["owner"].call(fn_index(studio["app"], "import_from_folder"),
                                         [studio["project"], str(outside / "photos"), "auto", 0.2, 0, 0])
    assert not ok and REFUSED in message
    link = studio["workspace"] / "link-out"
    link.symlink_to(outside / "photos")  # a symlink inside the workspace is followed, then refused
    try:
        assert REFUSED in error_text(lambda: owner.predict(studio["project"], str(link), "auto",
                                                           api_name="/import_path"))
    finally:
        link.unlink()
    assert image_count(studio) == before


def test_symlinked_file_inside_an_allowed_folder_is_not_followed_out(studio, owner, outside):
    secret = next((outside / "photos" / "secret").iterdir())
    folder = studio["workspace"] / "linked" / "cat"
    folder.mkdir(parents=True)
    (folder / "innocent.png").symlink_to(secret)
    before = image_count(studio)
    report = owner.predict(studio["project"], str(folder.parent), "class-folders", api_name="/import_path")
    assert report["imported"] == 0 and "outside" in report["rejected"][0]["reason"]
    assert image_count(studio) == before


def test_uploaded_csv_cannot_name_server_files(studio, browsers, outside, tmp_path):
    secret = next((outside / "photos" / "secret").iterdir())
    sheet = tmp_path / "labels.csv"
    sheet.write_text(f"path,label\n{secret},cat\n../../{secret.name},cat\n")
    before = image_count(studio)
    ok, output = browsers["owner"].call(fn_index(studio["app"], "import_from_uploads"),
                                        [studio["project"], browsers["owner"].upload(sheet), "", 0.2, 0, 0])
    assert ok and "0** imported" in output[0]
    assert image_count(studio) == before


def test_predict_refuses_a_bare_server_path(studio, browsers, outside):
    secret = next((outside / "photos" / "secret").iterdir())
    ok, message = browsers["viewer"].call(fn_index(studio["app"], "predict"),
                                          [{"path": str(secret), "meta": {"_type": "gradio.FileData"}},
                                           False, 5, "", studio["project"]])
    assert not ok and str(secret.parent) not in message


def test_predict_takes_no_bare_path_into_gradios_upload_folder(studio, browsers, tmp_path):
    """Without FileData's meta Gradio checks nothing: such a path into its folder could name another user's
    upload, and is held to the caller's folders instead; an upload of the caller's own still works."""
    image = tmp_path / "mine.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(image)
    (uploaded,) = browsers["owner"].upload(image)  # someone's upload, in Gradio's folder
    bare = {"path": uploaded["path"]}
    ok, message = browsers["viewer"].call(fn_index(studio["app"], "predict"), [bare, False, 5, "",
                                                                                studio["project"]])
    assert not ok and REFUSED in message and uploaded["path"] not in message


def test_predict_refuses_a_made_up_tta_setting(studio, browsers, tmp_path):
    """The TTA radio sends 'run', 'on' or 'off'; a caller by the callback's index may send anything."""
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), (200, 40, 40)).save(photo)
    upload = browsers["viewer"].upload(photo)[0]
    for junk in ("sideways", {"on": 1}, 7):
        # the radio itself refuses what is not one of its choices; the API endpoint has no radio
        ok, message = browsers["viewer"].call(fn_index(studio["app"], "on_predict"),
                                              [studio["project"], "", upload, None, junk, 3])
        assert not ok and "not in the list of choices" in str(message), (junk, message)
        ok, message = browsers["viewer"].call(fn_index(studio["app"], "predict"),
                                              [upload, junk, 3, "", studio["project"]])
        assert not ok and "must be 'run', 'on' or 'off'" in str(message), (junk, message)


def test_predict_a_folder_refuses_server_folders(studio, browsers, outside):
    ok, message = browsers["viewer"].call(fn_index(studio["app"], "on_batch"),
                                          [studio["project"], "", str(outside / "photos"), None, "off"])
    assert not ok and REFUSED in message
    assert not list(outside.rglob("*.csv"))


def test_evaluate_tab_lists_no_runs_of_a_server_folder(studio, browsers, outside):
    index = fn_index(studio["app"], "on_tab_opened")
    ok, message = browsers["viewer"].call(index, [str(outside), "evaluate", None])
    assert not ok and "not a project of this studio" in message
    ok, output = browsers["viewer"].call(index, [studio["project"], "evaluate", None])
    assert ok, output


def test_augment_file_outside_is_refused_without_echoing_it(studio, owner, outside):
    message = error_text(lambda: owner.predict(studio["project"], augment=str(outside / "settings.json"),
                                               api_name="/train"))
    assert REFUSED in message and "private_key" not in message


def test_train_tab_augment_note_reads_no_settings_outside(studio, browsers, outside):
    from studio.augment import preset, save_project_augment

    save_project_augment(outside, preset("medium", rotate=33.0))  # a server folder's own settings file
    index = fn_index(studio["app"], "on_augment_note")
    ok, note = browsers["viewer"].call(index, [str(outside), "project"])
    assert ok and "not a project of this studio" in str(note)
    # The settings' rotation is not read (the note may echo the caller's own path, which can hold "33":
    # pytest's numbered temporary folders), and no server path leaks to a shared link.
    assert "33" not in str(note).replace(str(outside), "") and str(studio["workspace"]) not in str(note)
    ok, note = browsers["viewer"].call(index, [studio["project"], "project"])
    assert ok and "Saved in the Augment tab" in str(note)


# ---- size limits ----------------------------------------------------------------------------------------

def test_zip_bomb_is_refused_from_its_directory(studio, browsers, tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("huge.png", "w", force_zip64=True) as entry:
        for _ in range(120):
            entry.write(bytes(1024 * 1024))
    assert bomb.stat().st_size < 2 * 1024 * 1024
    ok, message = browsers["owner"].call(fn_index(studio["app"], "import_from_uploads"),
                                         [studio["project"], browsers["owner"].upload(bomb), "", 0.2, 0, 0])
    assert not ok and "zip bomb" in message
    cache = Path(studio["project"]) / "cache"
    assert not [p for p in cache.rglob("*") if p.is_file() and p.stat().st_size > 10 * 1024 * 1024]


def test_oversized_file_is_refused_from_its_size(studio, owner):
    big = studio["workspace"] / "big" / "x"
    big.mkdir(parents=True)
    with open(big / "huge.png", "wb") as handle:
        handle.truncate(150 * 1024 * 1024)  # sparse: costs no disk, but reading it would cost 150 MB
    report = owner.predict(studio["project"], str(big.parent), "auto", api_name="/import_path")
    assert report["imported"] == 0 and "limit" in report["rejected"][0]["reason"]


# ---- roles ----------------------------------------------------------------------------------------------

def test_labeler_is_refused_owner_actions(studio, browsers, labeler):
    for api_name, args in (
        ("/train", (studio["project"],)),
        ("/import_path", (studio["project"], "/tmp", "auto")),
        ("/create_project", ("mine", False)),
    ):
        assert "owner role" in error_text(lambda a=args, n=api_name: labeler.predict(*a, api_name=n)), (
            api_name
        )
    with Project.open(studio["project"]) as project:
        classes = project.classes()
    delete = fn_index(studio["app"], "handler", button="Delete")
    ok, message = browsers["labeler"].call(delete, [studio["project"], classes[:1], "", 0])
    assert not ok and "owner role" in message
    with Project.open(studio["project"]) as project:
        assert project.classes() == classes
    assert not (studio["workspace"] / "mine").exists()


def test_only_an_owner_exports_a_model(studio, browsers):
    for role in ("viewer", "labeler"):
        ok, message = browsers[role].call(fn_index(studio["app"], "on_export"),
                                          [studio["project"], "", "onnx"])
        assert not ok and "owner" in message, role


def test_viewer_is_refused_labeling(studio):
    viewer = client(studio, "vic", "viewer-pass")
    with Project.open(studio["project"]) as project:
        image_id = int(project.dataset()["image_id"].iloc[0])
        label = project.dataset()["label"].iloc[0]
    assert "labeler role" in error_text(lambda: viewer.predict(studio["project"], image_id, "dog",
                                                               api_name="/set_label"))
    with Project.open(studio["project"]) as project:
        assert project.dataset()["label"].iloc[0] == label


def test_undo_is_per_user_and_names_the_images(studio, owner, labeler):
    with Project.open(studio["project"]) as project:
        ids = [int(i) for i in project.dataset()["image_id"][:3]]
    owner.predict(studio["project"], ids[2], "fish", api_name="/set_label")  # an owner may add a class
    with pytest.raises(AppError, match="only an owner can add a class"):  # a labeler labels with them
        labeler.predict(studio["project"], ids[0], "bird", api_name="/set_label")
    labeler.predict(studio["project"], ids[0], "fish", api_name="/set_label")
    labeler.predict(studio["project"], ids[1], "fish", api_name="/set_label")
    assert labeler.predict(studio["project"], 1, api_name="/undo")["reverted"] == [ids[1]]
    assert labeler.predict(studio["project"], 1, api_name="/undo")["reverted"] == [ids[0]]
    with Project.open(studio["project"]) as project:
        labels = project.dataset().set_index("image_id")["label"]
    assert labels[ids[2]] == "fish"  # the owner's change survived the labeler's undos
    history = owner.predict(studio["project"], 10, api_name="/label_history")
    assert {row["by"] for row in history} >= {"olga", "lena"}


def test_a_class_delete_is_recorded_as_the_owners_and_their_undo_reverts_it(studio, owner):
    with Project.open(studio["project"]) as project:
        image_id = int(project.dataset()["image_id"].iloc[-1])
    from studio.sharing.caller import Caller, act_as, release

    owner.predict(studio["project"], image_id, "whale", api_name="/set_label")
    # The Data tab's Delete, called in the server as the signed-in owner (over HTTP its class list would
    # first have to be loaded into the page's session)
    delete = studio["app"].fns[fn_index(studio["app"], "handler", "Delete")].fn
    token = act_as(Caller("olga", "owner"))
    try:
        delete(studio["project"], ["whale"], "", 0)
    finally:
        release(token)
    history = owner.predict(studio["project"], 1, api_name="/label_history")
    assert history[0]["by"] == "olga" and history[0]["new"] is None  # not the anonymous local user
    assert owner.predict(studio["project"], 1, api_name="/undo")["reverted"] == [image_id]


def test_curation_answers_only_concern_what_the_analysis_found(studio, labeler):
    # No analysis has run: a made-up "duplicate group" or "label issue" would exclude any images at will
    with Project.open(studio["project"]) as project:
        ids = [int(i) for i in project.dataset()["image_id"][:3]]
        excluded_before = project.excluded_image_ids()
    with pytest.raises(AppError, match="not a duplicate group of the last analysis"):
        labeler.predict(studio["project"], ids, str(ids[0]), api_name="/resolve_duplicates")
    with pytest.raises(AppError, match="not in the last analysis"):
        labeler.predict(studio["project"], ids[1], "exclude", "", api_name="/review_label_issue")
    with Project.open(studio["project"]) as project:
        assert project.excluded_image_ids() == excluded_before


def test_two_users_labeling_at_once_lose_nothing(studio, owner, labeler):
    with Project.open(studio["project"]) as project:
        ids = [int(i) for i in project.dataset()["image_id"]]
    halves = {"olga": (owner, ids[::2], "cat"), "lena": (labeler, ids[1::2], "dog")}

    def label(who):
        user, mine, name = halves[who]
        for image_id in mine:
            user.predict(studio["project"], image_id, name, api_name="/set_label")

    threads = [threading.Thread(target=label, args=(who,)) for who in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with Project.open(studio["project"]) as project:
        labels = project.dataset().set_index("image_id")["label"]
        history = project.label_history(100)
    for _, mine, name in halves.values():
        assert all(labels[i] == name for i in mine)
    assert {"olga", "lena"} <= set(history["by"])


# ---- queues ---------------------------------------------------------------------------------------------

def test_one_queued_training_per_user_and_a_bounded_gradio_queue(studio, owner):
    from studio.ui.launcher import QUEUE_MAX_SIZE

    assert studio["app"]._queue.max_size == QUEUE_MAX_SIZE
    jobs, refusal = [], ""
    try:
        for _ in range(3):  # one may run and one wait; the next is refused (sooner if the first still waits)
            try:
                jobs.append(owner.predict(studio["project"], api_name="/train"))
            except AppError as error:
                refusal = str(error)
                break
        assert "already have a training waiting" in refusal and 1 <= len(jobs) <= 2
    finally:
        for job_id in jobs:
            owner.predict(job_id, api_name="/cancel")



def test_direct_run_route_cannot_skip_the_queue(studio, browsers):
    """Gradio's `/run/<name>` runs an event without the queue (and so past its size and per-user limits)
    unless the queue is closed to it: every queued event is refused there, whoever calls."""
    queued = [index for index, block_fn in studio["app"].fns.items() if block_fn.queue]
    assert len(queued) > 100  # every tab's events and the API's
    calls = [("viewer", index) for index in queued] + [("owner", queued[0])]
    for role, index in calls:
        response = browsers[role].http.post("/gradio_api/run/predict",
                                             json={"data": [], "fn_index": index, "session_hash": "x"})
        assert response.status_code == 404 and "join the queue" in response.text, (role, index)

# ---- files ----------------------------------------------------------------------------------------------

class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(__file__).parent / "payload-ran",))


def test_pickle_checkpoint_is_refused(studio, owner, tmp_path):
    run = Path(studio["project"]) / "runs" / "20990101-000000-linear"
    run.mkdir(parents=True)
    torch.save({"format": "studio-checkpoint/1", "payload": _Payload()}, run / "model.pt")
    (run / "status.json").write_text('{"status": "done"}')
    picture = tmp_path / "p.jpg"
    picture.write_bytes(jpeg_bytes(32, seed=3))
    message = error_text(
        lambda: owner.predict(
            handle_file(str(picture)), False, 5, str(run), studio["project"], api_name="/predict"
        )
    )
    assert "pickle" in message
    assert not (Path(__file__).parent / "payload-ran").exists()
