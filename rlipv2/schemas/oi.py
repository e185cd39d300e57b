"""Open Images v6 scene-graph files (RLIPv2's converted PySGG files).

* ``OI_SGG_{train_finetuning,val,test}.json``: the HICO-DET record layout (:mod:`rlipv2.schemas.hico`)
  with the relations in ``rel_annotations``; object ``category_id`` indexes the 601-class list
  (or the contiguous ids, for a dataset registered with ``thing_classes``), predicates 0..R-1.
  Every rule of the HICO-DET schema applies except the uniqueness of ``file_name``.
* ``OI_SGG_trainval_test_categories_dict.json`` / ``categories_dict.json``: ``{"obj": [labels], "rel": [labels]}``.
* an object-id list for the evaluation CLI (``--object-ids``): a JSON list of distinct class ids.

Class ids are bounded by ``MAX_CLASS_ID`` before any table is sized from them.
"""
from __future__ import annotations

from typing import Any

from .core import MAX_CLASS_ID, SchemaError
from .hico import hoi_record_schema

__all__ = ["OI_SCHEMA", "check_categories", "check_id_list"]

#: Open Images SGG files.
OI_SCHEMA = hoi_record_schema("rel_annotations", unique_file_names=False)


def check_categories(data: Any, path: str) -> tuple[list[str], list[str]]:
    """(object labels, predicate labels) of a ``{"obj": [...], "rel": [...]}`` categories file."""
    if not isinstance(data, dict) or not isinstance(data.get("obj"), list) or not isinstance(data.get("rel"), list):
        raise SchemaError(f"{path}: expected {{'obj': [labels], 'rel': [labels]}}")
    out = []
    for key in ("obj", "rel"):
        for k, name in enumerate(data[key]):
            if not isinstance(name, str) or not name.strip():
                raise SchemaError(f"{path}: field '{key}[{k}]': a label must be a non-empty string, got {name!r}")
        out.append(list(data[key]))
    return out[0], out[1]


def check_id_list(ids: Any, path: str) -> list[int]:
    """A JSON list of distinct class ids in [0, MAX_CLASS_ID] (refused otherwise, naming the entry)."""
    if not isinstance(ids, list):
        raise SchemaError(f"{path}: expected a JSON list of class ids, got {type(ids).__name__}")
    seen = set()
    for k, i in enumerate(ids):
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= MAX_CLASS_ID:
            raise SchemaError(f"{path}: entry {k}: class id must be an integer in [0, {MAX_CLASS_ID}], got {i!r}")
        if i in seen:
            raise SchemaError(f"{path}: entry {k}: class id {i} appears twice")
        seen.add(i)
    return ids
