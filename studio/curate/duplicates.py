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
from sklearn.preprocessing import normalize

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
    return normalize(np.asarray(features, dtype=np.float32))


def find_pairs(
    phash: np.ndarray,
    dhash: np.ndarray,
    features: np.ndarray | None = None,
    *,
    hash_max: int = HASH_MAX,
    hash_pair_min_cosine: float = HASH_PAIR_MIN_COSINE,
    cosine_alone: float = COSINE_ALONE,
    chunk: int = 256,
) -> list[dict]:
    """Duplicate pairs (row indices a < b) with their evidence: pHash/dHash distances and cosine.

    A pair is a copy when its hashes are within `hash_max` and its cosine at least
    `hash_pair_min_cosine`, or its cosine alone reaches `cosine_alone`. So with features every pair has
    at least the smaller of the two cosines: the candidates are the pairs above it (float32 products over
    the upper triangle, a chunk of rows at a time), and only they get their hashes compared. Without
    features the candidates are the hash pairs, compared as packed 64-bit words (XOR + popcount) a chunk
    of rows at a time. Exact: the same pairs as the all-pairs definition (tests compare them).
    """
    n = len(phash)
    if n < 2:
        return []
    packed = _pack(phash, dhash)
    if features is None:
        a, b = _hash_candidates(packed, hash_max, chunk)
        cosine = None
    else:
        unit = _normalize(features)
        a, b = _cosine_candidates(unit, min(hash_pair_min_cosine, cosine_alone))
        cosine = np.einsum("ij,ij->i", unit[a], unit[b])
    dp, dd = _pair_distances(packed, a, b)
    match = dp + dd <= hash_max
    if cosine is not None:
        match = (match & (cosine >= hash_pair_min_cosine)) | (cosine >= cosine_alone)
    order = np.lexsort((b[match], a[match]))  # row-major, as the all-pairs scan listed them
    keep = np.flatnonzero(match)[order]
    return [{"a": int(a[i]), "b": int(b[i]), "phash": int(dp[i]), "dhash": int(dd[i]),
             "cosine": None if cosine is None else round(float(cosine[i]), 4)} for i in keep]


def _pack(phash: np.ndarray, dhash: np.ndarray) -> np.ndarray:
    """N x 2 uint64 words (pHash, dHash); a row with a missing hash (2s) gets a validity flag of 0."""
    valid = (phash < 2).all(1) & (dhash < 2).all(1)
    words = np.stack([np.packbits(np.minimum(h, 1).astype(np.uint8), axis=1).view(">u8")[:, 0]
                      for h in (phash, dhash)], axis=1).astype(np.uint64)
    return np.concatenate([words, valid[:, None].astype(np.uint64)], axis=1)


def _pair_distances(packed: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pHash and dHash Hamming distances of the pairs (a[i], b[i]); HASH_BITS + 1 where a hash is missing."""
    both = (packed[a, 2] & packed[b, 2]).astype(bool)
    distances = [np.where(both, np.bitwise_count(packed[a, k] ^ packed[b, k]).astype(np.int32), HASH_BITS + 1)
                 for k in (0, 1)]
    return distances[0], distances[1]


def _hash_candidates(packed: np.ndarray, hash_max: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs a < b whose summed pHash + dHash distance is at most `hash_max`."""
    found_a, found_b = [], []
    for start in range(0, len(packed), chunk):
        block = packed[start:start + chunk]
        distance = (np.bitwise_count(block[:, None, 0] ^ packed[None, :, 0]).astype(np.int16)
                    + np.bitwise_count(block[:, None, 1] ^ packed[None, :, 1]))
        distance[~block[:, 2].astype(bool)] = 2 * HASH_BITS
        distance[:, ~packed[:, 2].astype(bool)] = 2 * HASH_BITS
        rows, cols = np.nonzero(distance <= hash_max)
        rows = rows + start
        upper = rows < cols
        found_a.append(rows[upper])
        found_b.append(cols[upper])
    return np.concatenate(found_a), np.concatenate(found_b)


def _cosine_candidates(
    unit: np.ndarray, min_cosine: float, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs a < b of unit vectors with cosine >= min_cosine: float32 BLAS products of each chunk of
    rows with the rows after it only (half of all pairs; memory bounded by the chunk)."""
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    found_a, found_b = [], []
    for start in range(0, len(unit), chunk):
        block = unit[start:start + chunk] @ unit[start:].T
        rows, cols = np.nonzero(block >= min_cosine - 1e-6)
        upper = rows < cols
        found_a.append(rows[upper] + start)
        found_b.append(cols[upper] + start)
    return np.concatenate(found_a).astype(np.int64), np.concatenate(found_b).astype(np.int64)


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
