"""Visual Genome JSON: scene graphs (``scene_graphs_preprocessv1.json``) and relational pseudo labels.

One JSON list, one record per image::

    {"image_id": 1, "file_name": "1.jpg", "height": 600, "width": 800,      # file_name, sizes: optional
     "objects": [{"object_id": 10, "x": 5, "y": 8, "w": 30, "h": 40, "names": "man"}, ...],
     "relationships": [{"relationship_id": 5, "predicate": "riding", "subject_id": 10, "object_id": 11,
                        "confidence": 0.8}, ...]}                           # confidence: pseudo labels

Rules:

* types: ``image_id`` / ``object_id`` / ``subject_id`` are integers or strings (``0.9`` and ``true`` are
  refused); ``x, y, w, h`` finite numbers; ``names`` / ``name`` / ``predicate`` a non-empty label or a
  list whose first entry is one; ``height``/``width`` positive integers, given together;
* ranges: ``w >= 0`` and ``h >= 0``; ``confidence`` in [0, 1]; ``subject_id`` / ``object_id`` name an
  object of the same image (``object_id`` defaults to the object's position);
* uniqueness: ``image_id``;
* paths: ``file_name`` stays under the image root unless context ``allow_outside_root`` is true.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import PlainValidator
from typing_extensions import NotRequired, TypedDict

from .core import Confidence, FiniteFloat, ImagePath, PositiveInt, RecordSchema, custom_error, short_repr

__all__ = ["VGObject", "VGRelationship", "VG_SCHEMA", "object_ref", "label_text", "box_side"]


def object_ref(value: Any) -> int | str:
    """An image or object id: an integer or a string (pydantic validator)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise custom_error("malformed_record", f"must be an int or a string id, got {short_repr(value)}")
    return value


def label_text(value: Any) -> str:
    """A label: a non-empty string, or a list whose first entry is one (VG ``names``)."""
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, str) or not value.strip():
        raise custom_error("malformed_record", f"must be a non-empty label text, got {short_repr(value)}")
    return value


def box_side(value: Any) -> float:
    """A box width or height: a finite number >= 0 (pydantic validator)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise custom_error("malformed_box", f"must be a number, got {short_repr(value)}")
    if not math.isfinite(value):
        raise custom_error("malformed_box", f"must be a finite number, got {short_repr(value)}")
    if value < 0:
        raise custom_error("inverted_box", f"must be >= 0 (the box would have x2 < x1 or y2 < y1), got {value!r}")
    return float(value)


RefId = Annotated[Any, PlainValidator(object_ref)]
Label = Annotated[Any, PlainValidator(label_text)]
Size = Annotated[Any, PlainValidator(box_side)]


class VGObject(TypedDict):
    x: FiniteFloat
    y: FiniteFloat
    w: Size
    h: Size
    object_id: NotRequired[RefId]
    names: NotRequired[Label]
    name: NotRequired[Label]


class VGRelationship(TypedDict):
    subject_id: RefId
    object_id: RefId
    predicate: Label
    confidence: NotRequired[Confidence]


class VGRecord(TypedDict):
    image_id: RefId
    file_name: NotRequired[ImagePath]
    height: NotRequired[PositiveInt]
    width: NotRequired[PositiveInt]
    objects: list[VGObject]
    relationships: NotRequired[list[VGRelationship]]


def _label(i: int, raw: Any) -> Any:
    image = raw.get("image_id") if isinstance(raw, dict) else None
    return image if isinstance(image, (int, str)) and not isinstance(image, bool) else i


def _check(rec: dict, ctx: dict) -> Iterator[tuple[str, str, str]]:
    if ("height" in rec) != ("width" in rec):
        yield "malformed_record", "height/width", "give both height and width, or neither"
    ids = set()
    for k, o in enumerate(rec["objects"]):
        if "names" not in o and "name" not in o:
            yield "malformed_record", f"objects[{k}].names", "missing required field"
        ids.add(o.get("object_id", k))
    for k, r in enumerate(rec.get("relationships", ())):
        for f in ("subject_id", "object_id"):
            if r[f] not in ids:
                yield ("relation_index_out_of_range", f"relationships[{k}].{f}",
                       f"object id {r[f]!r} is not among the image's objects")
                break


#: Visual Genome scene graphs and pseudo-label files.
VG_SCHEMA = RecordSchema("Visual Genome JSON", VGRecord, checks=(_check,), record_label=_label, unique="image_id")
