"""Open Images v6 scene-graph data (RLIPv2's converted PySGG files) as Detectron2 datasets.

Entries are PPDM/QPIC-like with ``rel_annotations`` (predicate ids 0..29). Object ``category_id``
indexes the 601-class PySGG list (``categories_dict.json``); the label texts are the 288 objects
that occur in relations and the 30 predicates of ``OI_SGG_trainval_test_categories_dict.json``.
Both files are read lazily (on first use of the dataset or its class lists).
"""

from __future__ import annotations

import functools
import logging
import os

import numpy as np

from ...schemas.oi import check_categories
from .common import (
    LazyMetadata,
    Problem,
    ProblemSink,
    RelationDataError,
    load_json,
    new_metadata,
    rare_triplets_from_counts,
    register_lazy,
    require_file,
)
from .hoi_format import load_hoi_json

logger = logging.getLogger(__name__)

OI_DOWNLOAD_HINT = (
    "Open Images v6 SGG files (OI_SGG_*.json, categories_dict.json, OI_SGG_trainval_test_categories_dict.json) "
    "are in the RLIPv2 data release."
)


@functools.lru_cache(maxsize=8)
def _oi_vocab(categories_file: str, all_categories_file: str | None):
    """(object texts, predicate texts, {file object id: contiguous id}) of an OI dataset."""
    objects, predicates = check_categories(load_json(categories_file, OI_DOWNLOAD_HINT), categories_file)
    if all_categories_file is not None and os.path.exists(all_categories_file):
        all_objs = check_categories(load_json(all_categories_file), all_categories_file)[0]
        id_map = {}
        for k, o in enumerate(objects):
            if o not in all_objs:
                raise RelationDataError(
                    Problem(
                        "unknown_category",
                        all_categories_file,
                        None,
                        "obj",
                        f"object {o!r} of {categories_file} is not in this list",
                    )
                )
            id_map[all_objs.index(o)] = k
    elif all_categories_file is not None:
        require_file(all_categories_file, OI_DOWNLOAD_HINT)
    else:
        id_map = {k: k for k in range(len(objects))}
    return objects, predicates, id_map


def _vocab_field(categories_file, all_categories_file, which):
    return _oi_vocab(categories_file, all_categories_file)[which]


def _load_oi(name, json_file, image_root, categories_file, all_categories_file, vocab, tolerate=(),
             allow_outside_root=False):
    if vocab is None:
        objects, predicates, id_map = _oi_vocab(categories_file, all_categories_file)
        source = categories_file + (f" (ids of {all_categories_file})" if all_categories_file else "")
    else:
        objects, predicates, id_map = vocab
        source = f"thing_classes / predicate_classes of dataset {name!r}"
    obj_desc = f"{len(objects)} object classes from {source}"
    pred_desc = f"{len(predicates)} predicate classes from {source} (ids 0..{len(predicates) - 1})"
    logger.info("%s: vocabulary: %s; %s", name, obj_desc, pred_desc)
    entries = load_json(json_file, OI_DOWNLOAD_HINT)
    return load_hoi_json(
        json_file,
        image_root,
        object_id_map=id_map,
        predicate_id_map={k: k for k in range(len(predicates))},
        relation_key="rel_annotations",
        image_id_mode="index",
        dataset_name=name,
        entries=entries,
        tolerate=tolerate,
        allow_outside_root=allow_outside_root,
        object_vocabulary=obj_desc,
        predicate_vocabulary=pred_desc,
    )


def _oi_rare(rare_from, categories_file, all_categories_file, vocab, which):
    if vocab is None:
        objects, predicates, id_map = _oi_vocab(categories_file, all_categories_file)
    else:
        objects, predicates, id_map = vocab
    dicts = load_hoi_json(
        rare_from,
        "",
        object_id_map=id_map,
        predicate_id_map={k: k for k in range(len(predicates))},
        relation_key="rel_annotations",
        read_sizes=False,
        sink=ProblemSink("collect"),
        entries=load_json(rare_from, OI_DOWNLOAD_HINT),
    )
    return rare_triplets_from_counts(dicts)[which]


def _np_load(path):
    require_file(path, OI_DOWNLOAD_HINT)
    return np.load(path)


def register_open_images(
    name: str,
    json_file: str,
    image_root: str,
    *,
    categories_file: str | None = None,
    all_categories_file: str | None = None,
    rare_from: str | None = None,
    triplet_correct_mat_file: str | None = None,
    tolerate: tuple[str, ...] = (),
    allow_outside_root: bool = False,
    **metadata,
) -> LazyMetadata:
    """Register an Open-Images-SGG-format dataset (nothing is read now).

    Either ``categories_file`` ({"obj": [...], "rel": [...]}, optionally with the 601-class
    ``all_categories_file`` the file ids index), or ``thing_classes`` + ``predicate_classes`` in
    ``metadata`` (file ids are then contiguous ids). The loader logs the vocabulary's size and source and
    refuses ids outside it; ``allow_outside_root`` accepts absolute or ``..`` image paths.
    """
    md = new_metadata(name)
    vocab = None
    if "thing_classes" in metadata:
        objects = list(metadata.pop("thing_classes"))
        predicates = list(metadata.pop("predicate_classes"))
        id_map = metadata.pop("thing_dataset_id_to_contiguous_id", {k: k for k in range(len(objects))})
        vocab = (objects, predicates, id_map)
        md.set(thing_classes=objects, predicate_classes=predicates, thing_dataset_id_to_contiguous_id=id_map)
    elif categories_file is not None:
        md.set_lazy(
            thing_classes=functools.partial(_vocab_field, categories_file, all_categories_file, 0),
            predicate_classes=functools.partial(_vocab_field, categories_file, all_categories_file, 1),
            thing_dataset_id_to_contiguous_id=functools.partial(_vocab_field, categories_file, all_categories_file, 2),
        )
    else:
        raise ValueError(f"register_open_images({name!r}): give categories_file or thing_classes/predicate_classes")
    register_lazy(
        name,
        functools.partial(
            _load_oi, name, json_file, image_root, categories_file, all_categories_file, vocab, tuple(tolerate),
            allow_outside_root,
        ),
    )
    src = rare_from or json_file
    md.set_lazy(
        rare_triplets=functools.partial(_oi_rare, src, categories_file, all_categories_file, vocab, 0),
        nonrare_triplets=functools.partial(_oi_rare, src, categories_file, all_categories_file, vocab, 1),
    )
    if triplet_correct_mat_file is not None:
        md.set_lazy(triplet_correct_mat=functools.partial(_np_load, triplet_correct_mat_file))
    md.set(
        json_file=json_file,
        image_root=image_root,
        annotation_format="oi",
        evaluator_type=metadata.pop("evaluator_type", "oi"),
    )
    md.set(**metadata)
    return md
