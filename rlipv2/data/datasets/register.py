"""``register_relation_dataset``: register a user's own relation data in any official format, and
``registered_dataset`` / ``registered_mixture``: the same as config nodes.

A config registers its own datasets with a ``registered_dataset`` node in place of the dataset name,
so that every process that builds the loader, the evaluator or the model (each training process of
a multi-GPU run, ``--eval-only``, ``tools/demo.py``) registers them, and so that the registration
survives in the saved ``config.yaml``::

    dataloader.train.dataset.names = L(registered_dataset)(
        name="myhoi_train", json_file=..., image_root=..., format="hico",
        object_names_file=..., verb_names_file=...)

Data-loader workers do not need the registration: the mapper takes the vocabularies of the datasets
loaded in its process with it (``RelationDatasetMapper.__getstate__``). ``docs/custom_dataset.md``
has the whole recipe.
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


# registrations made by the config nodes below in this process: name -> the arguments used
_NODE_REGISTRATIONS: dict[str, tuple] = {}


def _register_once(name: str, key: tuple, register) -> str:
    from detectron2.data import DatasetCatalog

    if name in _NODE_REGISTRATIONS and name in DatasetCatalog.list():
        if _NODE_REGISTRATIONS[name] != key:
            raise ValueError(
                f"dataset {name!r} is already registered in this process with other arguments:\n"
                f"  before: {_NODE_REGISTRATIONS[name]}\n  now:    {key}"
            )
        return name
    if name in DatasetCatalog.list():
        raise ValueError(f"dataset {name!r} is already registered (by other code); choose another name")
    register()
    _NODE_REGISTRATIONS[name] = key
    return name


def registered_dataset(name: str, json_file: str, image_root: str, format: str = "hico", **metadata) -> str:
    """:func:`register_relation_dataset` as a config node: registers ``name`` when instantiated (once per
    process; the same arguments again are a no-op, other arguments an error) and returns ``name``.

    Used as a dataset name in a LazyConfig, the registration happens in every process that builds the
    loader, so it needs no import side effect and can depend on values known only at run time (a file
    written by an earlier step, given as an override)::

        dataloader.train.dataset.names = L(registered_dataset)(
            name="my_pseudo", json_file="${paths.pseudo_labels}", image_root="data/images", format="vg")
    """
    key = (str(json_file), str(image_root), format, tuple(sorted((k, repr(v)) for k, v in metadata.items())))
    return _register_once(
        name, key, lambda: register_relation_dataset(name, str(json_file), str(image_root), format, **metadata)
    )


def registered_mixture(name: str, parts, balanced: bool = False) -> str:
    """:func:`rlipv2.data.datasets.mixtures.register_mixture` as a config node (see :func:`registered_dataset`):
    registers the concatenation of the registered datasets ``parts`` under ``name`` and returns ``name``.
    ``parts`` may themselves be :func:`registered_dataset` nodes."""
    from .mixtures import register_mixture

    parts = [str(p) for p in parts]
    return _register_once(name, (tuple(parts), bool(balanced)), lambda: register_mixture(name, parts, balanced))
