"""Curation decisions are stored in the project database, replace earlier ones, and drive exclusion."""

from __future__ import annotations

import sqlite3

import pytest

from studio.curate import decisions
from studio.data.store import Project
from studio.errors import StudioError


def test_record_and_read_back(labeled_project):
    project, features, _ = labeled_project
    a, b = (int(i) for i in features.image_ids[:2])
    decisions.record(project, [a], "label_issue", "kept", by="alice", detail={"suggested": "bee"})
    table = decisions.decisions(project)
    assert table[["image_id", "kind", "outcome", "by"]].values.tolist() == [
        [a, "label_issue", "kept", "alice"]
    ]
    assert table.loc[0, "detail"] == {"suggested": "bee"}
    assert table.loc[0, "label"] == "ant"  # the label at decision time
    assert decisions.decided_ids(project, "label_issue") == {a}
    assert decisions.decided_ids(project, "duplicate") == set()
    assert b not in decisions.excluded_image_ids(project)


def test_a_new_decision_replaces_the_old_one_of_the_same_kind(labeled_project):
    project, features, _ = labeled_project
    a = int(features.image_ids[0])
    decisions.record(project, [a], "label_issue", "excluded")
    assert decisions.excluded_image_ids(project) == {a}
    decisions.record(project, [a], "label_issue", "kept")
    assert decisions.excluded_image_ids(project) == set()
    assert len(decisions.decisions(project)) == 1


def test_excluded_by_any_review_and_ambiguous_only_on_request(labeled_project):
    project, features, _ = labeled_project
    a, b, c = (int(i) for i in features.image_ids[:3])
    decisions.record(project, [a], "label_issue", "kept")
    decisions.record(project, [a], "duplicate", "excluded")
    decisions.record(project, [b], "label_issue", "ambiguous")
    decisions.record(project, [c], "duplicate", "kept")
    assert decisions.excluded_image_ids(project) == {a}
    assert decisions.excluded_image_ids(project, ambiguous=True) == {a, b}


def test_clear_brings_an_image_back(labeled_project):
    project, features, _ = labeled_project
    a = int(features.image_ids[0])
    decisions.record(project, [a], "duplicate", "excluded")
    decisions.record(project, [a], "label_issue", "kept")
    assert decisions.clear(project, [a], "duplicate") == 1
    assert decisions.excluded_image_ids(project) == set()
    assert decisions.decided_ids(project, "label_issue") == {a}
    assert decisions.clear(project, [a]) == 1
    assert decisions.decisions(project).empty


def test_exclusion_keeps_file_and_label(labeled_project):
    project, features, truth = labeled_project
    a = int(features.image_ids[0])
    decisions.record(project, [a], "duplicate", "excluded")
    row = project.dataset().set_index("image_id").loc[a]
    assert row["label"] == truth[a]
    assert project.image_path(a).is_file()


@pytest.mark.parametrize(
    "kind, outcome", [("label_issue", "deleted"), ("typo", "kept"), ("duplicate", "accepted")]
)
def test_bad_decisions_are_user_errors(labeled_project, kind, outcome):
    project, features, _ = labeled_project
    with pytest.raises(StudioError):
        decisions.record(project, [int(features.image_ids[0])], kind, outcome)


def test_unknown_image_fails_the_whole_transaction(labeled_project):
    project, features, _ = labeled_project
    a = int(features.image_ids[0])
    with pytest.raises(StudioError, match="no image with id 99999"):
        decisions.record_many(project, [(a, "excluded"), (99999, "excluded")], "duplicate")
    assert decisions.decisions(project).empty  # nothing half-written


def test_decisions_survive_reopening_and_coexist_with_the_store(tmp_path, labeled_project):
    project, features, _ = labeled_project
    a = int(features.image_ids[0])
    decisions.record(project, [a], "duplicate", "excluded")
    project.set_label(a, "bee")  # the store's own connection still writes fine
    with Project.open(project.root) as again:
        assert decisions.excluded_image_ids(again) == {a}
    with sqlite3.connect(project.root / "project.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_fresh_project_has_no_decisions(project):
    assert decisions.excluded_image_ids(project) == set()
    assert decisions.decisions(project).empty
