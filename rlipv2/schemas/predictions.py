"""Prediction files read by the evaluation CLIs: triplet JSON and per-query ``.npz`` arrays.

Triplet JSON (HICO-DET): a list of ``{"file_name", "predictions": [{"bbox", "category_id"}],
"hoi_prediction": [{"subject_id", "object_id", "category_id", "score"}]}``: boxes finite and ordered,
ids integers, ``score`` in [0, 1], ``subject_id`` / ``object_id`` index ``predictions``.

``.npz`` (HICO-DET, Open Images; see ``rlipv2.evaluation.hico_io``): members are plain ``.npy`` arrays,
never pickles. Before a member is read, its size as declared by the zip directory and by its ``.npy``
header must be at most :data:`MAX_ARRAY_BYTES` (a 3 MB zip bomb cannot claim gigabytes), and the header
must agree with the bytes present. Per image, the arrays have these dtypes and ranks
(:data:`HOI_NPZ_ARRAYS`): ``boxes`` float (M, 4), ``labels`` integer (M,), ``verb_scores`` /
``rel_scores`` float (Q, V), ``sub_ids`` / ``obj_ids`` integer (Q,). Values (finite scores, ordered boxes,
indices in range) are checked, batched, by the evaluators' candidate selector.
"""
from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from typing_extensions import NotRequired, TypedDict

from .core import BoxXYXY, ClassId, Confidence, Index, RecordSchema, SchemaError
from .hico import file_name_label

__all__ = ["TRIPLET_JSON_SCHEMA", "MAX_ARRAY_BYTES", "max_array_bytes", "parse_npy_header", "check_declared_size",
           "check_npz_array", "HOI_NPZ_ARRAYS"]

#: Default bound on one array of a prediction .npz (bytes); ``$RLIPV2_MAX_NPZ_ARRAY_BYTES`` overrides it.
MAX_ARRAY_BYTES = 1 << 30


def max_array_bytes() -> int:
    """The bound in force: ``$RLIPV2_MAX_NPZ_ARRAY_BYTES`` or :data:`MAX_ARRAY_BYTES`."""
    v = os.environ.get("RLIPV2_MAX_NPZ_ARRAY_BYTES")
    try:
        return int(v) if v else MAX_ARRAY_BYTES
    except ValueError:
        raise SchemaError(f"$RLIPV2_MAX_NPZ_ARRAY_BYTES must be an integer number of bytes, got {v!r}") from None


class PredictedBox(TypedDict):
    bbox: BoxXYXY
    category_id: ClassId


class PredictedTriplet(TypedDict):
    subject_id: Index
    object_id: Index
    category_id: ClassId
    score: Confidence


class PredictionRecord(TypedDict):
    file_name: str
    predictions: NotRequired[list[PredictedBox]]
    hoi_prediction: NotRequired[list[PredictedTriplet]]


def _check_indices(rec: dict, ctx: dict) -> Iterator[tuple[str, str, str]]:
    n = len(rec.get("predictions", ()))
    for k, h in enumerate(rec.get("hoi_prediction", ())):
        for f in ("subject_id", "object_id"):
            if not 0 <= h[f] < n:
                yield ("relation_index_out_of_range", f"hoi_prediction[{k}].{f}",
                       f"index {h[f]} out of range for {n} predicted boxes")
                break


#: HICO-DET triplet predictions (JSON).
TRIPLET_JSON_SCHEMA = RecordSchema("triplet prediction", PredictionRecord, checks=(_check_indices,),
                                   record_label=file_name_label)


# ------------------------------------------------------------------------------------------------- npz
def check_declared_size(path: str, key: str, nbytes: int) -> None:
    """Refuse a member whose declared size exceeds the bound, before anything is read or inflated."""
    limit = max_array_bytes()
    if nbytes > limit:
        raise SchemaError(f"{path}: member {key!r} declares {nbytes:,} bytes, above the limit of {limit:,} "
                          "(set $RLIPV2_MAX_NPZ_ARRAY_BYTES to raise it for a file you trust)")


def parse_npy_header(raw, path: str, key: str) -> tuple[np.dtype, tuple, bool, int, int]:
    """Parse the header of one ``.npy`` member held in ``raw`` (bytes or memoryview).

    Returns (dtype, shape, fortran_order, element count, offset of the data). Refuses a malformed
    header, an object dtype (pickles), a size above the bound, or one larger than the bytes present.
    """
    where = f"{path}: member {key!r}"
    if bytes(raw[:6]) != b"\x93NUMPY" or len(raw) < 10:
        raise SchemaError(f"{where} is not a .npy array")
    major = raw[6]
    if major == 1:
        hlen, start = int.from_bytes(raw[8:10], "little"), 10
    elif major in (2, 3) and len(raw) >= 12:
        hlen, start = int.from_bytes(raw[8:12], "little"), 12
    else:
        raise SchemaError(f"{where}: unsupported .npy format version {major}")
    header = bytes(raw[start: start + hlen])
    if len(header) != hlen:
        raise SchemaError(f"{where}: truncated .npy header")
    try:
        d = ast.literal_eval(header.decode("latin1"))
        if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
            raise ValueError("expected the keys descr, fortran_order, shape")
        dtype = np.dtype(np.lib.format.descr_to_dtype(d["descr"]))
        shape = d["shape"]
        if not isinstance(shape, tuple) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise ValueError(f"shape must be a tuple of non-negative ints, got {shape!r}")
        if not isinstance(d["fortran_order"], bool):
            raise ValueError("fortran_order must be a bool")
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise SchemaError(f"{where}: malformed .npy header ({e})") from None
    if dtype.hasobject:
        raise SchemaError(f"{where} holds Python objects (pickles are not loaded)")
    count = int(np.prod(shape, dtype=object)) if shape else 1
    nbytes = count * dtype.itemsize
    check_declared_size(path, key, nbytes)
    if nbytes > len(raw) - start - hlen:
        raise SchemaError(f"{where}: header declares {nbytes:,} bytes of data but the member holds "
                          f"{len(raw) - start - hlen:,} (truncated file?)")
    return dtype, tuple(shape), bool(d["fortran_order"]), count, start + hlen


#: member prefix -> (allowed dtype kinds, rank) of the per-image arrays of a HICO-DET / OI prediction .npz
HOI_NPZ_ARRAYS = {"boxes": ("fiu", 2), "labels": ("iu", 1), "verb_scores": ("f", 2), "rel_scores": ("f", 2),
                  "sub_ids": ("iu", 1), "obj_ids": ("iu", 1)}


def check_npz_array(name: str, arr: Any, where: str) -> None:
    """dtype kind and rank of one per-image array (``name`` like "sub_ids_12"); SchemaError naming it."""
    prefix = name.rsplit("_", 1)[0] if name.rsplit("_", 1)[-1].isdigit() else name
    rule = HOI_NPZ_ARRAYS.get(prefix)
    if rule is None:
        return
    kinds, ndim = rule
    arr = np.asarray(arr)
    if arr.dtype.kind not in kinds:
        what = {"iu": "an integer", "f": "a floating-point", "fiu": "a numeric"}[kinds]
        raise SchemaError(f"{where}: {name} must be {what} array, got dtype {arr.dtype}")
    if arr.ndim != ndim and arr.size:
        raise SchemaError(f"{where}: {name} must have {ndim} dimension(s), got shape {arr.shape}")
