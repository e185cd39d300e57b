"""HICO-DET and V-COCO (PPDM/QPIC format) as Detectron2 datasets.

HICO-DET files use COCO-91 object ids and verb ids 1..117; they become contiguous ids 0..79 and
0..116 (label texts from ``rlipv2/data/metadata``). V-COCO uses verb ids 0..28 and ``object_id = -1``
for a missing object, kept as relation object -1 (contract 1); its 81st object text is
"missing objects", as in the official label sequence.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable

import numpy as np

from ...schemas.vocabulary import Vocabulary, packaged_vocabulary, read_vocabulary
from .common import (
    LazyMetadata,
    ProblemSink,
    hico_correct_mat,
    hico_standard_rare_triplets,
    hico_zero_shot_triplets,
    load_json,
    new_metadata,
    rare_triplets_from_counts,
    register_lazy,
    require_file,
)
from .hoi_format import load_hoi_json

logger = logging.getLogger(__name__)

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
    vocabularies: tuple[Vocabulary, Vocabulary] | None = None,
    allow_outside_root: bool = False,
) -> list[dict]:
    entries = entries_fn() if entries_fn is not None else load_json(json_file, hint)
    objects, predicates = vocabularies or (None, None)
    if vocabularies is not None:
        logger.info("%s: vocabulary: %s; %s", name, objects.describe(), predicates.describe())
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
        allow_outside_root=allow_outside_root,
        object_vocabulary=objects.describe() if objects is not None else None,
        predicate_vocabulary=predicates.describe() if predicates is not None else None,
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
    allow_outside_root: bool = False,
    **metadata,
) -> LazyMetadata:
    """Register a HICO-DET-format (``variant="hico"``) or V-COCO-format (``"vcoco"``) dataset.

    Nothing is read now. Label lists default to the packaged HICO-DET / V-COCO ones; a custom
    vocabulary is given by ``object_names_file`` and ``verb_names_file`` (any format of
    :mod:`rlipv2.schemas.vocabulary`: ``NNN label words`` lines, plain label lines numbered from 1,
    a JSON ``{label: id}`` dict or a JSON list), or by ``thing_classes`` / ``predicate_classes``
    (+ ``*_dataset_id_to_contiguous_id``) in ``metadata``. The loader logs each vocabulary's size and
    source (metadata ``vocabulary_sources``) and refuses ids outside it.

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
        allow_outside_root: accept image paths that are absolute or contain ``..`` (refused by default).
        metadata: any other metadata (stored as is).
    """
    vcoco = variant == "vcoco"
    allow_missing = vcoco
    md = new_metadata(name)
    default_vocab = object_names_file is None and "thing_classes" not in metadata
    if object_names_file is not None:
        object_vocab = read_vocabulary(object_names_file, "object")
    elif "thing_classes" in metadata:
        names = list(metadata.pop("thing_classes"))
        id_map = metadata.pop("thing_dataset_id_to_contiguous_id", {k: k for k in range(len(names))})
        object_vocab = _vocab_from_map("object", names, id_map, f"thing_classes of dataset {name!r}")
    else:
        object_vocab = packaged_vocabulary("vcoco_objects" if vcoco else "hico_objects")
    if verb_names_file is not None:
        predicate_vocab = read_vocabulary(verb_names_file, "predicate")
    elif "predicate_classes" in metadata:
        names = list(metadata.pop("predicate_classes"))
        id_map = metadata.pop("predicate_dataset_id_to_contiguous_id", {k: k for k in range(len(names))})
        predicate_vocab = _vocab_from_map("predicate", names, id_map, f"predicate_classes of dataset {name!r}")
    else:
        predicate_vocab = packaged_vocabulary("vcoco_verbs" if vcoco else "hico_verbs")
    objects, verbs = list(object_vocab.names), list(predicate_vocab.names)
    # V-COCO's 81st text "missing objects" has no id in the files (object_id -1)
    thing_map = {i: k for k, i in enumerate(object_vocab.ids) if i >= 0}
    pred_map = dict(predicate_vocab.id_to_contiguous)
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
            (object_vocab, predicate_vocab),
            allow_outside_root,
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
        vocabulary_sources={"objects": object_vocab.describe(), "predicates": predicate_vocab.describe()},
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
        md.set(rare_triplets=rare, nonrare_triplets=non_rare,
               rare_source="the standard HICO-DET split (packaged: 138 rare, 462 non-rare)")
    elif "rare_triplets" not in metadata:
        src = json_file if rare_from in (None, "standard") else rare_from
        fb = bool(rare_fallback_standard and standard_ok)
        md.set(rare_source=f"fewer than 10 training instances in {src}" +
               (" (the standard split if that file is absent)" if fb else ""))
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


def _vocab_from_map(kind: str, names: list[str], id_map: dict, source: str) -> Vocabulary:
    """A vocabulary from label texts and a {dataset id: contiguous id} map (metadata-given classes)."""
    inverse = {k: i for i, k in id_map.items()}
    missing = [k for k in range(len(names)) if k not in inverse]
    if missing:
        raise ValueError(f"{source}: no dataset id maps to class {missing[0]} ({names[missing[0]]!r})")
    return Vocabulary(kind, tuple(names), tuple(inverse[k] for k in range(len(names))), source)


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
