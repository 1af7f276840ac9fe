"""`studio curate / review / dedupe / restore` through a parser built with `register` (synthetic features)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from studio.cli import _Parser, curate_commands
from studio.curate import analysis, decisions
from studio.curate import features as curate_features
from studio.curate.features import FeatureSet
from studio.errors import StudioError
from tests.curate.conftest import smooth_image


def run(argv: list[str]):
    parser = _Parser(prog="studio")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    curate_commands.register(sub)
    args = parser.parse_args(argv)
    result = args.handler(args)
    return json.loads(json.dumps(result, default=str)) if args.json else args.text(result)


@pytest.fixture
def planted(labeled_project, tmp_path, monkeypatch):
    """The labeled project plus a resized copy of a train image placed in val, and one flipped label."""
    project, features, _truth = labeled_project
    frame = project.dataset()
    original = int(frame[(frame["label"] == "cat") & (frame["split"] == "train")]["image_id"].iloc[0])
    seed = 2000 + int(frame.set_index("image_id").loc[original, "original_name"].split("_")[1].split(".")[0])
    path = tmp_path / "copy.png"
    smooth_image(seed, size=16).resize((24, 24)).save(path)
    copy, _ = project.add_image_file(path, label="cat", split="val")
    flipped = int(frame[(frame["label"] == "ant") & (frame["split"] == "train")]["image_id"].iloc[-1])
    project.set_label(flipped, "bee")
    rows = np.vstack([features.features, features.rows([original]) + 0.01])
    all_features = FeatureSet(np.r_[features.image_ids, copy], rows, "synthetic")
    monkeypatch.setattr(curate_features, "project_features", lambda *a, **k: all_features)
    return project, {"original": original, "copy": copy, "flipped": flipped}


def test_curate_json_reports_every_section(planted):
    project, ids = planted
    result = run(["curate", str(project.root), "--json"])
    assert set(result) >= {"duplicates", "leakage", "label_issues", "outliers", "warnings"}
    assert [sorted(g["image_ids"]) for g in result["duplicates"]] == [sorted([ids["original"], ids["copy"]])]
    assert result["duplicates"][0]["leakage"] is True
    assert len(result["leakage"]) == 1 and {
        result["leakage"][0]["split_a"],
        result["leakage"][0]["split_b"],
    } == {"train", "val"}
    first = result["label_issues"][0]
    assert first == {
        "image": ids["flipped"],
        "original_name": "ant_11.png",
        "label": "bee",
        "suggested": "ant",
        "score": first["score"],
        "flagged": True,
    }
    # Every labeled image is ranked (a reviewer can go on past the flagged ones), most likely wrong first.
    assert len(result["label_issues"]) == len(project.dataset(labeled_only=True))
    scores = [issue["score"] for issue in result["label_issues"]]
    assert scores == sorted(scores) and not all(issue["flagged"] for issue in result["label_issues"])
    assert 0.0 <= first["score"] < 0.5
    assert isinstance(result["outliers"], list)
    assert any("validation has only" in w for w in result["warnings"])
    stored = analysis.read_curation_report(project.root)  # where the Curate tab reads it
    assert stored["label_issues"] == result["label_issues"] and "embedding" in stored


def test_decisions_through_the_cli_are_not_reported_again(planted):
    project, ids = planted
    reviewed = run(["review", str(project.root), str(ids["flipped"]), "accept", "--label", "ant", "--json"])
    assert reviewed == {"image_id": ids["flipped"], "decision": "accepted", "label": "ant"}
    deduped = run(["dedupe", str(project.root), str(ids["original"]), str(ids["copy"]), "--keep",
                   str(ids["original"]), "--json"])
    assert deduped == {"kept": [ids["original"]], "excluded": [ids["copy"]]}
    result = run(["curate", str(project.root), "--json"])
    assert result["duplicates"] == [] and result["leakage"] == []
    assert ids["flipped"] not in [issue["image"] for issue in result["label_issues"]]
    assert result["excluded"] == 1
    assert decisions.excluded_image_ids(project) == {ids["copy"]}
    assert run(["restore", str(project.root), str(ids["copy"]), "--json"]) == {"cleared": 1}
    assert decisions.excluded_image_ids(project) == set()


def test_curate_text_output(planted):
    project, ids = planted
    text = run(["curate", str(project.root)])
    assert "duplicate groups: 1" in text and "(leakage)" in text
    assert f"image {ids['flipped']} (ant_11.png): labeled bee, looks like ant" in text


def test_cli_user_errors(planted, tmp_path):
    project, ids = planted
    with pytest.raises(StudioError, match="not a studio project"):
        run(["curate", str(tmp_path / "nowhere"), "--json"])
    with pytest.raises(StudioError, match="needs the new class"):
        run(["review", str(project.root), str(ids["flipped"]), "accept"])
    with pytest.raises(StudioError, match="keep must be one of"):
        run(["dedupe", str(project.root), str(ids["original"]), str(ids["copy"]), "--keep", "first"])
    with pytest.raises(StudioError):
        run(["review", str(project.root), "1", "delete"])
