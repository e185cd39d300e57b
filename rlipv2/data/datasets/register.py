"""``register_relation_dataset``: register a user's own relation data in any official format, and
``register_config_datasets``: run the registrations a LazyConfig declares under ``dataloader.register``.

A config registers its own datasets with registration *nodes*, so that every process that loads
the config (each training process, ``--eval-only``, ``tools/demo.py``) registers them, and so that
the registration survives in the saved ``config.yaml``::

    dataloader.register = dict(
        myhoi_train=L(register_relation_dataset)(name="myhoi_train", json_file=..., image_root=...,
                                                 format="hico", object_names_file=..., verb_names_file=...),
    )

Data-loader workers do not need the registration: the mapper takes the vocabularies of the
datasets loaded in its process with it (``RelationDatasetMapper.__getstate__``).
"""

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


def register_config_datasets(cfg) -> list[str]:
    """Run every registration node of ``cfg.dataloader.register`` in this process (in order).

    Each value is a LazyCall node that registers datasets when instantiated, typically
    ``L(register_relation_dataset)(name=..., json_file=..., image_root=..., format=...)``. Running
    them again replaces the registrations with identical ones.

    Returns:
        the keys of the nodes that ran.
    """
    from detectron2.config import instantiate
    from omegaconf import DictConfig, OmegaConf

    nodes = OmegaConf.select(cfg, "dataloader.register", default=None) if isinstance(cfg, DictConfig) else None
    if not nodes:
        return []
    if not isinstance(nodes, DictConfig):
        raise ValueError(
            "dataloader.register must be a dict {label: L(register_relation_dataset)(...)}, "
            f"got {type(nodes).__name__}"
        )
    done = []
    for key in nodes:
        node = nodes[key]
        if not (isinstance(node, DictConfig) and "_target_" in node):
            raise ValueError(f"dataloader.register.{key} must be a LazyCall node, e.g. "
                             "L(register_relation_dataset)(name=..., json_file=..., image_root=...)")
        instantiate(node)
        done.append(str(key))
    return done
