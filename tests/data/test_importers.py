"""Importers: every layout, zip and CSV sources, unusable files, duplicates and conflicts, splits."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from helpers_images import make_image, make_image_folder, write_odd_images, write_unusable_files

from studio.data.importers import import_source
from studio.errors import StudioError


def png_bytes(seed: int, size: int = 20) -> bytes:
    buffer = io.BytesIO()
    make_image(size, seed=seed).save(buffer, "PNG")
    return buffer.getvalue()


def labels_by_name(project) -> dict[str, tuple[str | None, str | None]]:
    table = project.dataset()
    return {row.original_name: (row.label, row.split) for row in table.itertuples()}


def test_class_folders_nested_mixed_case_and_junk(project, tmp_path):
    root = make_image_folder(tmp_path / "src", ["cat", "dog"], 6)
    nested = root / "cat" / "more" / "deeper"
    nested.mkdir(parents=True)
    make_image(20, seed=900).save(nested / "UPPER.JPEG", "JPEG")
    make_image(20, seed=901).save(root / "dog" / "photo.Png", "PNG")
    make_image(20, seed=902).save(root / "loose.jpg", "JPEG")
    (root / "dog" / ".DS_Store").write_bytes(b"junk")
    (root / "dog" / "Thumbs.db").write_bytes(b"junk")
    (root / "dog" / "._photo.Png").write_bytes(b"resource fork")
    (root / "__MACOSX" / "cat").mkdir(parents=True)
    (root / "__MACOSX" / "cat" / "._x.jpg").write_bytes(b"junk")
    (root / ".hidden").mkdir()
    make_image(20, seed=903).save(root / ".hidden" / "secret.png")

    report = import_source(project, root)

    assert report.layout == "class-folders"
    assert report.imported == 15 and report.duplicates == 0 and report.rejected == []
    assert report.skipped == 5
    names = labels_by_name(project)
    assert names["UPPER.JPEG"][0] == "cat" and names["photo.Png"][0] == "dog"
    assert names["loose.jpg"] == (None, None)
    assert any("outside any class folder" in w for w in report.warnings)
    assert project.classes() == ["cat", "dog"]


@pytest.mark.parametrize("val_name", ["val", "valid", "Validation"])
def test_pre_split_keeps_its_split(project, tmp_path, val_name):
    root = tmp_path / "src"
    make_image_folder(root / "train", ["a", "b"], 4, seed=1)
    make_image_folder(root / val_name, ["a", "b"], 2, seed=2)
    make_image_folder(root / "test", ["a"], 1, seed=3)
    make_image_folder(root / "extras", ["a"], 1, seed=4)

    report = import_source(project, root)

    assert report.layout == "pre-split"
    assert report.imported == 13
    assert project.info()["counts"] == {
        "a": {"train": 4, "val": 2, "test": 1, "unsplit": 0},
        "b": {"train": 4, "val": 2, "test": 0, "unsplit": 0},
    }
    assert any("'extras'" in w for w in report.warnings)


def test_split_folders_without_class_folders_keep_split_unlabeled(project, tmp_path):
    for split, seed in (("train", 0), ("val", 10)):
        (tmp_path / "src" / split).mkdir(parents=True)
        for index in range(2):
            make_image(20, seed=seed + index).save(tmp_path / "src" / split / f"{index}.jpg")
    report = import_source(project, tmp_path / "src")
    assert report.layout == "pre-split" and report.imported == 4
    table = project.dataset()
    assert table["label"].isna().all() and sorted(table["split"]) == ["train", "train", "val", "val"]


def test_flat_folder_imports_unlabeled_without_split(project, tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    for index in range(4):
        make_image(20, seed=index).save(root / f"{index}.webp")
    report = import_source(project, root)
    assert report.layout == "flat" and report.imported == 4
    table = project.dataset()
    assert table["label"].isna().all() and table["split"].isna().all()
    assert any("no label yet" in w for w in report.warnings)


def write_csv_source(folder: Path) -> Path:
    (folder / "imgs").mkdir(parents=True)
    for index in range(6):
        (folder / "imgs" / f"{index}.png").write_bytes(png_bytes(100 + index))
    rows = [
        "Path,Label,Split",
        "imgs/0.png,cat,train",
        "imgs/1.png,cat,validation",
        "imgs\\2.png,dog,",
        "imgs/3.png,dog,holdout",
        "imgs/4.png,,train",
        "imgs/missing.png,dog,train",
        "imgs/5.png,cat,test",
    ]
    csv_path = folder / "labels.csv"
    csv_path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return csv_path


def test_csv_source_with_split_missing_file_and_empty_label(project, tmp_path):
    csv_path = write_csv_source(tmp_path / "src")
    report = import_source(project, csv_path)
    assert report.layout == "csv" and report.imported == 5
    reasons = {item["path"].rsplit(":", 1)[-1]: item["reason"] for item in report.rejected}
    assert "empty label" in reasons["imgs/4.png"]
    assert "not found" in reasons["imgs/missing.png"]
    assert any("holdout" in w for w in report.warnings)
    names = labels_by_name(project)
    assert names["0.png"] == ("cat", "train")
    assert names["1.png"] == ("cat", "val")
    assert names["5.png"] == ("cat", "test")
    assert names["2.png"][0] == "dog" and names["2.png"][1] in ("train", "val")  # given a split


def test_folder_with_label_csv_is_detected(project, tmp_path):
    write_csv_source(tmp_path / "src")
    assert import_source(project, tmp_path / "src").layout == "csv"


def test_zip_of_class_folders_inside_a_top_folder(project, tmp_path):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for index in range(3):
            zf.writestr(f"dataset/cat/{index}.png", png_bytes(index))
            zf.writestr(f"dataset/dog/sub/{index}.PNG", png_bytes(50 + index))
        zf.writestr("__MACOSX/dataset/cat/._0.png", b"junk")
    report = import_source(project, archive)
    assert report.layout == "class-folders"
    assert report.imported == 6 and report.rejected == []
    assert project.info()["counts"]["dog"]["val"] == 1
    assert set(project.dataset()["source"]) >= {"data.zip:dataset/cat/0.png"}


def test_zip_names_keep_their_accents_without_the_utf8_flag(project, tmp_path):
    """Info-ZIP on Linux writes UTF-8 names without the UTF-8 flag; old Windows tools write cp437."""
    archive = tmp_path / "accents.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # ASCII stand-ins of the same length, patched below
        for index in range(3):
            zf.writestr(f"QQtQQ/{index}.png", png_bytes(index))
            zf.writestr(f"cafQ/{index}.png", png_bytes(50 + index))
    raw = archive.read_bytes().replace(b"QQtQQ", "été".encode()).replace(b"cafQ", b"caf\x82")
    archive.write_bytes(raw)
    with zipfile.ZipFile(archive) as zf:  # what zipfile alone makes of them
        assert not any(info.flag_bits & 0x800 for info in zf.infolist())
        assert "├⌐t├⌐/0.png" in zf.namelist()
    report = import_source(project, archive)
    assert report.imported == 6 and report.rejected == []
    assert set(project.classes()) == {"été", "café"}


def test_zip_slip_entries_are_rejected_and_never_written(project, tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("train/cat/0.png", png_bytes(1))
        zf.writestr("train/cat/1.png", png_bytes(2))
        zf.writestr("val/cat/2.png", png_bytes(3))
        zf.writestr("../escaped.png", png_bytes(4))
        zf.writestr("train/../../escaped2.png", png_bytes(5))
        zf.writestr("/tmp/absolute.png", png_bytes(6))
    report = import_source(project, archive)
    assert report.layout == "pre-split" and report.imported == 3
    rejected = {item["path"]: item["reason"] for item in report.rejected}
    assert set(rejected) == {
        "evil.zip:../escaped.png",
        "evil.zip:train/../../escaped2.png",
        "evil.zip:/tmp/absolute.png",
    }
    assert all("zip-slip" in reason for reason in rejected.values())
    assert not (tmp_path / "escaped.png").exists() and not Path("/tmp/absolute.png").exists()


def test_zip_with_csv_inside(project, tmp_path):
    archive = tmp_path / "csv.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("labels.csv", "path,label\na.png,x\nb.png,y\n../outside.png,y\n")
        zf.writestr("a.png", png_bytes(1))
        zf.writestr("b.png", png_bytes(2))
    report = import_source(project, archive)
    assert report.layout == "csv" and report.imported == 2
    assert len(report.rejected) == 1 and "leaves the archive" in report.rejected[0]["reason"]


def test_not_a_zip_is_a_plain_error(project, tmp_path):
    fake = tmp_path / "broken.zip"
    fake.write_bytes(b"not a zip")
    with pytest.raises(StudioError, match="not a readable zip"):
        import_source(project, fake)


def test_unusable_files_are_reported_and_the_rest_imports(project, tmp_path):
    root = make_image_folder(tmp_path / "src", ["good"], 3)
    expected = write_unusable_files(root / "bad")
    report = import_source(project, root)
    assert report.imported == 3
    reasons = {Path(item["path"]).name: item["reason"] for item in report.rejected}
    assert set(reasons) == set(expected)
    for name, word in expected.items():
        assert word in reasons[name], (name, reasons[name])
    assert project.classes() == ["good"]  # no class for a folder with nothing usable
    assert sorted(p.name for p in project.images_dir.iterdir()) == sorted(
        f"{h}.{n.rsplit('.', 1)[1].lower()}"
        for h, n in zip(project.dataset()["hash"], project.dataset()["original_name"])
    )


def test_pixel_limit_is_configurable(project, tmp_path):
    root = make_image_folder(tmp_path / "src", ["a"], 2, size=40)
    report = import_source(project, root, max_pixels=1000)
    assert report.imported == 0 and len(report.rejected) == 2
    assert all("decompression bomb" in item["reason"] for item in report.rejected)


def test_every_odd_but_valid_image_imports(project, tmp_path):
    paths = write_odd_images(tmp_path / "src" / "odd")
    report = import_source(project, tmp_path / "src")
    assert report.rejected == [] and report.imported == len(paths)
    rotated = project.dataset().set_index("original_name").loc["exif_rotated.jpg"]
    assert (rotated.width, rotated.height) == (20, 40)


def test_duplicates_reimport_and_label_conflicts(project, tmp_path):
    root = make_image_folder(tmp_path / "src", ["cat", "dog"], 5)
    (root / "cat" / "copy.png").write_bytes((root / "cat" / "cat_0001.png").read_bytes())
    first = import_source(project, root)
    assert first.imported == 10 and first.duplicates == 1
    assert first.duplicate_files[0]["path"].endswith("copy.png")
    before = project.dataset()
    history_rows = len(project.label_history(1000))

    again = import_source(project, root)
    assert again.imported == 0 and again.duplicates == 11 and again.conflicts == []
    assert project.dataset().equals(before)
    assert len(project.label_history(1000)) == history_rows

    other = tmp_path / "other" / "dog"
    other.mkdir(parents=True)
    (other / "x.png").write_bytes((root / "cat" / "cat_0001.png").read_bytes())
    conflict = import_source(project, tmp_path / "other")
    assert conflict.imported == 0 and conflict.duplicates == 1
    assert conflict.conflicts[0]["kept"] == "cat" and conflict.conflicts[0]["ignored"] == "dog"
    assert any("kept 'cat'" in w for w in conflict.warnings)
    assert project.dataset()["label"].tolist() == before["label"].tolist()

    elsewhere = tmp_path / "third" / "lion"
    elsewhere.mkdir(parents=True)
    (elsewhere / "y.png").write_bytes((root / "cat" / "cat_0001.png").read_bytes())
    assert import_source(project, tmp_path / "third").conflicts[0]["ignored"] == "lion"
    assert project.classes() == ["cat", "dog"]  # a conflicting label creates no class


def test_duplicate_gains_label_when_it_had_none(project, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.png").write_bytes(png_bytes(1))
    import_source(project, flat)
    labeled = tmp_path / "labeled" / "cat"
    labeled.mkdir(parents=True)
    (labeled / "a.png").write_bytes(png_bytes(1))
    report = import_source(project, tmp_path / "labeled")
    assert report.duplicates == 1 and report.conflicts == []
    assert project.dataset()["label"].tolist() == ["cat"]


def test_stratified_split_every_class_gets_validation(project, tmp_path):
    root = make_image_folder(tmp_path / "src", ["big"], 20)
    make_image_folder(root, ["small"], 3, seed=1)
    make_image_folder(root, ["pair"], 2, seed=2)
    report = import_source(project, root, val_fraction=0.25, seed=3)
    counts = project.info()["counts"]
    assert counts["big"] == {"train": 15, "val": 5, "test": 0, "unsplit": 0}
    assert counts["small"]["val"] == 1 and counts["small"]["train"] == 2
    assert counts["pair"] == {"train": 1, "val": 1, "test": 0, "unsplit": 0}
    assert any("'pair' has only 2" in w for w in report.warnings)
    assert any("'small' has only 3" in w for w in report.warnings)
    assert not any("'big'" in w for w in report.warnings)


def test_split_is_reproducible_and_seed_dependent(tmp_path):
    from studio.data.store import Project

    root = make_image_folder(tmp_path / "src", ["a", "b"], 30)
    splits = []
    for name, seed in (("p1", 0), ("p2", 0), ("p3", 1)):
        with Project.create(tmp_path / name) as project:
            import_source(project, root, seed=seed, workers=1 if name == "p2" else None)
            splits.append(project.dataset().set_index("hash")["split"].sort_index().tolist())
    assert splits[0] == splits[1]
    assert splits[0] != splits[2]


def test_bad_arguments_are_plain_errors(project, tmp_path):
    with pytest.raises(StudioError, match="does not exist"):
        import_source(project, tmp_path / "nope")
    with pytest.raises(StudioError, match="unknown layout"):
        import_source(project, tmp_path, layout="spiral")
    with pytest.raises(StudioError, match="validation fraction"):
        import_source(project, tmp_path, val_fraction=1.5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudioError, match="no image files"):
        import_source(project, tmp_path / "empty")


def test_progress_is_reported_per_batch(project, tmp_path):
    root = make_image_folder(tmp_path / "src", ["a"], 5)
    seen = []
    import_source(project, root, batch_size=2, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 5), (4, 5), (5, 5)]


def test_a_zip_without_images_is_named_in_the_message(tmp_path):
    import zipfile

    from studio.data.importers import import_source
    from studio.data.store import Project
    from studio.errors import StudioError

    archive = tmp_path / "notes.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("readme.txt", "no images here")
    with Project.create(tmp_path / "p") as project, pytest.raises(StudioError) as error:
        import_source(project, archive)
    assert "the zip notes.zip" in str(error.value) and "import-" not in str(error.value)
