"""Few-shot and zero-shot training sets of HICO-DET-format files, reproducible from the full file.

- Few-shot (1% / 10%): a seeded random subset of the training images.
- Zero-shot (UC-RF, UC-NF, UO, UV): every training image is kept and the annotations of the
  unseen HOI classes are removed (as the official ``trainval_hico_UC-*.json``, RLIP issue #5).
- Rare / non-rare: triplets with fewer than 10 training instances
  (:func:`rlipv2.data.datasets.common.rare_triplets_from_counts`).

The official released split files are used as they are when present (see ``datasets/README.md``).
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Iterable

import numpy as np

from .datasets.common import hico_zero_shot_triplets, load_json

logger = logging.getLogger(__name__)

__all__ = [
    "few_shot_entries",
    "zero_shot_entries",
    "sample_unseen_combinations",
    "split_entries",
    "triplet_counts",
]


def few_shot_entries(entries: list[dict], fraction: float, seed: int = 0) -> list[dict]:
    """A seeded random ``fraction`` of the images of a HICO-format file (at least one), in file order."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n = len(entries)
    k = max(1, int(math.ceil(n * fraction - 1e-9))) if n else 0
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(n, size=k, replace=False)) if k else np.zeros(0, dtype=int)
    return [entries[i] for i in keep]


def zero_shot_entries(
    entries: list[dict], unseen: Iterable[tuple[int, int]], relation_key: str = "hoi_annotation"
) -> list[dict]:
    """Remove the relations of unseen (file verb id, file object category id) pairs; keep every image.

    ``unseen`` pairs use the ids as written in the file (HICO-DET: verb 1..117, COCO-91 object id).
    """
    unseen = {(int(v), int(o)) for v, o in unseen}
    out = []
    for e in entries:
        anns = e.get("annotations", [])
        keep = []
        for r in e.get(relation_key, []):
            o = r.get("object_id", -1)
            ocat = anns[o]["category_id"] if isinstance(o, int) and 0 <= o < len(anns) else None
            if (r.get("category_id"), ocat) not in unseen:
                keep.append(r)
        e2 = copy.copy(e)
        e2[relation_key] = keep
        out.append(e2)
    return out


def triplet_counts(entries: list[dict], relation_key: str = "hoi_annotation") -> dict[tuple[int, int], int]:
    """Instances per (file verb id, file object id) pair in a HICO-format file."""
    counts: dict[tuple[int, int], int] = {}
    for e in entries:
        anns = e.get("annotations", [])
        for r in e.get(relation_key, []):
            o = r.get("object_id", -1)
            if isinstance(o, int) and 0 <= o < len(anns):
                key = (r["category_id"], anns[o]["category_id"])
                counts[key] = counts.get(key, 0) + 1
    return counts


def sample_unseen_combinations(
    entries: list[dict], num_unseen: int, mode: str = "rare_first", seed: int = 0, rare_threshold: int = 10
) -> list[tuple[int, int]]:
    """Choose ``num_unseen`` (file verb id, file object id) combinations to hold out, reproducibly.

    ``rare_first`` draws from the rarest combinations (fewer than ``rare_threshold`` instances
    first), ``non_rare_first`` from the most frequent ones; ties are broken by a seeded shuffle.
    The official UC-RF / UC-NF lists are fixed (``hico_zero_shot_unseen.json``); this builds new
    ones for other datasets (e.g. the synthetic world).
    """
    counts = triplet_counts(entries)
    keys = sorted(counts)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(keys))
    shuffled = [keys[i] for i in order]
    if mode == "rare_first":
        ranked = sorted(shuffled, key=lambda k: counts[k])
    elif mode == "non_rare_first":
        ranked = sorted(shuffled, key=lambda k: -counts[k])
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return ranked[:num_unseen]


def hico_unseen_file_pairs(setting: str) -> list[tuple[int, int]]:
    """Unseen pairs of an official HICO-DET zero-shot setting as (file verb id, COCO-91 object id)."""
    from .datasets.common import hico_object_classes

    obj_ids = hico_object_classes()[1]
    unseen, _ = hico_zero_shot_triplets(setting)
    return [(v + 1, obj_ids[o]) for v, o in unseen]


def split_entries(
    full_json: str,
    kind: str,
    *,
    official_json: str | None = None,
    fraction: float | None = None,
    setting: str | None = None,
    seed: int = 0,
) -> list[dict]:
    """The entries of a derived training set.

    Uses ``official_json`` when it exists, else derives the split from ``full_json``:
    ``kind="few_shot"`` (needs ``fraction``) or ``kind="zero_shot"`` (needs an official ``setting``).
    """
    if official_json and os.path.exists(official_json):
        return load_json(official_json)
    hint = "The full training file is needed to derive this split (or put the official split file beside it)."
    entries = load_json(full_json, hint)
    if kind == "few_shot":
        out = few_shot_entries(entries, float(fraction), seed)
    elif kind == "zero_shot":
        out = zero_shot_entries(entries, hico_unseen_file_pairs(setting))
    else:
        raise ValueError(f"unknown split kind {kind!r}")
    logger.info("Derived %s split of %s (%d images)", kind, full_json, len(out))
    return out
