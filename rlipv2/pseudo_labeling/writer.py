"""Stage 5: writing the tagged relations as a Visual-Genome-style pre-training file, and its summary.

One dict per image (RLIPv2 design §3.2 step 5)::

    {"image_id": 139, "dataset": "coco2017", "data_split": "train2017",   # data_split only when given
     "objects": [{"object_id": 10000000, "x": 10.0, "y": 20.0, "w": 30.0, "h": 40.0, "names": "person"}, ...],
     "relationships": [{"relationship_id": 10000000, "predicate": "riding", "subject_id": 10000000,
                        "object_id": 10000001, "confidence": 0.83}, ...],
     "file_name": "000000000139.jpg", "width": 640, "height": 426}        # additions, see below

``x, y, w, h`` are absolute pixels with (x, y) the top-left corner; ``names`` is the object's label text;
``predicate`` the free-form relation text; ``confidence`` the tagger's score (the pre-training loaders keep
relations with confidence >= 0.2 by default). Object and relationship ids are global counters that start
at 10,000,000, as in the official files; shard files number locally and :func:`merge_shards` renumbers
them in shard order. ``file_name``/``width``/``height`` are additions (not in the official files) so that
a loader can find the images of any COCO-format dataset.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Iterable, Sequence

from rlipv2.utils.file_io import atomic_open

from .detection import ImageRecord

__all__ = ["START_ID", "PRETRAIN_THRESHOLD", "build_vg_entry", "merge_shards", "summarize", "format_summary"]

START_ID = 10_000_000
PRETRAIN_THRESHOLD = 0.2


def build_vg_entry(
    record: ImageRecord,
    object_names: Sequence[str],
    relations: Sequence[Sequence],
    dataset: str,
    data_split: str | None,
    next_object_id: int,
    next_relationship_id: int,
) -> tuple[dict, int, int]:
    """Build the VG-style dict of one image.

    Args:
        record: the image and its kept boxes ([x, y, w, h]).
        object_names: label text of each box, aligned with ``record.boxes``.
        relations: ``[subject box index, object box index, predicate, confidence]``.
        next_object_id / next_relationship_id: the first ids to use.
    Returns:
        the dict and the next free object / relationship ids.
    """
    entry = {"image_id": record.image_id, "dataset": dataset}
    if data_split:
        entry["data_split"] = data_split
    objects = []
    for (x, y, w, h), name in zip(record.boxes, object_names):
        objects.append({"object_id": next_object_id, "x": float(x), "y": float(y), "w": float(w), "h": float(h),
                        "names": name})
        next_object_id += 1
    rels = []
    for s, o, predicate, conf in relations:
        rels.append({"relationship_id": next_relationship_id, "predicate": predicate,
                     "subject_id": objects[s]["object_id"], "object_id": objects[o]["object_id"],
                     "confidence": float(conf)})
        next_relationship_id += 1
    entry["objects"] = objects
    entry["relationships"] = rels
    entry["file_name"] = record.file_name
    entry["width"] = record.width
    entry["height"] = record.height
    return entry, next_object_id, next_relationship_id


def _renumber(entry: dict, next_obj: int, next_rel: int) -> tuple[int, int]:
    id_map = {}
    for ob in entry["objects"]:
        id_map[ob["object_id"]] = next_obj
        ob["object_id"] = next_obj
        next_obj += 1
    for r in entry["relationships"]:
        r["relationship_id"] = next_rel
        r["subject_id"] = id_map[r["subject_id"]]
        r["object_id"] = id_map[r["object_id"]]
        next_rel += 1
    return next_obj, next_rel


def merge_shards(
    shard_entries: Iterable[list[dict]],
    output_path: str,
    start_object_id: int = START_ID,
    start_relationship_id: int = START_ID,
) -> dict:
    """Concatenate per-shard entry lists into one JSON list, renumbering ids globally; write atomically.

    The list is streamed to a temporary file in the output directory and moved into place, so a crash
    never leaves a truncated final file; NaN or inf anywhere stops the merge with an error (standard JSON
    only). Returns the summary statistics (see :func:`summarize`).
    """
    stats = _Stats()
    next_obj, next_rel = start_object_id, start_relationship_id
    with atomic_open(output_path, "w") as f:
        f.write("[")
        first = True
        for entries in shard_entries:
            for e in entries:
                next_obj, next_rel = _renumber(e, next_obj, next_rel)
                stats.add(e)
                try:  # standard JSON only: a NaN here is a bug upstream, never a file other readers reject
                    text = json.dumps(e, ensure_ascii=False, allow_nan=False)
                except ValueError as err:
                    raise ValueError(f"{output_path}: not written: image {e.get('image_id')!r} has a NaN or inf "
                                     f"value ({err})") from None
                f.write(("" if first else ",\n") + text)
                first = False
        f.write("]\n")
    return stats.result()


class _Stats:
    def __init__(self, top_k: int = 20):
        self.top_k = top_k
        self.images = self.with_rel = self.with_rel_thr = 0
        self.rels = self.rels_thr = self.objects = 0
        self.pred = Counter()
        self.pred_thr = Counter()
        self.obj_names = Counter()

    def add(self, e: dict) -> None:
        self.images += 1
        self.objects += len(e["objects"])
        self.obj_names.update(o["names"] for o in e["objects"])
        n_thr = 0
        for r in e["relationships"]:
            self.pred[r["predicate"]] += 1
            if r.get("confidence", 1.0) >= PRETRAIN_THRESHOLD:
                self.pred_thr[r["predicate"]] += 1
                n_thr += 1
        self.rels += len(e["relationships"])
        self.rels_thr += n_thr
        self.with_rel += bool(e["relationships"])
        self.with_rel_thr += bool(n_thr)

    def result(self) -> dict:
        return {
            "images": self.images,
            "objects": self.objects,
            "object_vocabulary_size": len(self.obj_names),
            "relations": self.rels,
            "images_with_relations": self.with_rel,
            "relations_per_image": self.rels / max(1, self.images),
            "relations_per_image_with_relations": self.rels / max(1, self.with_rel),
            "predicate_vocabulary_size": len(self.pred),
            "top_predicates": self.pred.most_common(self.top_k),
            f"relations_conf_ge_{PRETRAIN_THRESHOLD}": self.rels_thr,
            f"images_with_relations_conf_ge_{PRETRAIN_THRESHOLD}": self.with_rel_thr,
            f"relations_per_image_conf_ge_{PRETRAIN_THRESHOLD}": self.rels_thr / max(1, self.images),
            f"predicate_vocabulary_size_conf_ge_{PRETRAIN_THRESHOLD}": len(self.pred_thr),
            f"top_predicates_conf_ge_{PRETRAIN_THRESHOLD}": self.pred_thr.most_common(self.top_k),
        }


def summarize(entries: Iterable[dict], top_k: int = 20) -> dict:
    """Statistics of a list of VG-style entries: relations per image, vocabulary sizes, top predicates."""
    s = _Stats(top_k)
    for e in entries:
        s.add(e)
    return s.result()


def format_summary(summary: dict) -> str:
    """Human-readable summary lines."""
    out = ["Pseudo-label summary"]
    out_stats = summary.get("output", {})
    for k, v in out_stats.items():
        if k.startswith("top_predicates"):
            v = ", ".join(f"{p} ({n})" for p, n in v[:10])
        elif isinstance(v, float):
            v = f"{v:.3f}"
        out.append(f"  {k}: {v}")
    for k, v in summary.get("stages", {}).items():
        out.append(f"  {k}: {v}")
    issues = summary.get("issues", {})
    out.append("  bad input / dropped: " + (", ".join(f"{k}={v}" for k, v in sorted(issues.items())) or "none"))
    return "\n".join(out)
