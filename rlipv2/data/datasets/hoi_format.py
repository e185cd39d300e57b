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

import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from detectron2.structures import BoxMode
from PIL import Image

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
) -> list[dict]:
    """Load a PPDM/QPIC-format file into dataset dicts (contract 1).

    Args:
        object_id_map / predicate_id_map: dataset ids in the file -> contiguous 0-based ids.
        relation_key: "hoi_annotation" (HICO-DET, V-COCO) or "rel_annotations" (Open Images).
        allow_missing_object: V-COCO: ``object_id == -1`` is a relation without object.
        image_id_mode: "index" (position in the file, as the official HICO-DET evaluator) or
            "file_name" (trailing number of the file name, e.g. the COCO id for V-COCO).
        read_sizes: read (height, width) from image headers when the file does not give them;
            a missing or unreadable image is then reported here.
        sink: where problems go (default: raise, or skip under :func:`skip_bad_records`).
        entries: already parsed JSON content of ``json_file`` (avoids reading it again).
        tolerate: problem kinds handled as the official loader does (see :class:`ProblemSink`).
    """
    sink = sink or ProblemSink.default(tolerate)
    if entries is None:
        entries = load_json(json_file, "Download the annotation files named in datasets/README.md.")
    if not isinstance(entries, list):
        sink.add(Problem("malformed_json", json_file, None, "<file>", "expected a JSON list of image entries"))
        return []

    # image sizes (header reads) for the entries that do not carry them
    need = []
    for i, e in enumerate(entries):
        if isinstance(e, dict) and isinstance(e.get("file_name"), str) and not ("height" in e and "width" in e):
            need.append(i)
    sizes: dict[int, Any] = {}
    if read_sizes and need:
        got = image_sizes([os.path.join(image_root, entries[i]["file_name"]) for i in need])
        sizes = dict(zip(need, got))

    dicts = []
    for idx, e in enumerate(entries):
        rec = _parse_entry(
            e,
            idx,
            json_file,
            image_root,
            sizes.get(idx),
            object_id_map,
            predicate_id_map,
            relation_key,
            allow_missing_object,
            image_id_mode,
            sink,
        )
        if rec is not None:
            if dataset_name is not None:
                rec["dataset_name"] = dataset_name
            dicts.append(rec)
    sink.warn_tolerated(json_file)
    return dicts


def _parse_entry(
    e,
    idx,
    json_file,
    image_root,
    size,
    object_id_map,
    predicate_id_map,
    relation_key,
    allow_missing_object,
    image_id_mode,
    sink,
) -> dict | None:
    n_before = len(sink.problems)
    if not isinstance(e, dict):
        sink.add(Problem("malformed_record", json_file, idx, "<entry>", f"expected an object, got {type(e).__name__}"))
        return None
    fname = e.get("file_name")
    image = fname if isinstance(fname, str) else idx
    if not isinstance(fname, str):
        sink.add(Problem("malformed_record", json_file, idx, "file_name", "missing or not a string"))
        return None
    path = os.path.join(image_root, fname)
    height = width = None
    if "height" in e and "width" in e:
        height, width = e["height"], e["width"]
        for field, v in (("height", height), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                sink.add(Problem("malformed_record", json_file, image, field, f"must be a positive number, got {v!r}"))
                return None
        height, width = int(height), int(width)
    elif isinstance(size, Exception):
        sink.add(_image_problem(json_file, image, path, size))
        return None
    elif size is not None:
        height, width = size

    anns_in = e.get("annotations")
    rels_in = e.get(relation_key, [])
    if not isinstance(anns_in, list):
        sink.add(Problem("malformed_record", json_file, image, "annotations", "missing or not a list"))
        return None
    if not isinstance(rels_in, list):
        sink.add(Problem("malformed_record", json_file, image, relation_key, "not a list"))
        return None

    anns = []
    for k, a in enumerate(anns_in):
        if not isinstance(a, dict) or "bbox" not in a or "category_id" not in a:
            sink.add(
                Problem("malformed_record", json_file, image, f"annotations[{k}]", "needs 'bbox' and 'category_id'")
            )
            continue
        cid = a["category_id"]
        if not isinstance(cid, (int, str)) or cid not in object_id_map:
            sink.add(
                Problem(
                    "unknown_category",
                    json_file,
                    image,
                    f"annotations[{k}].category_id",
                    f"unknown object category id {cid!r}",
                )
            )
            continue
        box = check_box(a["bbox"], width, height, (json_file, image, f"annotations[{k}].bbox"), sink)
        if box is None:
            continue
        anns.append({"bbox": box, "bbox_mode": BoxMode.XYXY_ABS, "category_id": object_id_map[cid]})

    rels = []
    n = len(anns_in)
    for k, r in enumerate(rels_in):
        where = f"{relation_key}[{k}]"
        if not isinstance(r, dict) or not all(f in r for f in ("subject_id", "object_id", "category_id")):
            sink.add(
                Problem("malformed_record", json_file, image, where, "needs 'subject_id', 'object_id', 'category_id'")
            )
            continue
        s, o, p = r["subject_id"], r["object_id"], r["category_id"]
        if not isinstance(s, int) or not 0 <= s < n:
            sink.add(
                Problem(
                    "relation_index_out_of_range",
                    json_file,
                    image,
                    where + ".subject_id",
                    f"subject index {s!r} out of range for {n} boxes",
                )
            )
            continue
        if not isinstance(o, int) or not (0 <= o < n or (allow_missing_object and o == -1)):
            sink.add(
                Problem(
                    "relation_index_out_of_range",
                    json_file,
                    image,
                    where + ".object_id",
                    f"object index {o!r} out of range for {n} boxes",
                )
            )
            continue
        if not isinstance(p, (int, str)) or p not in predicate_id_map:
            sink.add(
                Problem("unknown_category", json_file, image, where + ".category_id", f"unknown predicate id {p!r}")
            )
            continue
        conf = r.get("confidence", 1.0)
        if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not math.isfinite(conf):
            sink.add(Problem("malformed_record", json_file, image, where + ".confidence",
                             f"confidence must be a finite number, got {conf!r}"))
            continue
        rels.append({"subject": s, "object": o, "predicate": predicate_id_map[p], "confidence": float(conf)})

    if len(sink.problems) > n_before:  # (not in "raise" mode) drop the whole record
        return None
    if image_id_mode == "file_name":
        image_id = image_id_from_file_name(fname, idx)
    else:
        image_id = idx
    rec = {"file_name": path, "image_id": image_id, "annotations": anns, "relations": rels}
    if height is not None:
        rec["height"], rec["width"] = height, width
    return rec
