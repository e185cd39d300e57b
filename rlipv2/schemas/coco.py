"""COCO-format files read by the pseudo-labelling pipeline: detections (``instances_*.json``) and captions.

Detection file: ``{"images": [...], "annotations": [...], "categories": [...]}`` with

* images ``{"id", "file_name", "height", "width"}``: ``id`` an integer or string, unique; ``file_name`` a
  path under the image root (unless context ``allow_outside_root``); sizes positive integers;
* categories ``{"id", "name"}``: ``id`` an integer, unique; ``name`` a non-empty label;
* annotations ``{"image_id", "bbox": [x, y, w, h], "category_id", "iscrowd"?, "score"?}``: ``bbox`` four
  finite numbers, ``category_id`` an integer, ``iscrowd`` 0/1, ``score`` in [0, 1].

A bad image or category record is an error (one line naming the file, record and field); a bad
*annotation* is dropped and counted (:func:`validate_detection_annotations`), as the pipeline drops crowd
and degenerate boxes: the summary lists every drop.

Captions file (:func:`parse_captions`): ``{image_id: [caption, ...]}`` (or one string), the COCO captions
format ``{"annotations": [{"image_id", "caption"}]}``, or a list of ``{"image_id", "caption" | "captions"}``.
"""
from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import PlainValidator
from typing_extensions import NotRequired, TypedDict

from .core import (
    Confidence,
    Id,
    ImagePath,
    PositiveInt,
    Problem,
    RecordSchema,
    SchemaError,
    ValidationResult,
    ZeroOrOne,
    custom_error,
    short_repr,
    validate_records,
)
from .vg import Label, RefId

__all__ = ["COCO_IMAGE_SCHEMA", "COCO_CATEGORY_SCHEMA", "COCO_ANNOTATION_SCHEMA", "BoxXYWH", "check_detection_file",
           "validate_detection_annotations", "parse_captions"]


def check_box_xywh(value: Any) -> list[float]:
    """Four finite numbers [x, y, w, h] (pydantic validator; empty boxes are the pipeline's to drop)."""
    if not isinstance(value, (list, tuple)) or len(value) != 4 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        raise custom_error("malformed_box", f"expected 4 numbers [x, y, w, h], got {short_repr(value)}")
    if not all(math.isfinite(v) for v in value):
        raise custom_error("malformed_box", f"box has non-finite values {short_repr(value)}")
    return [float(v) for v in value]


#: A COCO box [x, y, w, h]: four finite numbers.
BoxXYWH = Annotated[list, PlainValidator(check_box_xywh)]


class COCOImage(TypedDict):
    id: RefId
    file_name: ImagePath
    height: PositiveInt
    width: PositiveInt


class COCOCategory(TypedDict):
    id: Id
    name: Label


class COCOAnnotation(TypedDict):
    image_id: RefId
    bbox: BoxXYWH
    category_id: Id
    iscrowd: NotRequired[ZeroOrOne]
    score: NotRequired[Confidence]


def _index_label(what):
    return lambda i, raw: f"{what} #{i}"


COCO_IMAGE_SCHEMA = RecordSchema("COCO image", COCOImage, record_label=_index_label("images"), unique="id")
COCO_CATEGORY_SCHEMA = RecordSchema("COCO category", COCOCategory, record_label=_index_label("categories"),
                                    unique="id")
COCO_ANNOTATION_SCHEMA = RecordSchema("COCO annotation", COCOAnnotation, record_label=_index_label("annotations"))


def check_detection_file(data: Any, path: str, context: dict | None = None) -> tuple[list[dict], list[dict]]:
    """Validated (images, categories) of a COCO-format detection file; :class:`SchemaError` on the first problem.

    Image ids are compared as strings (JSON object keys are strings), so ``1`` and ``"1"`` are duplicates.
    """
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: a COCO-format detection file must be a JSON object")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise SchemaError(f"{path}: missing top-level field '{key}' (not a COCO-format detection file?)")
        if not isinstance(data[key], list):
            raise SchemaError(f"{path}: top-level field '{key}' must be a list")
    images = COCO_IMAGE_SCHEMA.validate(data["images"], path, context)
    images.raise_first()
    seen: dict[str, int] = {}
    for i, im in images.records:
        key = str(im["id"])
        if key in seen:
            raise SchemaError(Problem("duplicate_record", path, f"images #{i}", "id",
                                      f"image id {im['id']!r} is also images #{seen[key]}'s"))
        seen[key] = i
    cats = COCO_CATEGORY_SCHEMA.validate(data["categories"], path, context)
    cats.raise_first()
    return [r for _, r in images.records], [r for _, r in cats.records]


def validate_detection_annotations(annotations: list, path: str, context: dict | None = None) -> ValidationResult:
    """Validate the annotation list; the caller drops (and counts) the records in ``result.bad``."""
    return validate_records(COCO_ANNOTATION_SCHEMA, annotations, path, context)


def parse_captions(data: Any, path: str) -> dict[str, list[str]]:
    """``{str(image_id): [caption, ...]}`` in file order from a captions file in any accepted format.

    Empty captions are kept (the pipeline counts and skips them); a caption that is not a string, a record
    without ``image_id``, or an unsupported layout is an error naming the record.
    """
    out: dict[str, list[str]] = {}

    def add(image_id, caps, where):
        if isinstance(image_id, bool) or not isinstance(image_id, (int, str)):
            raise SchemaError(f"{path}: {where}: image_id must be an int or a string, got {short_repr(image_id)}")
        if isinstance(caps, str):
            caps = [caps]
        if not isinstance(caps, list):
            raise SchemaError(f"{path}: {where}: captions of image {image_id} must be a list of strings")
        lst = out.setdefault(str(image_id), [])
        for c in caps:
            if not isinstance(c, str):
                raise SchemaError(f"{path}: caption #{len(lst)} of image {image_id} must be a string, "
                                  f"got {type(c).__name__}")
            lst.append(c)

    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        records = data["annotations"]
    elif isinstance(data, dict):
        for image_id, caps in data.items():
            add(image_id, caps, f"key '{image_id}'")
        return out
    elif isinstance(data, list):
        records = data
    else:
        raise SchemaError(f"{path}: unsupported captions format (expected a JSON object or list)")
    for i, r in enumerate(records):
        if not isinstance(r, dict) or "image_id" not in r:
            raise SchemaError(f"{path}: caption record #{i} has no field 'image_id'")
        if "caption" in r:
            add(r["image_id"], [r["caption"]], f"record #{i}")
        elif "captions" in r:
            add(r["image_id"], r["captions"], f"record #{i}")
        else:
            raise SchemaError(f"{path}: caption record #{i} has neither 'caption' nor 'captions'")
    return out
