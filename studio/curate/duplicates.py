"""Near-duplicate images: perceptual hashes and feature similarity, grouped with union-find.

The store already refuses byte-identical files, so what is left are copies that were resized,
re-encoded, lightly edited or mirrored. Two signals, each cheap to compare all-pairs:
- perceptual hashes (pHash and dHash, 64 bits each): a pair whose summed Hamming distance is small is
  a copy even without features;
- backbone features (cosine similarity of the cached flip-averaged embeddings): very high similarity
  catches copies the hashes miss (mirrored, cropped), and a hash match needs only a moderate one.
Pairs are joined into groups (union-find); a group spanning train and validation is leakage: the
validation score then measures memory, not generalisation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd

from studio.curate import decisions
from studio.data.imaging import load_rgb
from studio.data.store import Project
from studio.durable import atomic_write_text
from studio.errors import StudioError

HASH_BITS = 64
# Thresholds measured on the flowers set (bench/curation.py): resized (0.5x-1.7x) and JPEG re-encoded
# (quality 40-50) copies differ by at most 8 pHash + 6 dHash bits (sum <= 14 of 128); the closest two
# distinct photos (burst shots of one scene) by 10 + 14, and no distinct pair reaches cosine 0.94.
HASH_MAX = 18  # pHash + dHash Hamming distance (of 128 bits) for a copy
HASH_PAIR_MIN_COSINE = 0.80  # a hash match must not contradict the features (blank images hash alike)
COSINE_ALONE = 0.96  # similar enough to be the same photo whatever the hashes say (mirrored, cropped)


@dataclass
class DuplicateGroup:
    """Images that are copies of each other. `leakage`: the group spans more than one split."""

    image_ids: list[int]
    labels: list[str | None]
    splits: list[str | None]
    pairs: list[dict] = field(default_factory=list)  # {a, b, phash, dhash, cosine}

    @property
    def leakage(self) -> bool:
        return len({s for s in self.splits if s is not None}) > 1

    @property
    def conflicting_labels(self) -> bool:
        return len({label for label in self.labels if label is not None}) > 1

    def to_dict(self) -> dict:
        return {**asdict(self), "leakage": self.leakage, "conflicting_labels": self.conflicting_labels}


# ---- perceptual hashes ---------------------------------------------------------------------------

def image_hashes(path: str | os.PathLike) -> tuple[str, str]:
    """(pHash, dHash) of an image file as hex strings."""
    image = load_rgb(path, draft_size=64)  # both hashes shrink to 32 px or less: decode small
    return str(imagehash.phash(image)), str(imagehash.dhash(image))


def project_hashes(project: Project, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """pHash and dHash bits (N x 64 uint8 each) for the rows of a `project.dataset()` frame.

    Cached by content hash in `cache/curate/hashes.json` (safe to delete).
    """
    cache_path = Path(project.cache_dir) / "curate" / "hashes.json"
    try:
        cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    except (OSError, ValueError):
        cache = {}
    changed = False
    for digest, path in zip(frame["hash"], frame["path"]):
        if digest not in cache:
            try:
                cache[digest] = list(image_hashes(path))
            except StudioError:
                cache[digest] = None  # undecodable now: never a duplicate of anything
            changed = True
    if changed:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache_path, json.dumps(cache))
    pairs = [cache[d] for d in frame["hash"]]
    return _bits([p[0] if p else None for p in pairs]), _bits([p[1] if p else None for p in pairs])


def _bits(hex_hashes: Sequence[str | None]) -> np.ndarray:
    """Hex hashes -> N x 64 uint8 bit rows; a missing hash becomes all 2s (matches nothing)."""
    rows = np.full((len(hex_hashes), HASH_BITS), 2, dtype=np.uint8)
    for i, text in enumerate(hex_hashes):
        if text:
            rows[i] = imagehash.hex_to_hash(text).hash.flatten().astype(np.uint8)
    return rows


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All-pairs Hamming distances between bit rows (N x 64 and M x 64) as N x M int."""
    a_valid, b_valid = (a < 2).all(1), (b < 2).all(1)
    af, bf = np.minimum(a, 1).astype(np.float32), np.minimum(b, 1).astype(np.float32)
    distance = af @ (1 - bf).T + (1 - af) @ bf.T  # bits set in one and not the other
    distance[~a_valid] = HASH_BITS + 1
    distance[:, ~b_valid] = HASH_BITS + 1
    return np.rint(distance).astype(np.int32)


# ---- pairs and groups ----------------------------------------------------------------------------

def _normalize(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def find_pairs(
    phash: np.ndarray,
    dhash: np.ndarray,
    features: np.ndarray | None = None,
    *,
    hash_max: int = HASH_MAX,
    hash_pair_min_cosine: float = HASH_PAIR_MIN_COSINE,
    cosine_alone: float = COSINE_ALONE,
    chunk: int = 1024,
) -> list[dict]:
    """Duplicate pairs (row indices a < b) with their evidence: pHash/dHash distances and cosine."""
    n = len(phash)
    unit = _normalize(features) if features is not None else None
    pairs = []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        dp = hamming_matrix(phash[start:stop], phash)
        dd = hamming_matrix(dhash[start:stop], dhash)
        hash_match = dp + dd <= hash_max
        if unit is not None:
            cosine = unit[start:stop] @ unit.T
            match = (hash_match & (cosine >= hash_pair_min_cosine)) | (cosine >= cosine_alone)
        else:
            cosine = None
            match = hash_match
        rows, cols = np.nonzero(match)
        for r, c in zip(rows, cols):
            a = start + int(r)
            if a < int(c):
                pairs.append({"a": a, "b": int(c), "phash": int(dp[r, c]), "dhash": int(dd[r, c]),
                              "cosine": None if cosine is None else round(float(cosine[r, c]), 4)})
    return pairs


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]  # path halving
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def group_pairs(n: int, pairs: Sequence[dict]) -> list[list[int]]:
    """Connected components (of size >= 2) of the pair graph, as sorted row-index lists."""
    forest = _UnionFind(n)
    for pair in pairs:
        forest.union(pair["a"], pair["b"])
    groups: dict[int, set[int]] = {}
    for pair in pairs:
        root = forest.find(pair["a"])
        groups.setdefault(root, set()).update((pair["a"], pair["b"]))
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def find_duplicates(frame: pd.DataFrame, phash: np.ndarray, dhash: np.ndarray,
                    features: np.ndarray | None = None, **thresholds) -> list[DuplicateGroup]:
    """Duplicate groups among the rows of `frame` (columns image_id, label, split), largest first."""
    pairs = find_pairs(phash, dhash, features, **thresholds)
    ids = frame["image_id"].to_numpy()
    labels, splits = frame["label"].tolist(), frame["split"].tolist()
    by_group: dict[int, list[dict]] = {}
    groups = group_pairs(len(frame), pairs)
    row_group = {row: g for g, rows in enumerate(groups) for row in rows}
    for pair in pairs:
        by_group.setdefault(row_group[pair["a"]], []).append(
            {**pair, "a": int(ids[pair["a"]]), "b": int(ids[pair["b"]])})
    result = [
        DuplicateGroup([int(ids[r]) for r in rows], [labels[r] for r in rows], [splits[r] for r in rows],
                       by_group[g])
        for g, rows in enumerate(groups)
    ]
    return sorted(result, key=lambda group: (-len(group.image_ids), group.image_ids[0]))


def leakage_pairs(groups: Sequence[DuplicateGroup]) -> list[dict]:
    """Every pair of copies that sit in different splits: {a, b, split_a, split_b, label_a, label_b}."""
    found = []
    for group in groups:
        members = list(zip(group.image_ids, group.splits, group.labels))
        for (a, split_a, label_a), (b, split_b, label_b) in combinations(members, 2):
            if split_a is not None and split_b is not None and split_a != split_b:
                found.append({"a": a, "b": b, "split_a": split_a, "split_b": split_b,
                              "label_a": label_a, "label_b": label_b})
    return found


def pending_groups(project: Project, groups: Sequence[DuplicateGroup]) -> list[DuplicateGroup]:
    """Groups with at least one member the expert has not decided on yet."""
    decided = decisions.decided_ids(project, "duplicate")
    return [g for g in groups if not set(g.image_ids) <= decided]


def resolve_group(project: Project, image_ids: Sequence[int], keep: int | str | None, *,
                  by: str = "user") -> dict:
    """Resolve a duplicate group in one action (one transaction).

    `keep`: the image id to keep (the others are excluded from training, files and labels untouched),
    or "all" to keep every copy (they are then not reported again). Returns {kept, excluded}.
    """
    ids = [int(i) for i in dict.fromkeys(image_ids)]
    if len(ids) < 2:
        raise StudioError("a duplicate group needs at least two images")
    if keep == "all":
        kept = ids
    elif isinstance(keep, (int, np.integer)) and int(keep) in ids:
        kept = [int(keep)]
    else:
        raise StudioError(f"keep must be one of the group's images ({', '.join(map(str, ids))}) or 'all'")
    excluded = [i for i in ids if i not in kept]
    outcomes = [(i, "kept") for i in kept] + [(i, "excluded") for i in excluded]
    decisions.record_many(project, outcomes, "duplicate", by=by, detail={"group": ids})
    return {"kept": kept, "excluded": excluded}
