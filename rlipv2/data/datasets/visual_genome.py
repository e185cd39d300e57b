"""Visual Genome scene graphs and relational pseudo-labels (COCO / Objects365) for pre-training.

VG-format file: a JSON list, one entry per image::

    {"image_id": 1, "objects": [{"object_id": 10, "x": .., "y": .., "w": .., "h": .., "names": "man"}],
     "relationships": [{"relationship_id": 5, "predicate": "riding", "subject_id": 10, "object_id": 11,
                        "confidence": 0.8}]}            # confidence: pseudo labels only

Object and relation names stay free-form. The vocabularies (``thing_classes`` /
``predicate_classes``) are built from the file, sorted by frequency (most frequent first, ties
in order of first appearance), with the counts in ``object_frequencies`` /
``predicate_frequencies``. Pseudo-label relations below ``relation_threshold`` (default 0.2) are
dropped at load time, as in the official pre-training scripts.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable

from detectron2.structures import BoxMode

from ...schemas.core import gc_paused
from ...schemas.vg import VG_SCHEMA
from .common import (
    LazyMetadata,
    Problem,
    ProblemSink,
    RelationDataError,
    check_box,
    load_json,
    new_metadata,
    register_lazy,
)
from .hoi_format import image_sizes

logger = logging.getLogger(__name__)

VG_DOWNLOAD_HINT = (
    "Visual Genome: images (VG_100K, VG_100K_2 merged into images/) and the pre-processed scene graphs "
    "scene_graphs_preprocessv1.json from the RLIPv2 data release."
)
PSEUDO_DOWNLOAD_HINT = "Relational pseudo-labels for COCO 2017 / Objects365 are in the RLIPv2 data release."

# vocabulary cache: key -> (object_names, object_freq, predicate_names, predicate_freq)
_VOCAB_CACHE: dict[tuple, tuple[list[str], list[int], list[str], list[int]]] = {}


def vg_image_path(entry: dict, image_root: str) -> str:
    """Visual Genome: ``<image_root>/<image_id>.jpg`` (or the entry's ``file_name``)."""
    if "file_name" in entry:
        return os.path.join(image_root, entry["file_name"])
    return os.path.join(image_root, f"{entry['image_id']}.jpg")


def coco_image_path(entry: dict, image_root: str, default_split: str = "train2017") -> str:
    """COCO 2017 pseudo labels: ``<image_root>/<data_split>/<12-digit image_id>.jpg``."""
    if "file_name" in entry:
        return os.path.join(image_root, entry["file_name"])
    return os.path.join(image_root, entry.get("data_split", default_split), f"{int(entry['image_id']):012d}.jpg")


class O365ImagePaths:
    """Objects365 pseudo labels: ``image_id_to_filepath.json`` in ``image_root`` maps ids to files."""

    def __init__(self):
        self._maps: dict[str, dict] = {}

    def __call__(self, entry: dict, image_root: str) -> str:
        if "file_name" in entry:
            return os.path.join(image_root, entry["file_name"])
        m = self._maps.get(image_root)
        if m is None:
            m = self._maps[image_root] = load_json(
                os.path.join(image_root, "image_id_to_filepath.json"),
                "Objects365 needs image_id_to_filepath.json (from the RLIPv2 data release) in its image folder.",
            )
        return os.path.join(image_root, m[str(entry["image_id"])])


o365_image_path = O365ImagePaths()

PATH_RESOLVERS: dict[str, Callable[[dict, str], str]] = {
    "vg": vg_image_path,
    "coco2017": coco_image_path,
    "o365": o365_image_path,
}


def _sorted_vocab(freq: dict[str, int]) -> tuple[list[str], list[int]]:
    # dicts keep insertion (= first appearance) order; sort is stable
    items = sorted(freq.items(), key=lambda kv: -kv[1])
    return [k for k, _ in items], [v for _, v in items]


def load_vg_json(
    json_file: str,
    image_root: str,
    *,
    dataset_name: str | None = None,
    image_source: str = "vg",
    relation_threshold: float = 0.0,
    read_sizes: bool = True,
    sink: ProblemSink | None = None,
    entries: list | None = None,
    vocab: tuple[list[str], list[str]] | None = None,
    tolerate: tuple[str, ...] = (),
    allow_outside_root: bool = False,
) -> tuple[list[dict], tuple[list[str], list[int], list[str], list[int]]]:
    """Load a VG-format file into dataset dicts (contract 1) and its frequency-sorted vocabularies.

    The rules of the file are those of :mod:`rlipv2.schemas.vg`; a record that breaks one is reported to
    ``sink`` and dropped (unless the sink raises).

    Args:
        image_source: "vg" | "coco2017" | "o365": how an entry names its image file.
        relation_threshold: pseudo-label relations with ``confidence`` below it are dropped
            (relations without a confidence, i.e. human labels, are kept).
        vocab: fixed (object names, predicate names) to index into instead of the file's own.
        allow_outside_root: accept ``file_name`` paths that are absolute or contain ``..``.

    Returns:
        (dicts, (object_names, object_freq, predicate_names, predicate_freq)).
    """
    with gc_paused():  # millions of small acyclic objects: collections would cost as much as the parsing
        return _load_vg_json(json_file, image_root, dataset_name, image_source, relation_threshold, read_sizes,
                             sink, entries, vocab, tolerate, allow_outside_root)


def _load_vg_json(json_file, image_root, dataset_name, image_source, relation_threshold, read_sizes, sink, entries,
                  vocab, tolerate, allow_outside_root):
    sink = sink or ProblemSink.default(tolerate)
    hint = VG_DOWNLOAD_HINT if image_source == "vg" else PSEUDO_DOWNLOAD_HINT
    if entries is None:
        entries = load_json(json_file, hint)
    if not isinstance(entries, list):
        sink.add(Problem("malformed_json", json_file, None, "<file>", "expected a JSON list of image entries"))
        return [], ([], [], [], [])
    resolve = PATH_RESOLVERS[image_source]

    result = VG_SCHEMA.validate(entries, json_file, {"allow_outside_root": allow_outside_root})
    for p in result.problems:
        sink.add(p)
    paths: dict[int, str | None] = {}
    for i, _ in result.records:
        try:  # from the raw entry: the path may use fields outside the schema (data_split)
            paths[i] = resolve(entries[i], image_root)
        except (KeyError, TypeError, ValueError):
            paths[i] = None
    need = [i for i, rec in result.records if paths[i] is not None and "height" not in rec]
    sizes = dict(zip(need, image_sizes([paths[i] for i in need]))) if (read_sizes and need) else {}

    obj_freq: dict[str, int] = {}
    rel_freq: dict[str, int] = {}
    raw_dicts = []
    for idx, e in result.records:
        n_before = len(sink.problems)
        image = e["image_id"]
        if paths[idx] is None:
            sink.add(Problem("malformed_record", json_file, image, "image_id", "cannot build the image path"))
            continue
        height = width = None
        if "height" in e:
            height, width = e["height"], e["width"]
        elif isinstance(sizes.get(idx), Exception):
            err = sizes[idx]
            kind = "missing_image" if isinstance(err, FileNotFoundError) else "corrupt_image"
            sink.add(Problem(kind, json_file, image, "image_id", f"cannot read image {paths[idx]}: {err}"))
            continue
        elif idx in sizes:
            height, width = sizes[idx]
        anns, local = [], {}
        for k, o in enumerate(e["objects"]):
            xyxy = [o["x"], o["y"], o["x"] + o["w"], o["y"] + o["h"]]
            box = check_box(xyxy, width, height, (json_file, image, f"objects[{k}].bbox"), sink)
            if box is None:
                continue
            local[o.get("object_id", k)] = len(anns)
            anns.append({"bbox": box, "bbox_mode": BoxMode.XYXY_ABS, "name": o.get("names", o.get("name"))})
        rels = []
        for r in e.get("relationships", ()):
            conf = r.get("confidence")
            if conf is not None and conf < relation_threshold:
                continue
            s_, o_ = local.get(r["subject_id"]), local.get(r["object_id"])
            if s_ is None or o_ is None:  # an object whose box was refused above: the record is dropped
                continue
            rels.append({"subject": s_, "object": o_, "predicate": r["predicate"],
                         "confidence": 1.0 if conf is None else conf})
        if len(sink.problems) > n_before:
            continue
        for a in anns:
            obj_freq[a["name"]] = obj_freq.get(a["name"], 0) + 1
        for r in rels:
            rel_freq[r["predicate"]] = rel_freq.get(r["predicate"], 0) + 1
        rec = {"file_name": paths[idx], "image_id": image, "annotations": anns, "relations": rels}
        if height is not None:
            rec["height"], rec["width"] = height, width
        if dataset_name is not None:
            rec["dataset_name"] = dataset_name
        raw_dicts.append(rec)

    objects, ofreq = _sorted_vocab(obj_freq)
    predicates, pfreq = _sorted_vocab(rel_freq)
    if vocab is not None:
        fixed_o, fixed_p = vocab
        ofreq = [obj_freq.get(n, 0) for n in fixed_o]
        pfreq = [rel_freq.get(n, 0) for n in fixed_p]
        objects, predicates = list(fixed_o), list(fixed_p)
    oidx = {n: i for i, n in enumerate(objects)}
    pidx = {n: i for i, n in enumerate(predicates)}
    dicts = []
    for rec in raw_dicts:
        try:
            for a in rec["annotations"]:
                a["category_id"] = oidx[a.pop("name")]
            for r in rec["relations"]:
                r["predicate"] = pidx[r["predicate"]]
        except KeyError as err:
            sink.add(
                Problem(
                    "unknown_category",
                    json_file,
                    rec["image_id"],
                    "names/predicate",
                    f"name {err} is not in the fixed vocabulary",
                )
            )
            continue
        dicts.append(rec)
    sink.warn_tolerated(json_file)
    return dicts, (objects, ofreq, predicates, pfreq)


def _load_and_cache(
    name, json_file, image_root, image_source, relation_threshold, vocab_file, prepare=None, tolerate=(),
    allow_outside_root=False,
):
    if prepare is not None:
        prepare()
    vocab = None
    if vocab_file is not None:
        vocab = read_vg_vocab_file(vocab_file)
        logger.info("%s: vocabulary: %d object and %d predicate classes from %s", name, len(vocab[0]),
                    len(vocab[1]), vocab_file)
    dicts, voc = load_vg_json(
        json_file,
        image_root,
        dataset_name=name,
        image_source=image_source,
        relation_threshold=relation_threshold,
        vocab=vocab,
        tolerate=tolerate,
        allow_outside_root=allow_outside_root,
    )
    if vocab is None:
        logger.info("%s: vocabulary: %d object and %d predicate classes from the labels of %s (by frequency)",
                    name, len(voc[0]), len(voc[2]), json_file)
    _VOCAB_CACHE[(name, json_file, relation_threshold)] = voc
    return dicts


def _vocab_field(name, json_file, image_root, image_source, relation_threshold, vocab_file, prepare, tolerate,
                 allow_outside_root, which):
    key = (name, json_file, relation_threshold)
    if key not in _VOCAB_CACHE:
        _load_and_cache(name, json_file, image_root, image_source, relation_threshold, vocab_file, prepare, tolerate,
                        allow_outside_root)
    return _VOCAB_CACHE[key][which]


def read_vg_vocab_file(path: str) -> tuple[list[str], list[str]]:
    """(object names, predicate names) of a ``*_keep_names_freq.json`` vocabulary file."""
    v = load_json(path)
    names = []
    for key in ("object_names", "relationship_names"):
        if not isinstance(v, dict) or not isinstance(v.get(key), list) or not all(
                isinstance(n, str) and n for n in v[key]):
            raise RelationDataError(Problem("malformed_json", path, None, key, "must be a list of label texts"))
        names.append(list(v[key]))
    return names[0], names[1]


def register_vg_format(
    name: str,
    json_file: str,
    image_root: str,
    *,
    image_source: str = "vg",
    relation_threshold: float = 0.0,
    vocab_file: str | None = None,
    prepare: Callable[[], object] | None = None,
    tolerate: tuple[str, ...] = (),
    allow_outside_root: bool = False,
    **metadata,
) -> LazyMetadata:
    """Register a VG-format dataset (scene graphs or pseudo labels); nothing is read now.

    The free-form vocabularies and their frequencies are metadata computed on first use.
    ``vocab_file`` (a ``*_keep_names_freq.json`` with ``object_names`` / ``relationship_names``)
    fixes the vocabulary instead. ``prepare`` is called before the file is read (e.g. to generate it).
    The loader logs the vocabulary's size and source. ``allow_outside_root`` accepts image paths that are
    absolute or contain ``..`` (refused by default).
    """
    md = new_metadata(name)
    args = (name, json_file, image_root, image_source, relation_threshold, vocab_file, prepare, tuple(tolerate),
            allow_outside_root)
    register_lazy(name, functools.partial(_load_and_cache, *args))
    md.set_lazy(
        thing_classes=functools.partial(_vocab_field, *args, 0),
        object_frequencies=functools.partial(_vocab_field, *args, 1),
        predicate_classes=functools.partial(_vocab_field, *args, 2),
        predicate_frequencies=functools.partial(_vocab_field, *args, 3),
    )
    md.set(
        json_file=json_file,
        image_root=image_root,
        image_source=image_source,
        annotation_format="vg",
        relation_threshold=relation_threshold,
        evaluator_type=metadata.pop("evaluator_type", "vg"),
    )
    md.set(**metadata)
    return md


def register_pseudo_labels(
    name: str,
    json_file: str,
    image_root: str,
    *,
    source: str = "coco2017",
    relation_threshold: float = 0.2,
    **metadata,
) -> LazyMetadata:
    """Register relational pseudo labels (VG format with confidences) of COCO 2017 or Objects365."""
    metadata.setdefault("evaluator_type", None)
    return register_vg_format(
        name, json_file, image_root, image_source=source, relation_threshold=relation_threshold, **metadata
    )


def get_vocab(name: str) -> tuple[list[str], list[int], list[str], list[int]]:
    """(object names, object freq, predicate names, predicate freq) of a registered VG-format dataset."""
    from detectron2.data import MetadataCatalog

    md = MetadataCatalog.get(name)
    return md.thing_classes, md.object_frequencies, md.predicate_classes, md.predicate_frequencies


__all__ = ["register_vg_format", "register_pseudo_labels", "load_vg_json", "get_vocab"]
