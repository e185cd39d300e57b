"""``get_relation_dataset_dicts``: Detectron2's ``get_detection_dataset_dicts`` for relation data.

It also records the vocabulary (``thing_classes``, ``predicate_classes``) of every dataset it loads.
:class:`~rlipv2.data.RelationDatasetMapper` takes these with it when it is sent to data-loader
workers, so that workers started with "spawn" or "forkserver" (the ranks of a multi-GPU run, and
the default outside Linux) need no dataset registration of their own.
"""

from __future__ import annotations

import difflib
import logging

from detectron2.data import DatasetCatalog, MetadataCatalog

from .datasets.common import skip_bad_records

logger = logging.getLogger(__name__)


def filter_images_without_relations(dataset_dicts: list[dict]) -> list[dict]:
    """Keep only the images that have at least one relation (as the official pre-training data).

    Defined here, with the loading it belongs to; ``rlipv2.data.relation_dataset_mapper`` re-exports it
    (the mapper imports this module, never the reverse)."""
    out = [d for d in dataset_dicts if d.get("relations")]
    logger.info("Removed %d images without relations; %d left.", len(dataset_dicts) - len(out), len(out))
    return out

# name -> (thing_classes, predicate_classes) of the datasets loaded in this process
_LOADED_VOCABULARIES: dict[str, tuple[list[str], list[str]]] = {}


def loaded_vocabularies() -> dict[str, tuple[list[str], list[str]]]:
    """The vocabularies of the datasets :func:`get_relation_dataset_dicts` loaded in this process."""
    return dict(_LOADED_VOCABULARIES)


def _remember_vocabulary(name: str) -> None:
    md = MetadataCatalog.get(name)
    if hasattr(md, "thing_classes") and hasattr(md, "predicate_classes"):
        _LOADED_VOCABULARIES[name] = (list(md.thing_classes), list(md.predicate_classes))


def _get_registered(name: str) -> list[dict]:
    if name not in DatasetCatalog:
        close = difflib.get_close_matches(name, DatasetCatalog.list(), n=3, cutoff=0.6)
        raise KeyError(
            f"dataset '{name}' is not registered" + (f" (closest: {', '.join(close)})" if close else "")
            + "; register it in the config (a registered_dataset node, docs/custom_dataset.md)"
        )
    return DatasetCatalog.get(name)


def get_relation_dataset_dicts(
    names: str | list[str],
    *,
    filter_no_relations: bool = False,
    skip_bad: bool = False,
) -> list[dict]:
    """Load and concatenate registered relation datasets (usable as a LazyConfig node).

    Args:
        names: dataset name(s). Records keep a ``dataset_name`` key, so the mapper finds each
            record's own vocabulary even when datasets with different vocabularies are mixed
            (use a registered mixture to share one vocabulary).
        filter_no_relations: drop images without relations (official pre-training behaviour).
        skip_bad: skip bad records with a logged warning instead of raising.
    """
    if isinstance(names, str):
        names = [names]
    out: list[dict] = []
    with skip_bad_records(skip_bad):
        for n in names:
            dicts = _get_registered(n)
            if not dicts:
                raise ValueError(f"Dataset '{n}' is empty")
            for d in dicts:
                d.setdefault("dataset_name", n)
            out.extend(dicts)
            _remember_vocabulary(n)
    if filter_no_relations:
        out = filter_images_without_relations(out)
    logger.info("Loaded %d images from %s", len(out), ", ".join(names))
    return out
