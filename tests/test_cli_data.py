"""`studio new|import|info|export|label|undo|history|classes` through studio.cli.main."""

from __future__ import annotations

import json

import pytest
from helpers_images import make_image_folder, write_unusable_files

from studio import cli
from studio.cli import data_commands


def _data_only_parser():
    parser = cli._Parser(prog="studio")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=cli._Parser)
    sub.required = True
    data_commands.register(sub)
    return parser


@pytest.fixture
def run(monkeypatch, capsys):
    """Run `studio ...` in-process; returns (exit code, stdout, stderr)."""
    try:
        import studio.cli.train_commands  # noqa: F401
    except ModuleNotFoundError as error:  # the training commands are another module, maybe not there yet
        if error.name != "studio.cli.train_commands":
            raise
        monkeypatch.setattr(cli, "build_parser", _data_only_parser)

    def run(*argv) -> tuple[int, str, str]:
        code = cli.main([str(arg) for arg in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def run_json(run, *argv) -> dict:
    code, out, err = run(*argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_import_info_label_undo_classes_export(run, tmp_path):
    source = make_image_folder(tmp_path / "src", ["cat", "dog"], 5)
    unusable = write_unusable_files(source / "cat" / "bad")
    project = tmp_path / "proj"

    result = run_json(run, "import", project, source, "--val-fraction", "0.2", "--seed", "1")
    assert result["layout"] == "class-folders"
    assert result["imported"] == 10 and result["duplicates"] == 0
    assert len(result["rejected"]) == len(unusable) and all(
        set(item) == {"path", "reason"} for item in result["rejected"]
    )
    assert isinstance(result["warnings"], list)

    info = run_json(run, "info", project)
    assert (info["images"], info["labeled"], info["unlabeled"]) == (10, 10, 0)
    assert info["classes"] == ["cat", "dog"]
    assert info["counts"]["cat"]["val"] == 1 and info["counts"]["dog"]["train"] == 4

    assert run_json(run, "import", project, source)["duplicates"] == 10

    assert run_json(run, "label", project, 1, "bird", "--by", "tester")["changed"] is True
    history = run_json(run, "history", project, "--limit", "1")
    assert history[0]["new"] == "bird" and history[0]["by"] == "tester"
    assert run_json(run, "info", project)["classes"] == ["cat", "dog", "bird"]
    assert run_json(run, "undo", project, "--by", "someone-else") == {"undone": 0}  # only their own changes
    assert run_json(run, "undo", project, "--by", "tester") == {"undone": 1}
    assert sum(run_json(run, "info", project)["counts"]["bird"].values()) == 0

    assert run_json(run, "classes", project, "rename", "dog", "puppy")["classes"] == ["cat", "puppy", "bird"]
    assert run_json(run, "classes", project, "delete", "bird")["unlabeled"] == 0
    merged = run_json(run, "classes", project, "merge", "puppy", "cat")
    assert merged["relabeled"] == 5 and merged["classes"] == ["cat"]
    assert run_json(run, "undo", project, 5)["undone"] == 5
    assert run_json(run, "classes", project)["classes"] == ["cat", "puppy"]

    exported = run_json(run, "export", project, tmp_path / "out", "--no-split-folders")
    assert exported["exported"] == 10
    copy = run_json(run, "import", tmp_path / "copy", tmp_path / "out")
    assert copy["layout"] == "csv" and copy["imported"] == 10
    assert copy["info"]["counts"] == run_json(run, "info", project)["counts"]
    # Undo without --by stops at the labels the import set: `undo 1000` does not empty the project
    assert run_json(run, "undo", project, 1000)["undone"] == 0
    assert run_json(run, "info", project)["labeled"] == 10
    assert run_json(run, "undo", project, 1, "--by", "import")["undone"] == 1  # named, they can be undone


def test_text_output(run, tmp_path):
    source = make_image_folder(tmp_path / "src", ["a"], 3)
    code, out, _ = run("import", tmp_path / "p", source)
    assert code == 0 and "imported: 3" in out and "layout: class-folders" in out
    code, out, _ = run("info", tmp_path / "p")
    assert code == 0 and "images: 3" in out and "a" in out


def test_new_and_errors_are_one_line_exit_2(run, tmp_path):
    assert run_json(run, "new", tmp_path / "p")["created"] is True
    (tmp_path / "a-file").write_text("not a folder")
    for argv in (
        ("new", tmp_path / "p"),
        ("info", tmp_path / "missing"),
        ("label", tmp_path / "p", 99, "cat"),
        ("label", tmp_path / "p", 1),
        ("classes", tmp_path / "p", "rename", "only-one"),
        ("import", tmp_path / "p", tmp_path / "nothing-here"),
        ("import", tmp_path / "p", tmp_path, "--layout", "spiral"),
        ("import", tmp_path / "never-created", tmp_path / "nothing-here"),
        ("export", tmp_path / "p", tmp_path / "a-file" / "out"),
    ):
        code, out, err = run(*argv)
        assert code == 2, argv
        assert out == "" and err.startswith("error: ") and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "never-created").exists()
    code, _, err = run("info", tmp_path / "p", "--bogus")
    assert code == 2 and "unrecognized arguments: --bogus (see `studio info --help`)" in err
    code, _, err = run("import", tmp_path / "p", tmp_path, "--layout", "spiral")
    assert code == 2 and "(see `studio import --help`)" in err


def test_labeling_with_a_new_class_says_how_to_take_it_back(run, tmp_path):
    run_json(run, "import", tmp_path / "p", make_image_folder(tmp_path / "src", ["cat", "dog"], 3, size=16))
    code, out, err = run("label", tmp_path / "p", 1, "dgo", "--json")
    assert code == 0 and json.loads(out)["new_class"] is True
    assert "'dgo' is a new class (the others: cat, dog)" in err and "classes" in err and "undo" in err
    code, out, err = run("label", tmp_path / "p", 1, "dog", "--json")
    assert "new_class" not in json.loads(out) and err == ""
    # another case of a class there is that class: no "new class" advice (whose delete would empty 'dog')
    code, out, err = run("label", tmp_path / "p", 1, " DOG ", "--json")
    assert json.loads(out)["label"] == "dog" and "new_class" not in json.loads(out) and err == ""


def test_a_decomposed_accent_and_a_typed_one_are_one_class(run, tmp_path):
    """macOS folder names and many zips spell 'café' with a combining accent; typed, it is one code point."""
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "café")
    source = make_image_folder(tmp_path / "src", [decomposed, "rose"], 3, size=16)
    run_json(run, "import", tmp_path / "p", source)
    code, out, err = run("label", tmp_path / "p", 1, unicodedata.normalize("NFC", "café"), "--json")
    assert code == 0 and "new_class" not in json.loads(out), err
    assert run_json(run, "classes", tmp_path / "p", "list")["classes"] == ["café", "rose"]


def test_split_gives_a_project_without_val_images_its_validation_split(run, tmp_path):
    source = make_image_folder(tmp_path / "src", ["cat", "dog"], 5)
    images = sorted(p for p in source.rglob("*") if p.suffix in (".png", ".jpg"))
    rows = "".join(f"{p.relative_to(source)},{p.parent.name},train\n" for p in images)
    (source / "labels.csv").write_text("path,label,split\n" + rows)
    project = tmp_path / "proj"
    run_json(run, "import", project, source / "labels.csv")
    assert run_json(run, "info", project)["splits"]["val"] == 0  # every row said train
    assert run_json(run, "split", project)["splits"]["val"] == 0  # nothing was without a split
    info = run_json(run, "split", project, "--resplit", "--val-fraction", "0.2")
    assert info["splits"]["val"] == 2 and info["splits"]["train"] == 8 and info["labeled"] == 10


def test_an_import_that_refused_every_file_is_not_a_success(run, tmp_path):
    source = tmp_path / "src"
    write_unusable_files(source)
    code, out, err = run("import", tmp_path / "p", source, "--json")
    assert code == 2 and "nothing was imported" in err
    assert json.loads(out)["rejected"]  # the reasons are still printed


def test_a_class_delete_says_how_to_get_the_labels_back(run, tmp_path):
    source = make_image_folder(tmp_path / "src", ["cat", "dog"], 3)
    project = tmp_path / "proj"
    run_json(run, "import", project, source)
    code, _, err = run("classes", project, "delete", "dog", "--json")
    assert code == 0 and f"studio undo {project} 3` brings those 3 labels back" in err
    assert run_json(run, "undo", project, 3)["undone"] == 3
    assert run_json(run, "info", project)["labeled"] == 6


def test_a_refused_import_leaves_no_empty_project(run, tmp_path):
    source = make_image_folder(tmp_path / "src", ["cat", "dog"], 3, size=16)
    code, _, err = run("import", tmp_path / "new", source, "--val-fraction", "1")
    assert code == 2 and "validation fraction" in err and not (tmp_path / "new").exists()
    run_json(run, "import", tmp_path / "kept", source)
    code, _, err = run("import", tmp_path / "kept", source, "--val-fraction", "1")
    assert code == 2 and (tmp_path / "kept" / "project.db").is_file()  # an existing project stays
