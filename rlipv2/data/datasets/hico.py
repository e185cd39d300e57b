"""HICO-DET and V-COCO (PPDM/QPIC format) as Detectron2 datasets.

HICO-DET files use COCO-91 object ids and verb ids 1..117; they become contiguous ids 0..79 and
0..116 (label texts from ``rlipv2/data/metadata``). V-COCO uses verb ids 0..28 and ``object_id = -1``
for a missing object, kept as relation object -1 (contract 1); its 81st object text is
"missing objects", as in the official label sequence.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import numpy as np

from .common import (
    COCO80_IDS,
    LazyMetadata,
    ProblemSink,
    hico_correct_mat,
    hico_object_classes,
    hico_standard_rare_triplets,
    hico_verb_classes,
    hico_zero_shot_triplets,
    load_json,
    new_metadata,
    rare_triplets_from_counts,
    read_object_dict,
    read_verb_list,
    register_lazy,
    require_file,
)
from .hoi_format import load_hoi_json

HICO_DOWNLOAD_HINT = (
    "HICO-DET annotations (trainval_hico.json, test_hico.json) come from the QPIC/PPDM annotation pack; "
    "images from the HICO-DET release (hico_20160224_det)."
)
VCOCO_DOWNLOAD_HINT = (
    "V-COCO annotations (trainval_vcoco.json, test_vcoco.json, corre_vcoco.npy) are made with RLIPv2's "
    "convert_vcoco_annotations.py; images are COCO 2014 train/val."
)


def _hico_like_loader(
    name: str,
    json_file: str,
    image_root: str,
    object_id_map: dict[int, int],
    predicate_id_map: dict[int, int],
    allow_missing_object: bool,
    image_id_mode: str,
    entries_fn: Callable[[], list] | None,
    hint: str,
    tolerate: tuple[str, ...] = (),
) -> list[dict]:
    entries = entries_fn() if entries_fn is not None else load_json(json_file, hint)
    return load_hoi_json(
        json_file,
        image_root,
        object_id_map=object_id_map,
        predicate_id_map=predicate_id_map,
        relation_key="hoi_annotation",
        allow_missing_object=allow_missing_object,
        image_id_mode=image_id_mode,
        dataset_name=name,
        entries=entries,
        tolerate=tolerate,
    )


def _rare_from_json(
    json_file: str, object_id_map, predicate_id_map, allow_missing_object, which: int, fallback_standard=False
):
    """Rare (which=0) / non-rare (1) triplets from the training counts of a HICO-format file
    (the official ``set_rare_hois``); with ``fallback_standard``, the packaged standard HICO-DET
    split when the file is absent."""
    if fallback_standard and not os.path.exists(json_file):
        return hico_standard_rare_triplets()[which]
    entries = load_json(json_file, HICO_DOWNLOAD_HINT)
    dicts = load_hoi_json(
        json_file,
        "",
        object_id_map=object_id_map,
        predicate_id_map=predicate_id_map,
        allow_missing_object=allow_missing_object,
        read_sizes=False,
        sink=ProblemSink("collect"),
        entries=entries,
    )
    return rare_triplets_from_counts(dicts)[which]


def _correct_mat_from_file(path: str) -> np.ndarray:
    require_file(path, "The correct-mat (validity mask) of the dataset.")
    return np.load(path)


def register_hico_format(
    name: str,
    json_file: str,
    image_root: str,
    *,
    variant: str = "hico",
    object_names_file: str | None = None,
    verb_names_file: str | None = None,
    correct_mat_file: str | None = None,
    rare_from: str | None = None,
    rare_fallback_standard: bool = False,
    zero_shot_setting: str | None = None,
    zero_shot_unseen_triplets: list | None = None,
    entries_fn: Callable[[], list] | None = None,
    tolerate: tuple[str, ...] = (),
    **metadata,
) -> LazyMetadata:
    """Register a HICO-DET-format (``variant="hico"``) or V-COCO-format (``"vcoco"``) dataset.

    Nothing is read now. Label lists default to the packaged HICO-DET / V-COCO ones; a custom
    vocabulary is given by ``object_names_file`` (JSON ``{name: dataset_id}`` in label order) and
    ``verb_names_file`` (``NNN  verb_name`` lines, ids 1-based), or by ``thing_classes`` /
    ``predicate_classes`` (+ ``*_dataset_id_to_contiguous_id``) in ``metadata``.

    Args:
        correct_mat_file: ``.npy`` [num_predicates, num_objects] mask; default: HICO-DET's packaged one
            (variant "hico" with the default vocabulary), else none.
        rare_from: training file whose counts (< 10) define rare triplets; "standard" = the packaged
            138/462 HICO-DET split; default: ``json_file`` itself.
        rare_fallback_standard: use the standard split when the ``rare_from`` file is absent.
        zero_shot_setting: "UC-RF" | "UC-NF" | "UO" | "UV": sets ``zero_shot_unseen_triplets``.
        entries_fn: returns the JSON entries (for splits derived from another file).
        tolerate: problem kinds handled as the official loader does instead of raising
            (e.g. ``("relation_index_out_of_range",)``: such training images are dropped).
        metadata: any other metadata (stored as is).
    """
    vcoco = variant == "vcoco"
    allow_missing = vcoco
    md = new_metadata(name)
    default_vocab = object_names_file is None and "thing_classes" not in metadata
    if object_names_file is not None:
        objects, obj_ids = read_object_dict(object_names_file)
        thing_map = {i: k for k, i in enumerate(obj_ids)}
    elif "thing_classes" in metadata:
        objects = list(metadata.pop("thing_classes"))
        thing_map = metadata.pop("thing_dataset_id_to_contiguous_id", {k: k for k in range(len(objects))})
    elif vcoco:
        objects = vcoco_object_texts()
        thing_map = {cid: k for k, cid in enumerate(COCO80_IDS)}
    else:
        objects, obj_ids = hico_object_classes()
        thing_map = {cid: k for k, cid in enumerate(obj_ids)}
    if verb_names_file is not None:
        verbs = read_verb_list(verb_names_file)
        pred_map = {k + 1: k for k in range(len(verbs))}
    elif "predicate_classes" in metadata:
        verbs = list(metadata.pop("predicate_classes"))
        pred_map = metadata.pop("predicate_dataset_id_to_contiguous_id", {k: k for k in range(len(verbs))})
    elif vcoco:
        verbs = vcoco_verb_texts()
        pred_map = {k: k for k in range(len(verbs))}
    else:
        verbs = hico_verb_classes()
        pred_map = {k + 1: k for k in range(len(verbs))}
    hint = VCOCO_DOWNLOAD_HINT if vcoco else HICO_DOWNLOAD_HINT
    image_id_mode = metadata.pop("image_id_mode", "file_name" if vcoco else "index")

    register_lazy(
        name,
        functools.partial(
            _hico_like_loader,
            name,
            json_file,
            image_root,
            thing_map,
            pred_map,
            allow_missing,
            image_id_mode,
            entries_fn,
            hint,
            tuple(tolerate),
        ),
    )
    if tolerate:
        md.set(tolerated_problems=list(tolerate))
    md.set(
        thing_classes=list(objects),
        thing_dataset_id_to_contiguous_id=dict(thing_map),
        predicate_classes=list(verbs),
        predicate_dataset_id_to_contiguous_id=dict(pred_map),
        json_file=json_file,
        image_root=image_root,
        annotation_format=variant,
        evaluator_type=metadata.pop("evaluator_type", "vcoco" if vcoco else "hico"),
        subject_class=metadata.pop("subject_class", objects.index("person") if "person" in objects else 0),
    )
    if vcoco:
        md.set(missing_object_class=len(objects) - 1)
    # correct-mat
    if correct_mat_file is not None:
        md.set_lazy(correct_mat=functools.partial(_correct_mat_from_file, correct_mat_file))
    elif default_vocab and not vcoco and "correct_mat" not in metadata:
        md.set(correct_mat=hico_correct_mat())
    # rare / non-rare
    standard_ok = default_vocab and not vcoco
    if rare_from == "standard" and standard_ok:
        rare, non_rare = hico_standard_rare_triplets()
        md.set(rare_triplets=rare, nonrare_triplets=non_rare)
    elif "rare_triplets" not in metadata:
        src = json_file if rare_from in (None, "standard") else rare_from
        fb = bool(rare_fallback_standard and standard_ok)
        md.set_lazy(
            rare_triplets=functools.partial(_rare_from_json, src, thing_map, pred_map, allow_missing, 0, fb),
            nonrare_triplets=functools.partial(_rare_from_json, src, thing_map, pred_map, allow_missing, 1, fb),
        )
    if zero_shot_setting is not None:
        unseen, _ = hico_zero_shot_triplets(zero_shot_setting)
        md.set(zero_shot_setting=zero_shot_setting, zero_shot_unseen_triplets=unseen)
    if zero_shot_unseen_triplets is not None:
        md.set(zero_shot_unseen_triplets=[tuple(t) for t in zero_shot_unseen_triplets])
    md.set(**metadata)
    return md


def vcoco_object_texts() -> list[str]:
    from .common import vcoco_classes

    return vcoco_classes()[0]


def vcoco_verb_texts() -> list[str]:
    from .common import vcoco_classes

    return vcoco_classes()[1]


def hico_paths(root: str) -> dict[str, str]:
    """Standard HICO-DET paths under ``root`` (= ``$DETECTRON2_DATASETS/hico_20160224_det``)."""
    ann = os.path.join(root, "annotations")
    return {
        "train_images": os.path.join(root, "images", "train2015"),
        "test_images": os.path.join(root, "images", "test2015"),
        "train_json": os.path.join(ann, "trainval_hico.json"),
        "test_json": os.path.join(ann, "test_hico.json"),
        "annotations": ann,
    }
