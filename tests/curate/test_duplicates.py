"""Near-duplicates: planted resized/re-encoded copies are grouped, leakage flagged, groups resolved."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from studio.curate import decisions
from studio.curate.duplicates import (
    _bits,
    find_duplicates,
    find_pairs,
    group_pairs,
    hamming_matrix,
    leakage_pairs,
    pending_groups,
    project_hashes,
    resolve_group,
)
from studio.errors import StudioError
from tests.curate.conftest import smooth_image


def test_hamming_matrix_counts_differing_bits():
    a = _bits(["0000000000000000", "ffffffffffffffff", None])
    b = _bits(["000000000000000f", "ffffffffffffffff"])
    distance = hamming_matrix(a, b)
    assert distance[0].tolist() == [4, 64]
    assert distance[1].tolist() == [60, 0]
    assert (distance[2] > 64).all()  # a missing hash matches nothing, not even another missing one


def test_union_find_joins_chains_into_one_group():
    pairs = [{"a": 0, "b": 1}, {"a": 1, "b": 2}, {"a": 4, "b": 5}]
    assert group_pairs(6, pairs) == [[0, 1, 2], [4, 5]]


def test_features_alone_find_copies_the_hashes_miss():
    phash = _bits([f"{i:016x}" for i in (0, 0xFFFF, 0xFFFF0000, 0xFFFF00000000)])
    rng = np.random.default_rng(0)
    features = rng.normal(size=(4, 16))
    features[3] = features[0] * 2 + 1e-3  # same direction: cosine ~ 1
    pairs = find_pairs(phash, phash, features)
    assert [(p["a"], p["b"]) for p in pairs] == [(0, 3)]


def _all_pairs(phash, dhash, features=None, hash_max=18, min_cos=0.80, alone=0.96):
    """The exhaustive definition of a duplicate pair, every pair compared (the reference)."""
    dp, dd = hamming_matrix(phash, phash), hamming_matrix(dhash, dhash)
    match = dp + dd <= hash_max
    if features is not None:
        unit = features / np.linalg.norm(features, axis=1, keepdims=True)
        cosine = unit @ unit.T
        match = (match & (cosine >= min_cos)) | (cosine >= alone)
    return [(int(a), int(b)) for a, b in zip(*np.nonzero(match)) if a < b]


@pytest.mark.parametrize("with_features", [False, True])
def test_indexed_search_finds_exactly_the_all_pairs_duplicates(with_features):
    rng = np.random.default_rng(3)
    n = 600
    phash = rng.integers(0, 2, (n, 64), dtype=np.uint8)
    dhash = rng.integers(0, 2, (n, 64), dtype=np.uint8)
    features = rng.normal(size=(n, 32)).astype(np.float32)
    for copy, original in zip(range(500, 560), range(60)):
        bits = rng.integers(0, 12 if copy % 3 else 25)  # some within the hash limit, some beyond
        phash[copy], dhash[copy] = phash[original], dhash[original]
        phash[copy, rng.choice(64, bits // 2, replace=False)] ^= 1
        dhash[copy, rng.choice(64, bits - bits // 2, replace=False)] ^= 1
        features[copy] = features[original] + rng.normal(scale=0.1 if copy % 2 else 0.6, size=32)
    phash[590:] = 2  # undecodable images: never a duplicate, not even of each other
    dhash[590:] = 2
    used = features if with_features else None
    pairs = find_pairs(phash, dhash, used)
    assert [(p["a"], p["b"]) for p in pairs] == _all_pairs(phash, dhash, used)
    assert 20 < len(pairs) < 60  # the test really has pairs on both sides of the thresholds
    first = pairs[0]
    assert first["phash"] == int(hamming_matrix(phash[[first["a"]]], phash[[first["b"]]])[0, 0])


@pytest.fixture
def planted(project, tmp_path):
    """10 distinct pictures (train) plus planted copies: resized, JPEG re-encoded, both; one in val."""
    folder = tmp_path / "src"
    folder.mkdir()
    ids = {}
    for i in range(10):
        path = folder / f"orig_{i}.png"
        smooth_image(i).save(path)
        ids[f"orig_{i}"], _ = project.add_image_file(path, label="a" if i % 2 else "b", split="train")
    copies = {
        "resized_0": lambda: smooth_image(0).resize((61, 61), Image.BILINEAR),
        "jpeg_1": lambda: smooth_image(1),
        "small_jpeg_2": lambda: smooth_image(2).resize((48, 48), Image.LANCZOS),
    }
    for name, make in copies.items():
        path = folder / (f"{name}.jpg" if "jpeg" in name else f"{name}.png")
        make().save(path, **({"quality": 70} if path.suffix == ".jpg" else {}))
        split = "val" if name == "jpeg_1" else "train"
        label = "b" if name == "resized_0" else ("c" if name == "small_jpeg_2" else "a")
        ids[name], _ = project.add_image_file(path, label=label, split=split)
    return ids


def _groups(project, features=None):
    frame = project.dataset()
    phash, dhash = project_hashes(project, frame)
    return find_duplicates(frame, phash, dhash, features)


def test_planted_copies_are_found_and_nothing_else(project, planted):
    groups = _groups(project)
    found = sorted(sorted(g.image_ids) for g in groups)
    expected = sorted(sorted([planted[f"orig_{i}"], planted[copy]])
                      for i, copy in ((0, "resized_0"), (1, "jpeg_1"), (2, "small_jpeg_2")))
    assert found == expected
    by_member = {planted[copy]: g for g in groups for copy in ("resized_0", "jpeg_1", "small_jpeg_2")
                 if planted[copy] in g.image_ids}
    assert by_member[planted["jpeg_1"]].leakage and not by_member[planted["resized_0"]].leakage
    assert by_member[planted["small_jpeg_2"]].conflicting_labels  # 'b' original, 'c' copy
    assert not by_member[planted["resized_0"]].conflicting_labels


def test_no_false_groups_among_distinct_images(project, planted):
    frame = project.dataset()
    originals = frame[frame["original_name"].str.startswith("orig_")].reset_index(drop=True)
    phash, dhash = project_hashes(project, originals)
    assert find_duplicates(originals, phash, dhash) == []


def test_leakage_pairs_name_both_splits(project, planted):
    leakage = leakage_pairs(_groups(project))
    assert len(leakage) == 1
    pair = leakage[0]
    assert {pair["a"], pair["b"]} == {planted["orig_1"], planted["jpeg_1"]}
    assert {pair["split_a"], pair["split_b"]} == {"train", "val"}


def test_hashes_are_cached_by_content(project, planted):
    frame = project.dataset()
    phash, _ = project_hashes(project, frame)
    assert (phash < 2).all()
    cache = project.cache_dir / "curate" / "hashes.json"
    stored = json.loads(cache.read_text())
    first = frame["hash"].iloc[0]
    stored[first] = ["ffffffffffffffff", stored[first][1]]  # a value only the cache can return
    cache.write_text(json.dumps(stored))
    assert project_hashes(project, frame)[0][0].tolist() == [1] * 64


def test_resolving_keep_one_excludes_the_others_and_hides_the_group(project, planted):
    groups = _groups(project)
    group = next(g for g in groups if planted["jpeg_1"] in g.image_ids)
    result = resolve_group(project, group.image_ids, planted["orig_1"])
    assert result == {"kept": [planted["orig_1"]], "excluded": [planted["jpeg_1"]]}
    assert planted["jpeg_1"] in decisions.excluded_image_ids(project)
    assert planted["jpeg_1"] in project.dataset()["image_id"].tolist()  # nothing deleted
    assert group not in pending_groups(project, _groups(project))
    assert len(pending_groups(project, _groups(project))) == 2


def test_resolving_keep_all_excludes_nothing(project, planted):
    group = _groups(project)[0]
    result = resolve_group(project, group.image_ids, "all")
    assert result["excluded"] == [] and sorted(result["kept"]) == sorted(group.image_ids)
    assert decisions.excluded_image_ids(project) == set()
    assert len(pending_groups(project, _groups(project))) == 2


def test_resolving_with_a_stranger_is_a_user_error(project, planted):
    group = _groups(project)[0]
    with pytest.raises(StudioError, match="keep must be one of"):
        resolve_group(project, group.image_ids, planted["orig_9"])
    with pytest.raises(StudioError):
        resolve_group(project, group.image_ids[:1], "all")
