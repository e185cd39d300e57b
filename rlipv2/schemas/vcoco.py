"""V-COCO evaluation files (s-gupta/v-coco): ``vcoco_test.json``, ``instances_vcoco_all_2014.json`` and the
detections (JSON, or a pickle read by the restricted unpickler).

* ``vcoco_test.json``: a list, one entry per action: ``action_name`` (a label), ``role_name`` (labels,
  the first is "agent"), and integer arrays (flat or nested lists) ``ann_id``, ``label``, ``image_id`` of one
  length N and ``role_object_id`` of N x len(role_name) entries.
* COCO instances: ``images`` ``{"id", "width", "height"}`` (integer id, positive sizes), ``annotations``
  ``{"id", "image_id", "category_id", "bbox": [x, y, w, h], "area", "ignore"?}`` (integer ids, finite
  numbers), ``categories`` (non-empty, persons first).
* detections: a list of dicts with an integer ``image_id``; the score and box columns are checked when they
  are gathered (``rlipv2.evaluation.vcoco.detections_from_dicts``).

V-COCO training files (``trainval_vcoco.json``) use the HICO-DET layout (:mod:`rlipv2.schemas.hico`).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import numpy as np
from pydantic import PlainValidator
from typing_extensions import NotRequired, TypedDict

from .coco import BoxXYWH
from .core import FiniteFloat, Id, PositiveInt, RecordSchema, SchemaError, ZeroOrOne, custom_error, short_repr
from .vg import Label

__all__ = ["VCOCO_ACTION_SCHEMA", "check_vcoco_actions", "check_coco_instances", "check_detection_ids"]


def int_array(value: Any) -> list[int]:
    """A (possibly nested) list of JSON integers, flattened (pydantic validator)."""
    arr = np.asarray(value, dtype=object).reshape(-1) if isinstance(value, list) else None
    if arr is None or not all(isinstance(v, int) and not isinstance(v, bool) for v in arr.tolist()):
        raise custom_error("malformed_record", f"must be a list of integers, got {short_repr(value)}")
    return [int(v) for v in arr.tolist()]


IntArray = Annotated[Any, PlainValidator(int_array)]


class VCOCOAction(TypedDict):
    action_name: Label
    role_name: list[Label]
    ann_id: IntArray
    label: IntArray
    image_id: IntArray
    role_object_id: IntArray


def _check_action(rec: dict, ctx: dict) -> Iterator[tuple[str, str, str]]:
    n = len(rec["ann_id"])
    for f in ("label", "image_id"):
        if len(rec[f]) != n:
            yield "malformed_record", f, f"has {len(rec[f])} entries but ann_id has {n}"
            return
    if not rec["role_name"] or rec["role_name"][0] != "agent":
        yield "malformed_record", "role_name", f"must start with 'agent', got {short_repr(rec['role_name'])}"
    elif len(rec["role_object_id"]) != n * len(rec["role_name"]):
        yield ("malformed_record", "role_object_id",
               f"needs {n} x {len(rec['role_name'])} entries (annotations x roles), got {len(rec['role_object_id'])}")


VCOCO_ACTION_SCHEMA = RecordSchema("V-COCO action", VCOCOAction, checks=(_check_action,),
                                   record_label=lambda i, r: f"action #{i}")


def check_vcoco_actions(data: Any, path: str) -> list[dict]:
    """The validated entries of ``vcoco_test.json``; :class:`SchemaError` on the first problem."""
    res = VCOCO_ACTION_SCHEMA.validate(data, path)
    res.raise_first()
    if not res.records:
        raise SchemaError(f"{path}: no action entries")
    return [r for _, r in res.records]


class COCOImageSize(TypedDict):
    id: Id
    width: PositiveInt
    height: PositiveInt


class COCOInstance(TypedDict):
    id: Id
    image_id: Id
    category_id: Id
    bbox: BoxXYWH
    area: FiniteFloat
    ignore: NotRequired[ZeroOrOne]


class COCOCategoryId(TypedDict):
    id: Id


_IMAGES = RecordSchema("COCO image", COCOImageSize, record_label=lambda i, r: f"images #{i}", unique="id")
_ANNS = RecordSchema("COCO annotation", COCOInstance, record_label=lambda i, r: f"annotations #{i}")
_CATS = RecordSchema("COCO category", COCOCategoryId, record_label=lambda i, r: f"categories #{i}")


def check_coco_instances(data: Any, path: str) -> dict:
    """``{"images", "annotations", "categories"}`` of a COCO instances file, validated; SchemaError otherwise."""
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: a COCO instances file must be a JSON object")
    out = {}
    for key, schema in (("images", _IMAGES), ("annotations", _ANNS), ("categories", _CATS)):
        if key not in data:
            raise SchemaError(f"{path}: missing top-level field '{key}'")
        res = schema.validate(data[key], path)
        res.raise_first()
        out[key] = [r for _, r in res.records]
    if not out["categories"]:
        raise SchemaError(f"{path}: 'categories' is empty (V-COCO needs the person category first)")
    return out


def check_detection_ids(dets: Any, where: str) -> None:
    """Every detection is a dict with an integer ``image_id`` (0.9 is refused, never truncated)."""
    if not isinstance(dets, list):
        raise SchemaError(f"{where}: expected a list of detection dicts, got {type(dets).__name__}")
    for i, d in enumerate(dets):
        if not isinstance(d, dict):
            raise SchemaError(f"{where}: detection {i} must be a dict, got {type(d).__name__}")
        v = d.get("image_id")
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise SchemaError(f"{where}: detection {i}: field 'image_id' must be an integer, got {short_repr(v)}")
