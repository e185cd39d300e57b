"""``register_relation_dataset``: register a user's own relation data in any official format."""

from __future__ import annotations

from .common import LazyMetadata
from .hico import register_hico_format
from .open_images import register_open_images
from .visual_genome import register_vg_format

FORMATS = ("hico", "vcoco", "vg", "oi")


def register_relation_dataset(
    name: str, json_file: str, image_root: str, format: str = "hico", **metadata
) -> LazyMetadata:
    """Register a relation dataset in one of the official annotation formats (lazily).

    Args:
        name: the dataset name for ``DatasetCatalog`` / ``MetadataCatalog``.
        json_file: the annotation file.
        image_root: the folder the file's image names are relative to.
        format: "hico" (PPDM/QPIC HICO-DET format; V-COCO's ``object_id = -1`` with "vcoco"),
            "vg" (Visual Genome scene graphs / pseudo labels) or "oi" (Open Images v6 SGG).
        metadata: metadata stored with the dataset, plus format options:
            hico/vcoco: ``object_names_file``, ``verb_names_file``, ``correct_mat_file``, ``rare_from``,
            ``zero_shot_setting``, ``zero_shot_unseen_triplets``, or ``thing_classes`` /
            ``predicate_classes`` (+ ``*_dataset_id_to_contiguous_id``);
            vg: ``image_source`` ("vg" | "coco2017" | "o365"), ``relation_threshold``, ``vocab_file``;
            oi: ``categories_file``, ``all_categories_file``, ``rare_from``, or ``thing_classes`` /
            ``predicate_classes``.

    Returns:
        The dataset's metadata.
    """
    if format == "hico":
        return register_hico_format(name, json_file, image_root, variant="hico", **metadata)
    if format == "vcoco":
        return register_hico_format(name, json_file, image_root, variant="vcoco", **metadata)
    if format == "vg":
        return register_vg_format(name, json_file, image_root, **metadata)
    if format == "oi":
        return register_open_images(name, json_file, image_root, **metadata)
    raise ValueError(f"unknown format {format!r}; expected one of {FORMATS}")
