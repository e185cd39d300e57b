"""HICO-DET JSON (the PPDM / QPIC format), also used by V-COCO training files and Open Images SGG files.

One JSON list, one record per image::

    {"file_name": "HICO_train2015_00000001.jpg",            # relative to the image root
     "height": 480, "width": 640,                            # optional, together
     "annotations": [{"bbox": [x1, y1, x2, y2], "category_id": 1}, ...],
     "hoi_annotation": [{"subject_id": 0, "object_id": 1, "category_id": 58, "confidence": 0.9}, ...]}

Rules:

* types: ids and indices are JSON integers (``0.9`` and ``true`` are refused, never truncated);
  ``height``/``width`` positive integers, given together;
* ranges: boxes finite with x1 <= x2, y1 <= y2; class ids in [0, MAX_CLASS_ID] and in the vocabulary
  (context ``object_ids`` / ``predicate_ids``); ``confidence`` in [0, 1]; ``subject_id`` / ``object_id``
  index the record's ``annotations`` (V-COCO: ``object_id`` -1 = no object, context
  ``allow_missing_object``);
* uniqueness: ``file_name`` (HICO-DET and V-COCO; Open Images files are not checked);
* paths: ``file_name`` stays under the image root unless context ``allow_outside_root`` is true.

Open Images (:mod:`rlipv2.schemas.oi`) names the relation list ``rel_annotations``.
"""
from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from typing_extensions import NotRequired, Required, TypedDict

from .core import BoxXYXY, ClassId, Confidence, ImagePath, Index, PositiveInt, RecordSchema

__all__ = ["HOIBox", "HOIRelation", "hoi_record_schema", "HICO_SCHEMA", "VCOCO_TRAIN_SCHEMA", "file_name_label"]


class HOIBox(TypedDict):
    bbox: BoxXYXY
    category_id: ClassId


class HOIRelation(TypedDict):
    subject_id: Index
    object_id: Index
    category_id: ClassId
    confidence: NotRequired[Confidence]


def file_name_label(i: int, raw: Any) -> Any:
    """A record is named by its file_name when it has a string one, else by its index."""
    name = raw.get("file_name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) else i


def _vocab_note(ctx: dict, kind: str) -> str:
    src = ctx.get(f"{kind}_vocabulary")
    return f" (vocabulary: {src})" if src else ""


def _check_relations(relation_key: str):
    def check(rec: dict, ctx: dict) -> Iterator[tuple[str, str, str]]:
        if ("height" in rec) != ("width" in rec):
            yield "malformed_record", "height/width", "give both height and width, or neither"
        n = len(rec["annotations"])
        objects, predicates = ctx.get("object_ids"), ctx.get("predicate_ids")
        if objects is not None:
            for k, a in enumerate(rec["annotations"]):
                if a["category_id"] not in objects:
                    yield ("unknown_category", f"annotations[{k}].category_id",
                           f"unknown object category id {a['category_id']}{_vocab_note(ctx, 'object')}")
        missing_ok = bool(ctx.get("allow_missing_object", False))
        for k, r in enumerate(rec.get(relation_key, ())):
            where = f"{relation_key}[{k}]"
            s, o = r["subject_id"], r["object_id"]
            if not 0 <= s < n:
                yield ("relation_index_out_of_range", where + ".subject_id",
                       f"subject index {s} out of range for {n} boxes")
            elif not (0 <= o < n or (missing_ok and o == -1)):
                yield ("relation_index_out_of_range", where + ".object_id",
                       f"object index {o} out of range for {n} boxes" + (" (-1: no object)" if missing_ok else ""))
            elif predicates is not None and r["category_id"] not in predicates:
                yield ("unknown_category", where + ".category_id",
                       f"unknown predicate id {r['category_id']}{_vocab_note(ctx, 'predicate')}")

    return check


@cache
def hoi_record_schema(relation_key: str = "hoi_annotation", unique_file_names: bool = True) -> RecordSchema:
    """The schema of a PPDM/QPIC-format file whose relation list is ``relation_key``."""
    record = TypedDict(f"HOIRecord_{relation_key}", {
        "file_name": Required[ImagePath],
        "height": NotRequired[PositiveInt],
        "width": NotRequired[PositiveInt],
        "annotations": Required[list[HOIBox]],
        relation_key: NotRequired[list[HOIRelation]],
    })
    return RecordSchema(f"{relation_key} JSON", record, checks=(_check_relations(relation_key),),
                        record_label=file_name_label, unique="file_name" if unique_file_names else None)


#: HICO-DET files (trainval_hico.json, test_hico.json and the derived splits).
HICO_SCHEMA = hoi_record_schema("hoi_annotation")
#: V-COCO training files (trainval_vcoco.json): the same, validated with ``allow_missing_object=True``.
VCOCO_TRAIN_SCHEMA = HICO_SCHEMA
