"""Parser of the PPDM/QPIC annotation format shared by HICO-DET, V-COCO and Open Images v6 SGG.

One JSON list, one entry per image::

    {"file_name": "HICO_train2015_00000001.jpg",
     "annotations": [{"bbox": [x1, y1, x2, y2], "category_id": dataset object id}, ...],
     "hoi_annotation": [{"subject_id": i, "object_id": j, "category_id": dataset verb id}, ...]}

Open Images uses ``rel_annotations`` instead of ``hoi_annotation``; V-COCO allows ``object_id = -1``
(no object). The parser turns entries into Detectron2 dataset dicts with ``relations`` (see
docs/interfaces.md, contract 1).
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from detectron2.structures import BoxMode
from PIL import Image

from ...schemas.core import gc_paused
from ...schemas.hico import hoi_record_schema
from .common import Problem, ProblemSink, check_box, load_json


def read_image_size(path: str) -> tuple[int, int]:
    """(height, width) of an image, reading only its header. Raises OSError if unreadable."""
    with Image.open(path) as im:
        w, h = im.size
    return h, w


def image_sizes(paths: list[str], num_threads: int = 8) -> list[tuple[int, int] | Exception]:
    """Header-read (height, width) of many images in parallel; an exception object where it failed."""

    def one(p):
        try:
            return read_image_size(p)
        except Exception as e:  # missing or corrupt: reported by the caller
            return e

    if len(paths) < 64:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(num_threads) as ex:
        return list(ex.map(one, paths, chunksize=64))


def _image_problem(json_file: str, image: Any, path: str, err: Exception) -> Problem:
    if isinstance(err, FileNotFoundError):
        return Problem("missing_image", json_file, image, "file_name", f"image file not found: {path}")
    return Problem("corrupt_image", json_file, image, "file_name", f"cannot read image {path}: {err}")


_NUM_RE = re.compile(r"(\d+)(?=\.\w+$)")


def image_id_from_file_name(file_name: str, default: int) -> int:
    """The trailing number of a file name (COCO/HICO style), or ``default``."""
    m = _NUM_RE.search(os.path.basename(file_name))
    return int(m.group(1)) if m else default


def load_hoi_json(
    json_file: str,
    image_root: str,
    *,
    object_id_map: dict[int, int],
    predicate_id_map: dict[int, int],
    relation_key: str = "hoi_annotation",
    allow_missing_object: bool = False,
    image_id_mode: str = "index",
    dataset_name: str | None = None,
    read_sizes: bool = True,
    sink: ProblemSink | None = None,
    entries: list | None = None,
    tolerate: tuple[str, ...] = (),
    allow_outside_root: bool = False,
    object_vocabulary: str | None = None,
    predicate_vocabulary: str | None = None,
) -> list[dict]:
    """Load a PPDM/QPIC-format file into dataset dicts (contract 1).

    The rules of the file are those of :mod:`rlipv2.schemas.hico`; a record that breaks one is reported
    to ``sink`` (the whole record is dropped unless the sink raises).

    Args:
        object_id_map / predicate_id_map: dataset ids in the file -> contiguous 0-based ids (the
            vocabulary: ids outside it are refused).
        relation_key: "hoi_annotation" (HICO-DET, V-COCO) or "rel_annotations" (Open Images).
        allow_missing_object: V-COCO: ``object_id == -1`` is a relation without object.
        image_id_mode: "index" (position in the file, as the official HICO-DET evaluator) or
            "file_name" (trailing number of the file name, e.g. the COCO id for V-COCO).
        read_sizes: read (height, width) from image headers when the file does not give them;
            a missing or unreadable image is then reported here.
        sink: where problems go (default: raise, or skip under :func:`skip_bad_records`).
        entries: already parsed JSON content of ``json_file`` (avoids reading it again).
        tolerate: problem kinds handled as the official loader does (see :class:`ProblemSink`).
        allow_outside_root: accept image paths that are absolute or contain ``..``.
        object_vocabulary / predicate_vocabulary: descriptions of the vocabularies for messages (size, source).
    """
    with gc_paused():  # millions of small acyclic objects: collections would cost as much as the parsing
        return _load_hoi_json(json_file, image_root, object_id_map, predicate_id_map, relation_key,
                              allow_missing_object, image_id_mode, dataset_name, read_sizes, sink, entries, tolerate,
                              allow_outside_root, object_vocabulary, predicate_vocabulary)


def _load_hoi_json(json_file, image_root, object_id_map, predicate_id_map, relation_key, allow_missing_object,
                   image_id_mode, dataset_name, read_sizes, sink, entries, tolerate, allow_outside_root,
                   object_vocabulary, predicate_vocabulary) -> list[dict]:
    sink = sink or ProblemSink.default(tolerate)
    if entries is None:
        entries = load_json(json_file, "Download the annotation files named in datasets/README.md.")
    if not isinstance(entries, list):
        sink.add(Problem("malformed_json", json_file, None, "<file>", "expected a JSON list of image entries"))
        return []
    schema = hoi_record_schema(relation_key, unique_file_names=relation_key == "hoi_annotation")
    result = schema.validate(entries, json_file, {
        "object_ids": object_id_map, "predicate_ids": predicate_id_map, "allow_missing_object": allow_missing_object,
        "allow_outside_root": allow_outside_root, "object_vocabulary": object_vocabulary,
        "predicate_vocabulary": predicate_vocabulary})
    for p in result.problems:
        sink.add(p)

    # image sizes (header reads) for the valid records that do not carry them
    need = [i for i, r in result.records if "height" not in r]
    sizes: dict[int, Any] = {}
    if read_sizes and need:
        got = image_sizes([os.path.join(image_root, entries[i]["file_name"]) for i in need])
        sizes = dict(zip(need, got))

    dicts = []
    for idx, rec in result.records:
        out = _to_dataset_dict(rec, idx, json_file, image_root, sizes.get(idx), object_id_map, predicate_id_map,
                               relation_key, image_id_mode, sink)
        if out is not None:
            if dataset_name is not None:
                out["dataset_name"] = dataset_name
            dicts.append(out)
    sink.warn_tolerated(json_file)
    return dicts


def _to_dataset_dict(rec, idx, json_file, image_root, size, object_id_map, predicate_id_map, relation_key,
                     image_id_mode, sink) -> dict | None:
    """A record that passed the schema -> a dataset dict; image problems (missing, unreadable, box
    outside the image) are reported to ``sink`` here."""
    n_before = len(sink.problems)
    fname = rec["file_name"]
    path = os.path.join(image_root, fname)
    height = width = None
    if "height" in rec:
        height, width = rec["height"], rec["width"]
    elif isinstance(size, Exception):
        sink.add(_image_problem(json_file, fname, path, size))
        return None
    elif size is not None:
        height, width = size
    anns = []
    for k, a in enumerate(rec["annotations"]):
        box = check_box(a["bbox"], width, height, (json_file, fname, f"annotations[{k}].bbox"), sink)
        if box is not None:
            anns.append({"bbox": box, "bbox_mode": BoxMode.XYXY_ABS, "category_id": object_id_map[a["category_id"]]})
    rels = [{"subject": r["subject_id"], "object": r["object_id"], "predicate": predicate_id_map[r["category_id"]],
             "confidence": r.get("confidence", 1.0)} for r in rec.get(relation_key, ())]
    if len(sink.problems) > n_before:  # (not in "raise" mode) drop the whole record
        return None
    image_id = image_id_from_file_name(fname, idx) if image_id_mode == "file_name" else idx
    out = {"file_name": path, "image_id": image_id, "annotations": anns, "relations": rels}
    if height is not None:
        out["height"], out["width"] = height, width
    return out
