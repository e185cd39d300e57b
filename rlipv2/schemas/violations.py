"""A catalogue of valid records and of one-rule violations for every record schema.

Used by the property tests (``tests/test_bad_inputs.py``: hypothesis draws valid files and breaks exactly
one rule, which must be refused with the field named) and by the probe corpus
(``tools/probe_bad_inputs.py``). Each :class:`Violation` mutates a valid file (a list of records) in
place and returns the index of the broken record and the field its problem must name.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .coco import COCO_ANNOTATION_SCHEMA, COCO_CATEGORY_SCHEMA, COCO_IMAGE_SCHEMA
from .core import MAX_CLASS_ID, RecordSchema
from .hico import HICO_SCHEMA
from .oi import OI_SCHEMA
from .predictions import TRIPLET_JSON_SCHEMA
from .vcoco import VCOCO_ACTION_SCHEMA
from .vg import VG_SCHEMA

__all__ = ["Violation", "SCHEMAS", "VIOLATIONS", "valid_records"]

HICO_OBJECTS = (1, 18, 37, 90)
NAN, INF = float("nan"), float("inf")


def _box(rng: random.Random) -> list[float]:
    x, y = rng.uniform(0, 50), rng.uniform(0, 40)
    return [round(x, 2), round(y, 2), round(x + rng.uniform(0, 14), 2), round(y + rng.uniform(0, 8), 2)]


def _hoi_record(rng: random.Random, i: int, key: str, objects, n_pred: int, first_pred: int) -> dict:
    n = rng.randint(1, 4)
    rec = {"file_name": f"img_{i:05d}.jpg",
           "annotations": [{"bbox": _box(rng), "category_id": rng.choice(objects)} for _ in range(n)],
           key: [{"subject_id": rng.randrange(n), "object_id": rng.randrange(n),
                  "category_id": first_pred + rng.randrange(n_pred)} for _ in range(rng.randint(0, 3))]}
    if rng.random() < 0.5:
        rec["height"], rec["width"] = 48, 64
    for r in rec[key]:
        if rng.random() < 0.3:
            r["confidence"] = round(rng.random(), 3)
    return rec


def _vg_record(rng: random.Random, i: int) -> dict:
    n = rng.randint(1, 4)
    objs = [{"object_id": 100 * i + k, "x": rng.uniform(0, 30), "y": rng.uniform(0, 30), "w": rng.uniform(0, 20),
             "h": rng.uniform(0, 10), "names": rng.choice(["man", "horse", ["tennis racket"], "red car"])}
            for k in range(n)]
    rels = [{"subject_id": rng.choice(objs)["object_id"], "object_id": rng.choice(objs)["object_id"],
             "predicate": rng.choice(["riding", "next to", "on top of"])} for _ in range(rng.randint(0, 3))]
    rec = {"image_id": i, "objects": objs, "relationships": rels}
    if rng.random() < 0.5:
        rels and rels[0].__setitem__("confidence", round(rng.random(), 3))
    return rec


def _prediction_record(rng: random.Random, i: int) -> dict:
    n = rng.randint(1, 4)
    return {"file_name": f"img_{i:05d}.jpg",
            "predictions": [{"bbox": _box(rng), "category_id": rng.choice(HICO_OBJECTS)} for _ in range(n)],
            "hoi_prediction": [{"subject_id": rng.randrange(n), "object_id": rng.randrange(n),
                                "category_id": rng.randint(1, 117), "score": round(rng.random(), 4)}
                               for _ in range(rng.randint(0, 3))]}


def _vcoco_action(rng: random.Random, i: int) -> dict:
    n, roles = rng.randint(1, 4), rng.choice([["agent"], ["agent", "obj"], ["agent", "instr", "obj"]])
    return {"action_name": f"action{i}", "role_name": roles, "ann_id": [rng.randint(1, 999) for _ in range(n)],
            "label": [rng.randint(0, 1) for _ in range(n)], "image_id": [rng.randint(1, 99) for _ in range(n)],
            "role_object_id": [rng.randint(0, 999) for _ in range(n * len(roles))]}


#: schema name -> (schema, validation context, record maker (rng, index) -> record)
SCHEMAS: dict[str, tuple[RecordSchema, dict, Callable[[random.Random, int], dict]]] = {
    "hico": (HICO_SCHEMA, {"object_ids": set(HICO_OBJECTS), "predicate_ids": range(1, 118)},
             lambda rng, i: _hoi_record(rng, i, "hoi_annotation", HICO_OBJECTS, 117, 1)),
    "oi": (OI_SCHEMA, {"object_ids": set(range(5)), "predicate_ids": range(30)},
           lambda rng, i: _hoi_record(rng, i, "rel_annotations", range(5), 30, 0)),
    "vg": (VG_SCHEMA, {}, _vg_record),
    "coco_images": (COCO_IMAGE_SCHEMA, {}, lambda rng, i: {"id": i, "file_name": f"{i:012d}.jpg",
                                                           "height": rng.randint(1, 900),
                                                           "width": rng.randint(1, 900)}),
    "coco_categories": (COCO_CATEGORY_SCHEMA, {}, lambda rng, i: {"id": i + 1, "name": f"thing {i}"}),
    "coco_annotations": (COCO_ANNOTATION_SCHEMA, {},
                         lambda rng, i: {"image_id": rng.randint(1, 9), "bbox": _box(rng), "category_id": 1,
                                         "iscrowd": rng.choice([0, 1]), "id": i}),
    "vcoco_actions": (VCOCO_ACTION_SCHEMA, {}, _vcoco_action),
    "predictions": (TRIPLET_JSON_SCHEMA, {}, _prediction_record),
}


def valid_records(schema: str, rng: random.Random, n: int | None = None) -> list[dict]:
    """A valid file (list of records) of ``schema``."""
    make = SCHEMAS[schema][2]
    return [make(rng, i) for i in range(rng.randint(2, 4) if n is None else n)]


@dataclass(frozen=True)
class Violation:
    """One rule of one schema, broken: ``apply(records, rng)`` -> (record index, field named)."""

    schema: str
    rule: str
    apply: Callable[[list[dict], random.Random], tuple[int, str]]


def _set_in_list(key: str, sub: str | None, values, make_item=None):
    """Set ``records[i][key][k][sub]`` (or the item itself when ``sub`` is None) to one of ``values``."""
    def apply(records, rng):
        i = rng.randrange(len(records))
        items = records[i].setdefault(key, [])
        if not items:
            items.append(make_item(records[i]) if make_item else {})
        k = rng.randrange(len(items))
        v = rng.choice(values)
        if sub is None:
            items[k] = v
        else:
            items[k][sub] = v(items[k], records[i]) if callable(v) else v
        return i, f"{key}[{k}]" + (f".{sub}" if sub else "")
    return apply


def _set_field(field: str, values):
    def apply(records, rng):
        i = rng.randrange(len(records))
        v = rng.choice(values)
        records[i][field] = v(records[i]) if callable(v) else v
        return i, field
    return apply


def _duplicate(field: str):
    def apply(records, rng):
        records[1][field] = records[0][field]
        return 1, field
    return apply


def _inverted(item, rec):
    x1, y1, x2, y2 = item["bbox"]
    return [x1 + 5, y1, x1, y2]


def _hoi_violations(schema: str, key: str, n_boxes_bad, bad_object, bad_predicate) -> list[Violation]:
    def rel_item(rec):
        return {"subject_id": 0, "object_id": 0, "category_id": bad_predicate[1]}

    def rel(sub, values):
        return _set_in_list(key, sub, values, rel_item)

    def index_out(item, rec):
        return len(rec["annotations"]) + 3

    v = [
        ("box with NaN or inf",
         _set_in_list("annotations", "bbox", [[1, 2, NAN, 4], [INF, 0, 3, 4], [0, 0, 3, -INF]])),
        ("box inverted (x2 < x1)", _set_in_list("annotations", "bbox", [_inverted])),
        ("box not 4 numbers",
         _set_in_list("annotations", "bbox", [[1, 2, 3], "box", None, [1, 2, "3", 4], [True, 0, 1, 1]])),
        ("class id not an integer", _set_in_list("annotations", "category_id", [1.5, 1.0, "1", True, None, [1]])),
        ("class id outside the vocabulary", _set_in_list("annotations", "category_id", [bad_object])),
        ("class id outside [0, MAX_CLASS_ID]",
         _set_in_list("annotations", "category_id", [300_000_000, MAX_CLASS_ID + 1, -4])),
        ("subject index not an integer", rel("subject_id", [0.9, "0", True, None])),
        ("subject index outside the boxes", rel("subject_id", [index_out, -1])),
        ("object index outside the boxes", rel("object_id", [index_out] + n_boxes_bad)),
        ("predicate id outside the vocabulary", rel("category_id", [bad_predicate[0]])),
        ("confidence outside [0, 1]", rel("confidence", [1.5, -0.1, NAN, INF, "high"])),
        ("image path escapes the root",
         _set_field("file_name", ["/etc/passwd", "../up.jpg", "a/../../b.jpg", "C:\\x.jpg"])),
        ("file_name not a string", _set_field("file_name", [3, None, ["a.jpg"], ""])),
        ("height not a positive integer", _set_field("height", [0, -48, 48.5, "48", True, NAN])),
        ("annotations not a list", _set_field("annotations", [None, {"bbox": [0, 0, 1, 1]}, "boxes"])),
    ]
    out = [Violation(schema, rule, fn) for rule, fn in v]
    if schema == "hico":
        out.append(Violation(schema, "duplicate file_name", _duplicate("file_name")))
    return out


def _vg_violations() -> list[Violation]:
    def rel_item(rec):
        oid = rec["objects"][0].get("object_id", 0)
        return {"subject_id": oid, "object_id": oid, "predicate": "on"}

    def rel(sub, values):
        return _set_in_list("relationships", sub, values, rel_item)

    return [Violation("vg", rule, fn) for rule, fn in [
        ("image_id not an int or a string", _set_field("image_id", [1.5, True, None, [7]])),
        ("object coordinate not finite", _set_in_list("objects", "x", [NAN, INF, "3", None])),
        ("negative width", _set_in_list("objects", "w", [-20, -0.5])),
        ("negative height", _set_in_list("objects", "h", [-1])),
        ("object label missing or empty", _set_in_list("objects", "names", ["", [], [3], None, 5])),
        ("object_id not an int or a string", _set_in_list("objects", "object_id", [1.5, True, None])),
        ("subject not among the objects", rel("subject_id", [987654, "nope"])),
        ("object not among the objects", rel("object_id", [987654])),
        ("predicate not a label", rel("predicate", ["", None, 3])),
        ("confidence outside [0, 1]", rel("confidence", [2.0, -1.0, NAN])),
        ("image path escapes the root", _set_field("file_name", ["/abs/1.jpg", "../1.jpg"])),
        ("duplicate image_id", _duplicate("image_id")),
    ]]


def _coco_violations() -> list[Violation]:
    return [Violation(schema, rule, fn) for schema, rule, fn in [
        ("coco_images", "image id not an int or a string", _set_field("id", [1.5, None, True])),
        ("coco_images", "image path escapes the root", _set_field("file_name", ["/x.jpg", "../x.jpg"])),
        ("coco_images", "size not a positive integer", _set_field("height", [0, -3, 2.5, "640"])),
        ("coco_images", "duplicate image id", _duplicate("id")),
        ("coco_categories", "category id not an integer", _set_field("id", [1.5, "1", None])),
        ("coco_categories", "empty category name", _set_field("name", ["", None, 3])),
        ("coco_categories", "duplicate category id", _duplicate("id")),
        ("coco_annotations", "box with NaN", _set_field("bbox", [[NAN, 1, 2, 3], [0, 0, INF, 1], [1, 2, 3]])),
        ("coco_annotations", "category id not an integer", _set_field("category_id", [1.5, None, "1"])),
        ("coco_annotations", "iscrowd not 0/1", _set_field("iscrowd", [2, 0.5, "yes"])),
        ("coco_annotations", "score outside [0, 1]", _set_field("score", [1.5, NAN])),
        ("vcoco_actions", "ann_id not integers", _set_field("ann_id", [[1.5], "x", None, [True]])),
        ("vcoco_actions", "label length differs", lambda recs, rng: (
            recs[0].__setitem__("label", recs[0]["label"] + [1]) or (0, "label"))),
        ("vcoco_actions", "role_name not starting with agent", _set_field("role_name", [["obj"], []])),
        ("vcoco_actions", "role_object_id length", lambda recs, rng: (
            recs[0].__setitem__("role_object_id", recs[0]["role_object_id"] + [0]) or (0, "role_object_id"))),
        ("predictions", "score outside [0, 1]", _set_in_list("hoi_prediction", "score", [1.5, NAN, -0.1],
                                                               lambda r: {"subject_id": 0, "object_id": 0,
                                                                          "category_id": 1})),
        ("predictions", "subject index outside the boxes",
         _set_in_list("hoi_prediction", "subject_id", [lambda it, rec: len(rec.get("predictions", [])) + 1, 0.9],
                      lambda r: {"subject_id": 0, "object_id": 0, "category_id": 1, "score": 0.5})),
        ("predictions", "box inverted", _set_in_list("predictions", "bbox", [_inverted])),
    ]]


#: Every violation of every schema.
VIOLATIONS: list[Violation] = (
    _hoi_violations("hico", "hoi_annotation", [0.5], 12, (500, 1))
    + _hoi_violations("oi", "rel_annotations", [-1], 7, (30, 0))
    + _vg_violations()
    + _coco_violations()
)
